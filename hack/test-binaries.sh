#!/usr/bin/env bash
# Builds the pinned test binaries from the Go module proxy into a cache outside the repo:
#   etcd, etcdctl, etcdutl, benchmark (etcd), kube-apiserver, kube-controller-manager, kube-scheduler,
#   kubectl (Kubernetes), kwok, versitygw (an S3-compatible server over a directory, for backup tests),
#   the etcd release before the pinned one (etcd-previous), which the version rolling-update test
#   upgrades from, promtool (Prometheus), which unit-tests the chart's alert rules, and h2spec (HTTP/2
#   conformance, for the proxy).
# Each set lands in $ETCD_TOPOLOGY_CACHE/bin/<set>-<version>/ and is rebuilt only when missing.
# Prints the bin directory of each set as NAME_BIN=DIR lines on stdout (logs go to stderr).
#   hack/test-binaries.sh [etcd|etcd-previous|kubernetes|kwok|versitygw|promtool|h2spec ...]
# With no argument it builds the sets the tests use: all but kwok, which only `npm run bench:operator`
# needs and builds on first use (test/harness/binaries.ts asks this script for a missing set).
# Each set has its own lock, so a caller that needs one set (hack/build-image.sh: etcd) waits only for
# that set while another caller builds the rest.
#
#   ETCD_TOPOLOGY_CACHE   cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/etcd-topology)
#   ETCD_VERSION, ETCD_PREVIOUS_VERSION, KUBERNETES_VERSION, KWOK_VERSION, VERSITYGW_VERSION,
#   PROMETHEUS_VERSION, H2SPEC_VERSION   override the pinned versions
set -euo pipefail

ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
ETCD_PREVIOUS_VERSION="${ETCD_PREVIOUS_VERSION:-v3.6.15}"
# etcd's root module (home of tools/benchmark) is tagged less often than the server.
ETCD_BENCHMARK_VERSION="${ETCD_BENCHMARK_VERSION:-v3.6.8}"
KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.35.4}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
VERSITYGW_VERSION="${VERSITYGW_VERSION:-v1.8.0}"
# Prometheus tags its Go module v0.<major><minor>.<patch>: v0.316.0 is Prometheus 3.16.0. It is the
# first recent tag whose go.mod has no replace or exclude directives, which `go install` requires; it
# needs Go 1.26.7 or newer.
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
# h2spec's later tags (v2.3+) declare a module path without /v2, so the module proxy serves only this one.
H2SPEC_VERSION="${H2SPEC_VERSION:-v2.2.1+incompatible}"
CACHE="${ETCD_TOPOLOGY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/etcd-topology}"

log() { echo "test-binaries: $*" >&2; }
die() { echo "test-binaries: error: $*" >&2; exit 1; }


export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
mkdir -p "$CACHE/bin" "$CACHE/src"

# build_set NAME VERSION BINARIES... -- runs the function build_NAME into a temp dir, then renames it
# into place, so an interrupted build never leaves a half-filled directory that looks finished.
build_set() {
  local name=$1 version=$2; shift 2
  local dest="$CACHE/bin/$name-$version"
  local missing=0 b
  # One build of a set at a time per cache: a second caller waits, then finds it cached.
  exec 9>"$CACHE/.build-$name.lock"
  flock 9
  for b in "$@"; do [ -x "$dest/$b" ] || missing=1; done
  if [ "$missing" = 0 ]; then
    log "$name $version: cached in $dest"
  else
    command -v go >/dev/null 2>&1 || die "Go is not installed or not on PATH, and $name $version is not built yet; install Go 1.24 or newer (https://go.dev/doc/install) and retry"
    local start=$SECONDS tmp="$dest.tmp.$$"
    rm -rf "$dest".tmp.*; mkdir -p "$tmp"
    log "$name $version: building into $dest"
    "build_${name//-/_}" "$version" "$tmp"
    for b in "$@"; do [ -x "$tmp/$b" ] || die "$name $version: build produced no $b"; done
    rm -rf "$dest"; mv "$tmp" "$dest"
    log "$name $version: built in $((SECONDS - start))s"
  fi
  exec 9>&-
  local var=${name^^}
  echo "${var//-/_}_BIN=$dest"
}

