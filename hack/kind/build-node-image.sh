#!/usr/bin/env bash
# Assemble the kind node image by hand, the way `kind build node-image` does
# (which always tries to pull, so it cannot run here):
#   1. the debootstrap'd rootfs becomes a docker image ($ROOTFS_IMAGE);
#   2. images kubeadm asks for (control plane, etcd, coredns, pause) are built
#      from our binaries under their exact registry.k8s.io names;
#   3. the node = rootfs + kind's base files (read from the kind module in the
#      Go module cache) + containerd/runc/crictl/CNI + kubeadm/kubelet/kubectl
#      + our pod-network service; the images of step 2 are imported into its
#      containerd (k8s.io namespace) and the container is `docker commit`ed.
# Prints the node image name on its last line of stdout.
. "$(dirname "$0")/lib.sh"

NODE_IMAGE="$(node_image)"
OUT="$CACHE/node-image-${NODE_IMAGE##*:}"
export DOCKER_BUILDKIT=0   # the docker client here has no buildx

if docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
  log "present: $NODE_IMAGE"; echo "$NODE_IMAGE"; exit 0
fi
if done_marker "$OUT"; then
  log "loading $NODE_IMAGE from $OUT/node.tar"
  docker load -i "$OUT/node.tar" >/dev/null
  echo "$NODE_IMAGE"; exit 0
fi

need jq jq
K8S_BIN="$CACHE/kubernetes-$K8S_VERSION/bin"
TOOLS="$CACHE/tools"
KIND_FILES="$(go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)/images/base/files"
for f in "$K8S_BIN/kubeadm" "$TOOLS/containerd-$CONTAINERD_VERSION/bin/containerd" "$KIND_FILES/usr/local/bin/entrypoint"; do
  [ -e "$f" ] || { echo "missing $f: run build-kubernetes.sh and build-tools.sh first" >&2; exit 1; }
done
rm -rf "$OUT"; mkdir -p "$OUT"
CTX="$OUT/ctx"

# 1. rootfs image
if ! docker image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1; then
  log "importing $ROOTFS_IMAGE"
  docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$CACHE/base-rootfs-$DEBIAN_SUITE-r$ROOTFS_REV/rootfs.tar" "$ROOTFS_IMAGE" >/dev/null
fi

# 2. the images kubeadm pulls, from our binaries
log "building pause"
mkdir -p "$CTX/pause"
(cd "$REPO_ROOT/hack/kind/pause" && "${GO_BUILD[@]}" -ldflags "-s -w" -o "$CTX/pause/pause" .)

mapfile -t IMAGES < <("$K8S_BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION")
for img in "${IMAGES[@]}"; do
  name="${img%:*}"; name="${name##*/}"; tag="${img##*:}"
  dir="$CTX/img-$name"; mkdir -p "$dir"
  case $name in
    kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy)
      cp "$K8S_BIN/$name" "$dir/"
      printf 'FROM %s\nCOPY %s /usr/local/bin/%s\n' "$ROOTFS_IMAGE" "$name" "$name" >"$dir/Dockerfile" ;;
    etcd)
      [ "$tag" = "${ETCD_VERSION#v}-0" ] || { echo "kubeadm wants $img, lib.sh builds etcd $ETCD_VERSION" >&2; exit 1; }
      cp "$TOOLS/etcd-$ETCD_VERSION/bin/etcd" "$dir/"
      printf 'FROM %s\nCOPY etcd /usr/local/bin/etcd\n' "$ROOTFS_IMAGE" >"$dir/Dockerfile" ;;
    coredns)
      [ "$tag" = "$COREDNS_VERSION" ] || { echo "kubeadm wants $img, lib.sh builds coredns $COREDNS_VERSION" >&2; exit 1; }
      cp "$TOOLS/coredns-$COREDNS_VERSION/bin/coredns" "$dir/"
      printf 'FROM %s\nCOPY coredns /coredns\nENTRYPOINT ["/coredns"]\n' "$ROOTFS_IMAGE" >"$dir/Dockerfile" ;;
    pause)
      [ "$tag" = "$PAUSE_VERSION" ] || { echo "kubeadm wants $img, lib.sh says pause $PAUSE_VERSION" >&2; exit 1; }
      cp "$CTX/pause/pause" "$dir/"
      printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$dir/Dockerfile" ;;
    *) echo "no recipe for image $img" >&2; exit 1 ;;
  esac
  log "building image $img"
  docker build -q -t "$img" "$dir" >/dev/null
done
log "saving images for the node"
docker save -o "$OUT/images.tar" "${IMAGES[@]}" "$ROOTFS_IMAGE"

