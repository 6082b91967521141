#!/usr/bin/env bash
# `make kind-up`: build (or reuse from the cache) everything, start the local
# registry beside the nodes, create the kind cluster from kind-config.yaml with
# its nodes' containerd pulling from that registry, push the project images
# (content tags) and the chart (OCI) there, and leave kind, kubectl and helm in
# .tools/bin, the kubeconfig in .tools/kubeconfig (and merged into
# ~/.kube/config, where a bare kubectl looks) and what was pushed in
# .tools/registry.json.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
T0=$SECONDS
step() { local t=$SECONDS; "$@"; log "$(basename "$1") took $((SECONDS - t)) s"; }

step "$REPO_ROOT/hack/docker-engine.sh"
need jq jq; need curl curl
# The rootfs mostly waits on Debian's mirror and the Go builds on the CPU:
# run them side by side.
t=$SECONDS
"$REPO_ROOT/hack/kind/build-base-rootfs.sh" & ROOTFS_PID=$!
step "$REPO_ROOT/hack/kind/build-tools.sh"
step "$REPO_ROOT/hack/kind/build-kubernetes.sh"
wait "$ROOTFS_PID" || { log "build-base-rootfs.sh failed"; exit 1; }
log "rootfs, tools and Kubernetes ready after $((SECONDS - t)) s"
# The registry's Go build (when not cached) runs beside the node image and the
# cluster's creation, which mostly wait on docker and kubeadm; it is needed
# only once the cluster is up.
"$REPO_ROOT/hack/kind/build-registry.sh" --binary >/dev/null & REGISTRY_PID=$!
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
K=("$TOOLS_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE")

# Reuse a running cluster made from the same node image and the same config
# (whose hash up.sh leaves on the control-plane node); otherwise recreate it.
CONFIG_SUM="$(sha256sum <"$CONFIG" | cut -c1-16)"
SUM_FILE=/kind/posts-pipeline-config.sum
if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  have="$(docker inspect -f '{{.Config.Image}}' "$CLUSTER-control-plane" 2>/dev/null || true)"
  have_sum="$(docker exec "$CLUSTER-control-plane" cat "$SUM_FILE" 2>/dev/null || true)"
  # (After a machine or dockerd restart the old node containers may come back
  # half-working: reuse the cluster only if its API and all nodes are ready.)
  if [ "$have" = "$NODE_IMAGE" ] && [ "$have_sum" = "$CONFIG_SUM" ] &&
     "$KIND" get kubeconfig --name "$CLUSTER" >"$KUBECONFIG_FILE" 2>/dev/null &&
     timeout 30 "${K[@]}" get --raw /readyz >/dev/null 2>&1 &&
     "${K[@]}" wait --for=condition=Ready nodes --all --timeout=90s >/dev/null 2>&1; then
    log "cluster $CLUSTER is up (image $NODE_IMAGE, config $CONFIG_SUM)"
  else
    log "cluster $CLUSTER is stale (image ${have:-?}, config ${have_sum:-?}) or not ready: recreating"
    "$KIND" delete cluster --name "$CLUSTER"
  fi
fi
if ! "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  t=$SECONDS
  log "creating cluster $CLUSTER from $CONFIG with $NODE_IMAGE"
  "$KIND" create cluster --config "$CONFIG" --image "$NODE_IMAGE" --wait 5m
  docker exec "$CLUSTER-control-plane" sh -c "echo $CONFIG_SUM >$SUM_FILE"
  log "kind create cluster took $((SECONDS - t)) s"
fi
"$KIND" get kubeconfig --name "$CLUSTER" >"$KUBECONFIG_FILE"
"$KIND" export kubeconfig --name "$CLUSTER" >/dev/null 2>&1 || true

