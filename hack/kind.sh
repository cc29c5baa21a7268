#!/usr/bin/env bash
# Runs etcd-topology on a kind cluster, for machines with Docker and kind:
#   1. creates the kind cluster (hack/kind/cluster.yaml: a control plane, 3 central nodes labelled
#      etcdtopology.io/role=central and tainted etcdtopology.io/central=true:NoSchedule, 2 workers),
#   2. builds the image with docker and loads it into the cluster's nodes,
#   3. installs the Helm chart deploy/etcd-topology (helm from hack/helm.sh),
#   4. applies examples/etcdtopology.yaml and waits until it is Available.
# Running it again reuses the cluster, rebuilds and reloads the image and upgrades the release.
#   hack/kind.sh           set everything up
#   hack/kind.sh delete    delete the kind cluster
#
#   KIND_CLUSTER_NAME   cluster name (default etcd-topology)
#   KIND_NODE_IMAGE     kind node image (default: the one of your kind version)
#   NAMESPACE           namespace of the operator and of the example (default etcd-topology-system)
#   WAIT_TIMEOUT        how long to wait for Available (default 10m)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER="${KIND_CLUSTER_NAME:-etcd-topology}"
NAMESPACE="${NAMESPACE:-etcd-topology-system}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-10m}"
RELEASE=etcd-topology
CONTEXT="kind-$CLUSTER"

log() { echo "kind.sh: $*" >&2; }
die() { echo "kind.sh: error: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker is not installed or not on PATH; install Docker (https://docs.docker.com/engine/install/) and retry"
command -v kind >/dev/null 2>&1 || die "kind is not installed or not on PATH; install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) and retry"

if [ "${1:-}" = delete ]; then
  kind delete cluster --name "$CLUSTER"
  exit 0
fi
[ $# -eq 0 ] || die "unknown argument \"$1\"; accepted: delete (or no argument)"

command -v kubectl >/dev/null 2>&1 || die "kubectl is not installed or not on PATH; install kubectl (or build it with hack/test-binaries.sh kubernetes and put it on PATH) and retry"
docker info >/dev/null 2>&1 || die "docker cannot reach its engine (docker info failed); start Docker, or check that your user may use it, and retry"

helm=$(bash "$root/hack/helm.sh")
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$root/deploy/etcd-topology/Chart.yaml")
[ -n "$app_version" ] || die "no appVersion in deploy/etcd-topology/Chart.yaml"
image="etcd-topology:$app_version"
k() { kubectl --context "$CONTEXT" "$@"; }

# 1. The cluster.
clusters=$(kind get clusters 2>/dev/null || true)
if grep -qx "$CLUSTER" <<<"$clusters"; then
  log "reusing kind cluster $CLUSTER"
else
  log "creating kind cluster $CLUSTER (1 control plane, 3 central nodes, 2 workers)"
  kind create cluster --name "$CLUSTER" --config "$root/hack/kind/cluster.yaml" --wait 5m \
    ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
fi
central=$(k get nodes -l etcdtopology.io/role=central -o name | wc -l)
[ "$central" -ge 3 ] || die "cluster $CLUSTER has $central nodes labelled etcdtopology.io/role=central, expected 3; delete it with hack/kind.sh delete and retry"
k taint nodes -l etcdtopology.io/role=central etcdtopology.io/central=true:NoSchedule --overwrite >/dev/null

# 2. The image.
log "building $image"
docker build -t "$image" "$root"
log "loading $image into the nodes of $CLUSTER"
kind load docker-image "$image" --name "$CLUSTER"

# 3. The chart. Helm installs crds/ only on the first install; applying them keeps them current.
k apply --server-side --force-conflicts -f "$root/deploy/etcd-topology/crds/"
upgrade=0
"$helm" status "$RELEASE" --kube-context "$CONTEXT" --namespace "$NAMESPACE" >/dev/null 2>&1 && upgrade=1
log "installing the chart as release $RELEASE in namespace $NAMESPACE"
"$helm" upgrade --install "$RELEASE" "$root/deploy/etcd-topology" --kube-context "$CONTEXT" \
  --namespace "$NAMESPACE" --create-namespace --wait --timeout 5m
if [ "$upgrade" = 1 ]; then
  # The tag did not change, so the Deployment did not either: restart it onto the image just loaded.
  k --namespace "$NAMESPACE" rollout restart "deployment/$RELEASE"
  k --namespace "$NAMESPACE" rollout status "deployment/$RELEASE" --timeout 5m
fi

# 4. The example.
log "applying examples/etcdtopology.yaml in namespace $NAMESPACE"
k apply --namespace "$NAMESPACE" -f "$root/examples/etcdtopology.yaml"
log "waiting up to $WAIT_TIMEOUT for etop/example to be Available"
k wait --namespace "$NAMESPACE" --for=condition=Available --timeout "$WAIT_TIMEOUT" etop/example
k get --namespace "$NAMESPACE" etop/example
k get --namespace "$NAMESPACE" pods -o wide

cat >&2 <<NEXT
kind.sh: etop/example is Available on kind cluster $CLUSTER. Try:
  kubectl --context $CONTEXT --namespace $NAMESPACE get etop example -o yaml
  kubectl --context $CONTEXT --namespace $NAMESPACE logs deployment/$RELEASE
  hack/kind.sh delete
NEXT
