#!/usr/bin/env bash
# Build the Kubernetes binaries (kubeadm, kubelet, kubectl and the control
# plane) from the Go module proxy.
#
# Why a wrapper module: k8s.io/kubernetes' go.mod points its staging modules
# (k8s.io/api, k8s.io/client-go, ...) at ./staging/... with version v0.0.0, so
# `go install k8s.io/kubernetes/cmd/...@v1.x` fails. A tiny module of ours
# requires k8s.io/kubernetes and replaces each staging module with its
# published v0.<minor>.<patch> release. Version ldflags are set the way
# Kubernetes' hack/lib/version.sh does, so kubeadm picks the right images.
. "$(dirname "$0")/lib.sh"

OUT="$CACHE/kubernetes-$K8S_VERSION"
if done_marker "$OUT"; then log "cached: $OUT"; exit 0; fi
need jq jq
rm -rf "$OUT"; mkdir -p "$OUT/bin" "$OUT/src"
cd "$OUT/src"

STAGING_VERSION="v0.${K8S_VERSION#v1.}"   # v1.34.4 -> v0.34.4
log "resolving k8s.io/kubernetes@$K8S_VERSION"
INFO="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION")"
UPSTREAM_GOMOD="$(echo "$INFO" | jq -r .GoMod)"
GIT_COMMIT="$(echo "$INFO" | jq -r '.Origin.Hash // empty')"

{
  echo "module posts-pipeline/kubernetes-build"
  echo
  echo "go $(awk '/^go /{print $2; exit}' "$UPSTREAM_GOMOD")"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  # Every "k8s.io/x => ./staging/src/k8s.io/x" of upstream becomes a published version.
  grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$UPSTREAM_GOMOD" |
    awk -v v="$STAGING_VERSION" '{print "replace " $1 " => " $1 " " v}'
} >go.mod
log "go.mod has $(grep -c '^replace' go.mod) staging replacements"

CMDS=(kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
PKGS=()
for c in "${CMDS[@]}"; do PKGS+=("k8s.io/kubernetes/cmd/$c"); done
go get "${PKGS[@]/%/@$K8S_VERSION}" >/dev/null 2>&1 || go get "${PKGS[@]}"

MAJOR=1; MINOR="$(echo "$K8S_VERSION" | cut -d. -f2)"
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$MAJOR -X $pkg.gitMinor=$MINOR"
  LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  [ -n "$GIT_COMMIT" ] && LDFLAGS+=" -X $pkg.gitCommit=$GIT_COMMIT"
done

log "building ${CMDS[*]} (this is the long step: tens of minutes on 2 cores)"
"${GO_BUILD[@]}" -ldflags "$LDFLAGS" -o "$OUT/bin/" "${PKGS[@]}"
"$OUT/bin/kubeadm" version -o short
mark_done "$OUT"
log "done: $OUT/bin"
