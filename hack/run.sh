#!/usr/bin/env bash
# Runs a command with a Node.js >= 22 first on PATH (see hack/node.sh), so that npm scripts work on a
# machine whose own node is older.
set -euo pipefail
eval "$(bash "$(dirname "$0")/node.sh" --export)"
exec "$@"