# The registry, as kind's local-registry guide runs it: a container published
# on the host's loopback and joined to the kind network (below); its storage
# is a named volume, which outlives the container.
t=$SECONDS
wait "$REGISTRY_PID" || { log "build-registry.sh failed"; exit 1; }
log "waited $((SECONDS - t)) s for build-registry.sh"
REGISTRY_IMAGE="$("$REPO_ROOT/hack/kind/build-registry.sh" | tail -n 1)"
if [ "$(docker inspect -f '{{.State.Running}} {{.Config.Image}}' "$REGISTRY_CONTAINER" 2>/dev/null)" != "true $REGISTRY_IMAGE" ]; then
  docker rm -f "$REGISTRY_CONTAINER" >/dev/null 2>&1 || true
  log "starting $REGISTRY_CONTAINER ($REGISTRY_IMAGE) on 127.0.0.1:$REGISTRY_PORT"
  docker run -d --restart=always --name "$REGISTRY_CONTAINER" -p "127.0.0.1:$REGISTRY_PORT:5000" \
    -v "$REGISTRY_CONTAINER:/var/lib/registry" "$REGISTRY_IMAGE" >/dev/null
fi
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://$REGISTRY/v2/" && break; sleep 0.2; done
if ! curl -sf -o /dev/null "http://$REGISTRY/v2/"; then
  log "the registry $REGISTRY_CONTAINER does not answer on $REGISTRY; its log:"
  docker logs --tail 20 "$REGISTRY_CONTAINER" >&2; exit 1
fi

# Every node's containerd sends the name localhost:$REGISTRY_PORT (which pods
# use, and the host too) to the registry container on the kind network
# (kind-config.yaml points containerd at /etc/containerd/certs.d).
for node in $("$KIND" get nodes --name "$CLUSTER"); do
  docker exec -i "$node" sh -c "mkdir -p '/etc/containerd/certs.d/$REGISTRY' &&
    cat >'/etc/containerd/certs.d/$REGISTRY/hosts.toml'" <<EOF
[host."http://$REGISTRY_CONTAINER:5000"]
  capabilities = ["pull", "resolve"]
EOF
done
if [ "$(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "$REGISTRY_CONTAINER")" = null ]; then
  docker network connect kind "$REGISTRY_CONTAINER"
fi
# The registry, documented for tools that look for it (KEP-1755).
"${K[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "$REGISTRY"
    hostFromContainerRuntime: "$REGISTRY"
    hostFromClusterNetwork: "$REGISTRY_CONTAINER:5000"
    help: "https://kind.sigs.k8s.io/docs/user/local-registry/"
EOF

# The project's images, when `make image` has built them, pushed under their
# content tag (<version>-<content key>, the key build-image.sh labels them
# with); pods pull them from the registry. Then the chart, as an OCI artifact.
VERSION="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$REPO_ROOT/pyproject.toml" | head -1)"
t=$SECONDS
IMAGES="{}"
for name in ${KIND_PUSH_IMAGES:-posts-pipeline posts-pipeline-operator posts-pipeline-test}; do
  key="$(docker image inspect -f '{{index .Config.Labels "io.posts-pipeline.content-key"}}' "$name:$VERSION" 2>/dev/null || true)"
  if [ -z "$key" ]; then log "not pushing $name: no image $name:$VERSION (make image builds it)"; continue; fi
  ref="$(registry_push "$name:$VERSION" "$VERSION-$key")"
  IMAGES="$(jq -c --arg n "$name" --arg r "$ref" '. + {($n): $r}' <<<"$IMAGES")"
done
log "images in the registry after $((SECONDS - t)) s: $(jq -r 'map(.) | join(" ")' <<<"$IMAGES")"
chart="$(HELM="$TOOLS_BIN/helm" "$REPO_ROOT/hack/kind/push-chart.sh" | tail -n 1)"   # "oci://... <version>"
CHART="${chart% *}" CHART_VERSION="${chart##* }"
jq -n --arg registry "$REGISTRY" --argjson images "$IMAGES" --arg chart "$CHART" --arg version "$CHART_VERSION" \
  '{registry: $registry, images: $images, chart: $chart, chart_version: $version}' >"$REPO_ROOT/.tools/registry.json"

"${K[@]}" wait --for=condition=Ready nodes --all --timeout=300s
"${K[@]}" -n kube-system rollout status deployment/coredns --timeout=300s
"${K[@]}" get nodes -o wide
log "kind-up done in $((SECONDS - T0)) s; KUBECONFIG=$KUBECONFIG_FILE; pushed: $REPO_ROOT/.tools/registry.json"
