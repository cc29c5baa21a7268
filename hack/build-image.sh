#!/usr/bin/env bash
# Builds this repo's image, etcd-topology:<package.json version>, with the Dockerfile on a machine where
# no image can be pulled: the Dockerfile's two base images are assembled here instead.
#   NODE_IMAGE  a Debian minbase root file system (debootstrap, from the machine's Debian mirror) with
#               Node and npm from the npm registry (packages node-linux-<arch> and npm), the machine's
#               CA bundle (NODE_EXTRA_CA_CERTS) and the npm CLI's configured registry, so that the build's
#               `npm ci` reaches the registry the way this machine does. That belongs to this local base
#               only; the Dockerfile itself stays as it is for node:24-bookworm-slim.
#   ETCD_IMAGE  etcd, etcdctl and etcdutl in /usr/local/bin, as the upstream etcd image has them, from the
#               Go-built binaries of hack/test-binaries.sh.
# Installs docker.io (and, to assemble a base, debootstrap) from Debian's packages when missing and
# starts dockerd when no engine answers (data root $CACHE/docker; no bridge network and no iptables
# rules: containers run with --network host). The base is cached by a content key (Debian suite,
# architecture, Node and npm versions, CA bundle, registry) as a tarball in $CACHE/image/ and as a
# tag, so a second run takes seconds.
# Prints each stage's duration on stderr and IMAGE=etcd-topology:<version> on stdout.
#   hack/build-image.sh
# Exit status 3: no Docker engine can be installed or started here (the reason is on stderr); any
# other failure is 1.
#
#   ETCD_TOPOLOGY_CACHE   cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/etcd-topology)
#   IMAGE_DEBIAN_SUITE    Debian suite of the base (default: bookworm, as node:24-bookworm-slim)
#   IMAGE_NODE_MAJOR      Node major version of the base (default: 24), IMAGE_NPM_MAJOR (default: 11)
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE="${IMAGE_DEBIAN_SUITE:-bookworm}"
NODE_MAJOR="${IMAGE_NODE_MAJOR:-24}"
NPM_MAJOR="${IMAGE_NPM_MAJOR:-11}"
CACHE="${ETCD_TOPOLOGY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/etcd-topology}"
WORK="$CACHE/image"

log() { echo "build-image: $*" >&2; }
die() { echo "build-image: error: $*" >&2; exit 1; }
no_engine() { echo "build-image: no Docker engine: $*" >&2; exit 3; }

declare -a timings=()
stage() {
  local name=$1; shift
  local start=$SECONDS
  log "::: $name"
  "$@"
  timings+=("$(printf '%-8s %5ss' "$name" $((SECONDS - start)))")
}
report() {
  [ ${#timings[@]} -gt 0 ] || return 0
  log "::: stage durations"
  printf '  %s\n' "${timings[@]}" >&2
}
trap report EXIT

# --- engine -------------------------------------------------------------------------------------------

# apt_install FAIL PACKAGE -- installs a Debian package; FAIL (no_engine or die) reports why it cannot.
apt_install() {
  local fail=$1 package=$2
  [ "$(id -u)" = 0 ] || "$fail" "$package is not installed, and installing Debian packages needs root"
  command -v apt-get >/dev/null || "$fail" "$package is not installed, and there is no apt-get to install it with"
  log "installing $package from Debian's packages"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null; } \
    || "$fail" "apt-get install $package failed"
}

install_packages() {
  docker info >/dev/null 2>&1 && return 0
  { command -v docker && command -v dockerd; } >/dev/null || apt_install no_engine docker.io
}

start_engine() {
  docker info >/dev/null 2>&1 && return 0
  command -v dockerd >/dev/null || no_engine "docker answers no 'docker info' and there is no dockerd to start"
  [ "$(id -u)" = 0 ] || no_engine "no engine answers 'docker info', and starting dockerd needs root"
  mkdir -p "$CACHE/docker"
  log "starting dockerd (data root $CACHE/docker, log $CACHE/dockerd.log)"
  # Host networking only: no docker0 bridge and no iptables rules on a machine shared with other tests.
  # Not holding fd 9, the build lock, which would outlive this script in the daemon.
  setsid nohup dockerd --data-root "$CACHE/docker" --bridge=none --iptables=false >>"$CACHE/dockerd.log" 2>&1 </dev/null 9>&- &
  local i
  for i in $(seq 60); do
    docker info >/dev/null 2>&1 && return 0
    kill -0 $! 2>/dev/null || no_engine "dockerd exited: $(tail -n 3 "$CACHE/dockerd.log" | tr '\n' ' ')"
    sleep 0.5
  done
  no_engine "dockerd did not answer within 30 s; see $CACHE/dockerd.log"
}

engine() {
  install_packages
  start_engine
  log "engine: $(docker version --format 'client {{.Client.Version}}, server {{.Server.Version}}')"
}

# --- NODE_IMAGE: Debian minbase + Node + npm ----------------------------------------------------------

node_arch() {
  case "$(uname -m)" in
    x86_64) echo x64 ;; aarch64|arm64) echo arm64 ;;
    *) die "no Node.js package for machine $(uname -m)" ;;
  esac
}