# 3. node root: kind's base files + binaries + our pod network
N="$CTX/node"; mkdir -p "$N/root"
cp -r "$KIND_FILES/." "$N/root/"
chmod -R u+w,go-w "$N/root"
find "$N/root" -type d -exec chmod 0755 {} + ; find "$N/root" -type f -exec chmod 0644 {} +
chmod 0755 "$N/root/usr/local/bin/"* "$N/root/kind/bin/"*
rm -f "$N/root/etc/systemd/system/containerd-fuse-overlayfs.service"
install -D -m 0755 -t "$N/root/usr/local/bin" \
  "$TOOLS/containerd-$CONTAINERD_VERSION/bin/"{containerd,containerd-shim-runc-v2,ctr} \
  "$TOOLS/crictl-$CRICTL_VERSION/bin/crictl" "$REPO_ROOT/hack/kind/node/posts-cni-sync"
install -D -m 0755 "$TOOLS/runc-$RUNC_VERSION/bin/runc" "$N/root/usr/local/sbin/runc"
install -D -m 0755 -t "$N/root/opt/cni/bin" "$TOOLS/cni-plugins-$CNI_PLUGINS_VERSION/bin/"*
install -D -m 0755 -t "$N/root/usr/bin" "$K8S_BIN/"{kubeadm,kubelet,kubectl}
install -D -m 0644 -t "$N/root/etc/systemd/system" "$REPO_ROOT/hack/kind/node/posts-cni-sync.service"
echo "$K8S_VERSION" >"$N/root/kind/version"
cat >"$N/Dockerfile" <<EOF
FROM $ROOTFS_IMAGE
COPY root/ /
# containerd: the pause image we ship; pod oom_score_adj no lower than
# containerd's own (this host cannot lower it: no CAP_SYS_RESOURCE); no
# fuse-overlayfs (not built). cri-base.json as in kind's base image.
RUN set -eux; c=/etc/containerd/config.toml; \
    sed -i -e 's|^\(\s*sandbox_image\s*=\).*|\1 "registry.k8s.io/pause:$PAUSE_VERSION"|' \
           -e 's|^\(\s*restrict_oom_score_adj\s*=\).*|\1 true|' "\$c"; \
    sed -i -e '/^\[proxy_plugins\]/,/^\s*address/d' "\$c"; \
    grep -q 'restrict_oom_score_adj = true' "\$c"; grep -q 'pause:$PAUSE_VERSION' "\$c"; \
    ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
      | jq 'del(.process.rlimits)' >/etc/containerd/cri-base.json; \
    systemctl enable kubelet.service containerd.service undo-mount-hacks.service posts-cni-sync.service; \
    mkdir -p /etc/kubernetes/manifests; \
    containerd --version; runc --version; kubelet --version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
EOF
BASE_IMAGE="posts-pipeline/kind-node-base:${NODE_IMAGE##*:}"
log "building $BASE_IMAGE"
docker build -q -t "$BASE_IMAGE" "$N" >/dev/null

# 4. import the images into the node's containerd, as kind does, and commit
log "importing images into the node's containerd"
BUILDER="posts-kind-build-$$"
docker rm -f "$BUILDER" >/dev/null 2>&1 || true
trap 'docker rm -f -v "$BUILDER" >/dev/null 2>&1 || true' EXIT
docker run -d --name "$BUILDER" --entrypoint=sleep --security-opt seccomp=unconfined "$BASE_IMAGE" infinity >/dev/null
docker exec "$BUILDER" bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
docker exec "$BUILDER" bash -c 'for i in $(seq 1 50); do [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1 && exit 0; sleep 0.2; done; cat /tmp/containerd.log; exit 1'
docker exec -i "$BUILDER" ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
  --all-platforms --no-unpack --digests - <"$OUT/images.tar" >/dev/null
docker exec "$BUILDER" ctr --namespace=k8s.io images ls -q | sort >"$OUT/images.txt"
# Stop containerd cleanly (its metadata db is flushed on exit). It ends as a
# zombie, since `sleep` (PID 1 here) does not reap: wait for state Z.
docker exec "$BUILDER" bash -c 'pkill containerd; for i in $(seq 1 100); do ps -C containerd -o stat= | grep -qv "^Z" || exit 0; sleep 0.2; done; exit 1'
docker exec "$BUILDER" rm -f /tmp/containerd.log
for img in "${IMAGES[@]}"; do
  grep -qx "$img" "$OUT/images.txt" || { echo "image $img missing from the node's containerd" >&2; cat "$OUT/images.txt" >&2; exit 1; }
done
docker commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' "$BUILDER" "$NODE_IMAGE" >/dev/null
docker rm -f -v "$BUILDER" >/dev/null; trap - EXIT
docker rmi "$BASE_IMAGE" >/dev/null 2>&1 || true

log "saving $NODE_IMAGE to $OUT/node.tar"
docker save -o "$OUT/node.tar" "$NODE_IMAGE"
rm -rf "$CTX" "$OUT/images.tar"
mark_done "$OUT"
log "done: $NODE_IMAGE"
echo "$NODE_IMAGE"
