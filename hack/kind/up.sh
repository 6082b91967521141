#!/usr/bin/env bash
# `make kind-up`: build (or reuse from the cache) everything, create the kind
# cluster from kind-config.yaml, load the project images, and leave kind,
# kubectl and helm in .tools/bin with the kubeconfig in .tools/kubeconfig
# (and merged into ~/.kube/config, where a bare kubectl looks).
. "$(dirname "$0")/lib.sh"
T0=$SECONDS
step() { local t=$SECONDS; "$@"; log "$(basename "$1") took $((SECONDS - t)) s"; }

step "$REPO_ROOT/hack/docker-engine.sh"
# The rootfs mostly waits on Debian's mirror and the Go builds on the CPU:
# run them side by side.
t=$SECONDS
"$REPO_ROOT/hack/kind/build-base-rootfs.sh" & ROOTFS_PID=$!
step "$REPO_ROOT/hack/kind/build-tools.sh"
step "$REPO_ROOT/hack/kind/build-kubernetes.sh"
wait "$ROOTFS_PID" || { log "build-base-rootfs.sh failed"; exit 1; }
log "rootfs, tools and Kubernetes ready after $((SECONDS - t)) s"
t=$SECONDS
NODE_IMAGE="$("$REPO_ROOT/hack/kind/build-node-image.sh" | tail -n 1)"
log "build-node-image.sh took $((SECONDS - t)) s"

# Tools for the checkout.
TOOLS_BIN="$REPO_ROOT/.tools/bin"; mkdir -p "$TOOLS_BIN"
install -m 0755 "$CACHE/tools/kind-$KIND_VERSION/bin/kind" "$CACHE/tools/helm-$HELM_VERSION/bin/helm" \
  "$CACHE/kubernetes-$K8S_VERSION/bin/kubectl" "$TOOLS_BIN/"
KIND="$TOOLS_BIN/kind"
KUBECONFIG_FILE="$REPO_ROOT/.tools/kubeconfig"
CONFIG="${KIND_CONFIG:-$REPO_ROOT/kind-config.yaml}"
CLUSTER="$(awk '$1=="name:"{print $2; exit}' "$CONFIG")"

# Reuse a running cluster made from the same node image; otherwise recreate it.
if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  have="$(docker inspect -f '{{.Config.Image}}' "$CLUSTER-control-plane" 2>/dev/null || true)"
  # (After a machine or dockerd restart the old node containers may come back
  # half-working: reuse the cluster only if its API and all nodes are ready.)
  if [ "$have" = "$NODE_IMAGE" ] && "$KIND" get kubeconfig --name "$CLUSTER" >"$KUBECONFIG_FILE" 2>/dev/null &&
     timeout 30 "$TOOLS_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz >/dev/null 2>&1 &&
     "$TOOLS_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" wait --for=condition=Ready nodes --all --timeout=90s >/dev/null 2>&1; then
    log "cluster $CLUSTER is up (image $NODE_IMAGE)"
  else
    log "cluster $CLUSTER is stale (image ${have:-?}) or not ready: recreating"
    "$KIND" delete cluster --name "$CLUSTER"
  fi
fi
if ! "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  t=$SECONDS
  log "creating cluster $CLUSTER from $CONFIG with $NODE_IMAGE"
  "$KIND" create cluster --config "$CONFIG" --image "$NODE_IMAGE" --wait 5m
  log "kind create cluster took $((SECONDS - t)) s"
fi
"$KIND" get kubeconfig --name "$CLUSTER" >"$KUBECONFIG_FILE"
"$KIND" export kubeconfig --name "$CLUSTER" >/dev/null 2>&1 || true

# The project's images, when `make image` has built them: one `kind load`
# for all of them, so layers they share are saved and imported once.
LOAD=()
for img in ${KIND_LOAD_IMAGES:-posts-pipeline:latest posts-pipeline-operator:latest}; do
  if docker image inspect "$img" >/dev/null 2>&1; then LOAD+=("$img")
  else log "not loading $img: no such image (make image builds it)"; fi
done
if [ ${#LOAD[@]} -gt 0 ]; then
  t=$SECONDS
  "$KIND" load docker-image --name "$CLUSTER" "${LOAD[@]}"
  log "loaded ${LOAD[*]} in $((SECONDS - t)) s"
fi

K="$TOOLS_BIN/kubectl --kubeconfig $KUBECONFIG_FILE"
$K wait --for=condition=Ready nodes --all --timeout=300s
$K -n kube-system rollout status deployment/coredns --timeout=300s
$K get nodes -o wide
log "kind-up done in $((SECONDS - T0)) s; KUBECONFIG=$KUBECONFIG_FILE"