build_etcd() {
  local version=$1 out=$2 mod="$CACHE/src/etcd-$1"
  mkdir -p "$mod"
  # etcd's modules carry replace directives for their siblings, so `go install` refuses them; a
  # wrapper module that merely requires them resolves every sibling at the same tag instead.
  cat >"$mod/go.mod" <<MOD
module local/etcdbins

go 1.24

require (
	go.etcd.io/etcd/server/v3 $version
	go.etcd.io/etcd/etcdctl/v3 $version
	go.etcd.io/etcd/etcdutl/v3 $version
	go.etcd.io/etcd/v3 $ETCD_BENCHMARK_VERSION
)
MOD
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "go.etcd.io/etcd/server/v3"
	_ "go.etcd.io/etcd/v3/tools/benchmark"
)
GO
  (cd "$mod" && go mod tidy) >&2 2>&1 || die "etcd $version: go mod tidy failed in $mod"
  (cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3 \
    && go build -trimpath -ldflags "-s -w" -o "$out/etcdctl" go.etcd.io/etcd/etcdctl/v3 \
    && go build -trimpath -ldflags "-s -w" -o "$out/etcdutl" go.etcd.io/etcd/etcdutl/v3 \
    && go build -trimpath -ldflags "-s -w" -o "$out/benchmark" go.etcd.io/etcd/v3/tools/benchmark) >&2
}

# The server alone, from the same wrapper module layout as build_etcd.
build_etcd_previous() {
  local version=$1 out=$2 mod="$CACHE/src/etcd-server-$1"
  mkdir -p "$mod"
  cat >"$mod/go.mod" <<MOD
module local/etcdserver

go 1.24

require go.etcd.io/etcd/server/v3 $version
MOD
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  (cd "$mod" && go mod tidy) >&2 2>&1 || die "etcd $version: go mod tidy failed in $mod"
  (cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3) >&2
}

build_kubernetes() {
  local version=$1 out=$2 mod="$CACHE/src/kubernetes-$1"
  local minor=${version#v1.}; minor=${minor%%.*}
  mkdir -p "$mod"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging paths,
  # which only count in the main module; the wrapper replaces each with its published v0.<minor> tag.
  local gomod godebug replaces
  gomod=$(cd "$mod" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$gomod" ] || die "kubernetes $version: could not fetch its go.mod through the module proxy"
  godebug=$(sed -n 's/^godebug \(.*\)$/godebug \1/p' "$gomod")
  replaces=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 v0.'"${version#v1.}"'#p' "$gomod")
  cat >"$mod/go.mod" <<MOD
module local/k8sbins

go 1.25

$godebug

require k8s.io/kubernetes $version

replace (
$replaces
)
MOD
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$mod" && go mod tidy) >&2 2>&1 || die "kubernetes $version: go mod tidy failed in $mod"
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$version"
  (cd "$mod" && go build -trimpath -ldflags "$ld" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl) >&2
}

# go_install PACKAGE VERSION OUT [GO FLAGS...] -- a single Go program at a tagged version, straight from
# the module proxy.
go_install() {
  local pkg=$1 version=$2 out=$3; shift 3
  GOBIN="$out" go install -trimpath -ldflags "-s -w" "$@" "$pkg@$version" >&2
}
build_versitygw() { go_install github.com/versity/versitygw/cmd/versitygw "$@"; }
build_kwok() { go_install sigs.k8s.io/kwok/cmd/kwok "$@"; }
# The tests use `promtool check rules` and `test rules` only: Prometheus's remove_all_sd build tag leaves
# out every service-discovery plugin (cloud SDKs, the Kubernetes client): 1,117 packages instead of
# 1,364, a 54 MB binary instead of 88 MB.
build_promtool() { go_install github.com/prometheus/prometheus/cmd/promtool "$@" -tags remove_all_sd; }
build_h2spec() { go_install github.com/summerwind/h2spec/cmd/h2spec "$@"; }

sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(etcd etcd-previous kubernetes versitygw promtool h2spec)
for set in "${sets[@]}"; do
  case "$set" in
    etcd) build_set etcd "$ETCD_VERSION" etcd etcdctl etcdutl benchmark ;;
    etcd-previous) build_set etcd-previous "$ETCD_PREVIOUS_VERSION" etcd ;;
    kubernetes) build_set kubernetes "$KUBERNETES_VERSION" kube-apiserver kube-controller-manager kube-scheduler kubectl ;;
    kwok) build_set kwok "$KWOK_VERSION" kwok ;;
    versitygw) build_set versitygw "$VERSITYGW_VERSION" versitygw ;;
    promtool) build_set promtool "$PROMETHEUS_VERSION" promtool ;;
    h2spec) build_set h2spec "$H2SPEC_VERSION" h2spec ;;
    *) die "unknown set \"$set\"; accepted: etcd, etcd-previous, kubernetes, kwok, versitygw, promtool, h2spec" ;;
  esac
done
