#!/usr/bin/env bash
# Copies the generated CRDs (crds/, made by `npm run gen:crds` from src/api) into the Helm chart's
# crds/ directory byte for byte, so that the chart installs the same CRDs. Run it after gen:crds.
#   hack/sync-chart-crds.sh [--check]   (--check: exit 1, naming the files, when the chart is stale)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/crds"
dst="$root/deploy/etcd-topology/crds"

die() { echo "sync-chart-crds: error: $*" >&2; exit 1; }
[ -d "$src" ] || die "$src does not exist; run npm run gen:crds first"
shopt -s nullglob
files=("$src"/*.yaml)
[ ${#files[@]} -gt 0 ] || die "no CRD files in $src; run npm run gen:crds first"

if [ "${1:-}" = --check ]; then
  stale=0
  for f in "${files[@]}"; do
    cmp -s "$f" "$dst/$(basename "$f")" || { echo "sync-chart-crds: $dst/$(basename "$f") differs from $f" >&2; stale=1; }
  done
  for f in "$dst"/*.yaml; do
    [ -f "$src/$(basename "$f")" ] || { echo "sync-chart-crds: $f has no source in $src" >&2; stale=1; }
  done
  [ "$stale" = 0 ] || { echo "sync-chart-crds: the chart's CRDs are stale; run hack/sync-chart-crds.sh" >&2; exit 1; }
  exit 0
fi

mkdir -p "$dst"
# Remove chart CRDs whose source is gone, then copy every source.
for f in "$dst"/*.yaml; do [ -f "$src/$(basename "$f")" ] || rm -f "$f"; done
for f in "${files[@]}"; do cp "$f" "$dst/$(basename "$f")"; done
echo "sync-chart-crds: copied ${#files[@]} CRD file(s) into $dst" >&2
