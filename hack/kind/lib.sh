# Shared settings for hack/kind/*.sh: versions and the cache layout.
# Every long build lands in $CACHE/<thing>-<version>/ outside the checkout, so a
# fresh clone on the same machine rebuilds nothing; bump a version to rebuild.
set -euo pipefail

KIND_VERSION=v0.32.0          # sigs.k8s.io/kind (go install)
K8S_VERSION=v1.34.4           # k8s.io/kubernetes (1.35+ refuses cgroup v1 by default)
HELM_VERSION=v3.19.5          # helm.sh/helm/v3 (built against k8s.io/client-go 0.34)
CRICTL_VERSION=v1.34.0        # sigs.k8s.io/cri-tools
CONTAINERD_VERSION=v2.1.5     # github.com/containerd/containerd/v2
RUNC_VERSION=v1.3.6           # github.com/opencontainers/runc
CNI_PLUGINS_VERSION=v1.7.1    # github.com/containernetworking/plugins
DEBIAN_SUITE=bookworm         # trixie's systemd refuses to boot on cgroup v1
ROOTFS_REV=1                  # bump when build-base-rootfs.sh changes

CACHE="${POSTS_PIPELINE_CACHE:-/var/cache/posts-pipeline}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PATH="/usr/local/go/bin:$PATH"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# Two cores are shared with other work: do not start more compilers than that.
export GOMAXPROCS="${GOMAXPROCS:-2}"
GO_BUILD=(go build -p "${GO_BUILD_JOBS:-2}" -trimpath)

# need CMD PACKAGE: install a Debian package when its command is missing.
need() { command -v "$1" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }

log() { echo "[$(date +%H:%M:%S)] $(basename "$0"): $*" >&2; }

# done_or_run DIR CMD...: run CMD only if DIR/.done is missing, then mark it.
# A half-finished build leaves no .done and is redone from scratch.
done_marker() { [ -f "$1/.done" ]; }
mark_done() { date -u +%FT%TZ >"$1/.done"; }
# Versions kubeadm $K8S_VERSION asks for (checked against `kubeadm config images list`).
ETCD_VERSION=v3.6.5           # go.etcd.io/etcd/server/v3 -> registry.k8s.io/etcd:3.6.5-0
COREDNS_VERSION=v1.12.1       # github.com/coredns/coredns -> registry.k8s.io/coredns/coredns:v1.12.1
PAUSE_VERSION=3.10.1          # our own pause (hack/kind/pause) -> registry.k8s.io/pause:3.10.1

ROOTFS_IMAGE="posts-pipeline/kind-rootfs:$DEBIAN_SUITE-r$ROOTFS_REV"
# The node image tag carries a hash of everything that goes into it, so any
# change to versions or node files gives a new tag (and a rebuild).
node_image() {
  local h
  h="$(cd "$REPO_ROOT/hack/kind" && cat lib.sh build-node-image.sh node/* pause/*.go | sha256sum | cut -c1-10)"
  echo "posts-pipeline/kind-node:$K8S_VERSION-$h"
}