# The newest published version of PACKAGE matching RANGE, from the npm CLI's configured registry.
newest() {
  npm view "$1@$2" version --json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);process.stdout.write([].concat(v).pop())})' \
    || die "could not look up $1@$2 in the npm registry ($(npm config get registry))"
}

# The Debian mirror this machine's apt uses for SUITE; empty lets debootstrap use its default.
debian_mirror() {
  apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | awk -v s="$SUITE" '$2 == s { print $1; exit }'
}

# The CA bundle Node on this machine trusts beyond its own roots (a TLS-intercepting proxy's), if any.
ca_bundle() {
  local f="${NODE_EXTRA_CA_CERTS:-}"
  if [ -n "$f" ] && [ -f "$f" ]; then echo "$f"; fi
}

# assemble_rootfs DIR NODE_VERSION NPM_VERSION CA -- debootstrap, then Node and npm into /usr/local.
assemble_rootfs() {
  local dir=$1 node_version=$2 npm_version=$3 ca=$4 arch mirror
  arch=$(node_arch)
  mirror=$(debian_mirror)
  command -v debootstrap >/dev/null || apt_install die debootstrap
  log "debootstrap --variant=minbase $SUITE ${mirror:-with the default mirror}"
  debootstrap --variant=minbase "$SUITE" "$dir" ${mirror:+"$mirror"} >"$WORK/debootstrap.log" 2>&1 \
    || die "debootstrap $SUITE failed; see $WORK/debootstrap.log"
  # What the slim images leave out: downloaded packages, package lists, documentation.
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/*
  local pkgs="$dir/tmp/pkgs"
  mkdir -p "$pkgs"
  (cd "$pkgs" && npm pack --silent "node-linux-$arch@$node_version" "npm@$npm_version" >/dev/null) \
    || die "could not fetch node-linux-$arch@$node_version and npm@$npm_version from the npm registry"
  mkdir -p "$pkgs/node" "$dir/usr/local/lib/node_modules/npm"
  tar -xzf "$pkgs/node-linux-$arch-$node_version.tgz" -C "$pkgs/node"
  install -m 0755 "$pkgs/node/package/bin/node" "$dir/usr/local/bin/node"
  tar -xzf "$pkgs/npm-$npm_version.tgz" -C "$dir/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$dir/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$dir/usr/local/bin/npx"
  rm -rf "$pkgs"
  if [ -n "$ca" ]; then install -D -m 0644 "$ca" "$dir/etc/ssl/certs/ca-certificates.crt"; fi
  [ "$(chroot "$dir" /usr/local/bin/node --version)" = "v$node_version" ] || die "the assembled base does not run node v$node_version"
}

base() {
  local arch node_version npm_version ca registry key tag tarball
  arch=$(node_arch)
  node_version=$(newest "node-linux-$arch" "$NODE_MAJOR")
  npm_version=$(newest npm "$NPM_MAJOR")
  ca=$(ca_bundle)
  registry=$(npm config get registry)
  key=$(printf '%s\n' "$SUITE" "$arch" "$node_version" "$npm_version" "$registry" "$( [ -z "$ca" ] || sha256sum <"$ca")" | sha256sum | cut -c1-12)
  tag="etcd-topology-base:node$node_version-$SUITE-$key"
  tarball="$WORK/base-$key.tar"
  BASE_IMAGE=$tag
  if docker image inspect "$tag" >/dev/null 2>&1; then log "base $tag: cached"; return 0; fi
  mkdir -p "$WORK"
  if [ ! -f "$tarball" ]; then
    local dir="$WORK/rootfs.tmp.$$"
    rm -rf "$WORK"/rootfs.tmp.* "$WORK"/base-*.tar.tmp.*
    log "base: Debian $SUITE, Node $node_version, npm $npm_version${ca:+, CA bundle $ca}"
    assemble_rootfs "$dir" "$node_version" "$npm_version" "$ca"
    tar -C "$dir" --numeric-owner -cf "$tarball.tmp.$$" .
    rm -rf "$dir"
    # One base tarball is kept: the one for the current key.
    find "$WORK" -maxdepth 1 -name 'base-*.tar' ! -name "base-$key.tar" -delete
    mv "$tarball.tmp.$$" "$tarball"
  fi
  local changes=(
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    --change "ENV NODE_VERSION=$node_version"
    --change "ENV npm_config_registry=$registry"
    --change 'CMD ["node"]'
  )
  [ -z "$ca" ] || changes+=(--change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt')
  docker import "${changes[@]}" "$tarball" "$tag" >/dev/null
  log "base $tag: imported from $tarball"
}

# --- ETCD_IMAGE: the Go-built etcd binaries ------------------------------------------------------------

etcd() {
  local bin version sum tag ctx
  bin=$(bash hack/test-binaries.sh etcd | sed -n 's/^ETCD_BIN=//p')
  [ -n "$bin" ] || die "hack/test-binaries.sh etcd printed no ETCD_BIN line"
  version=${bin##*/etcd-}
  local upstream
  upstream=$(sed -n 's/^ARG ETCD_IMAGE=.*:\(v[0-9.]*\)$/\1/p' Dockerfile)
  [ "$version" = "$upstream" ] || log "warning: the Go-built etcd is $version but the Dockerfile's ETCD_IMAGE is $upstream"
  sum=$(cat "$bin/etcd" "$bin/etcdctl" "$bin/etcdutl" | sha256sum | cut -c1-12)
  tag="etcd-topology-etcd:$version-$sum"
  ETCD_IMAGE=$tag
  if docker image inspect "$tag" >/dev/null 2>&1; then log "etcd $tag: cached"; return 0; fi
  ctx=$(mktemp -d)
  mkdir -p "$ctx/usr/local/bin"
  cp "$bin/etcd" "$bin/etcdctl" "$bin/etcdutl" "$ctx/usr/local/bin/"
  tar -C "$ctx" --numeric-owner --owner=0 --group=0 -c . | docker import - "$tag" >/dev/null
  rm -rf "$ctx"
  log "etcd $tag: imported from $bin"
}

# --- the image -----------------------------------------------------------------------------------------

image() {
  local version
  version=$(node -p 'require("./package.json").version')
  IMAGE="etcd-topology:$version"
  docker build --network host --build-arg NODE_IMAGE="$BASE_IMAGE" --build-arg ETCD_IMAGE="$ETCD_IMAGE" -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
    || { tail -n 30 "$WORK/build.log" >&2; die "docker build failed; see $WORK/build.log"; }
  log "image $IMAGE: $(docker image inspect -f '{{.Id}}' "$IMAGE"), $(( $(docker image inspect -f '{{.Size}}' "$IMAGE") / 1024 / 1024 )) MiB"
}

mkdir -p "$CACHE"
# One build at a time per cache: a second caller waits, then finds everything cached.
exec 9>"$CACHE/.image.lock"
flock 9

stage engine engine
# npm and node for the look-ups and downloads (Node >= 22 as everywhere in this repo).
eval "$(bash hack/node.sh --export)"
mkdir -p "$WORK"
stage base base
stage etcd etcd
stage image image
echo "IMAGE=$IMAGE"
