#!/usr/bin/env bash
# Build the Go tools a kind cluster needs, each from the Go module proxy into
# its own cache folder $CACHE/tools/<name>-<version>/bin:
#   host side:  kind, helm (with the Kubernetes version ldflags)
#   node side:  containerd (+ shim, ctr), runc, crictl, CNI plugins
#   images:     coredns, etcd
# Usage: build-tools.sh [name...]   (default: all)
. "$(dirname "$0")/lib.sh"

# build NAME VERSION CMD...: run CMD with $BIN as output folder unless cached.
build() {
  local name=$1 version=$2; shift 2
  local out="$CACHE/tools/$name-$version"
  if done_marker "$out"; then return 0; fi
  log "building $name $version"
  rm -rf "$out"; mkdir -p "$out/bin"
  BIN="$out/bin" "$@"
  mark_done "$out"
}

need jq jq

gobin() { GOBIN="$BIN" go install -trimpath "$@"; }

# wrapped_build VERSION PKG... (go build flags in $WRAP_FLAGS): build packages
# of a module whose go.mod has replace/exclude directives (which `go install`
# refuses) from a throwaway module of ours that simply requires it.
wrapped_build() {
  local ver=$1; shift
  local src="$BIN/../src"; mkdir -p "$src"
  (cd "$src" && printf 'module posts-pipeline/wrap\n\ngo 1.24\n' >go.mod &&
    go get "${@/%/@$ver}" && "${GO_BUILD[@]}" "${WRAP_FLAGS[@]}" -o "$BIN/" "$@")
}

kind_() { gobin -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"; }

helm_() {
  # Helm's Makefile derives .Capabilities.KubeVersion from its client-go version
  # (v0.34.x -> 1.34); a plain `go install` would leave the default v1.20.
  local dir cg major minor
  dir="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | jq -r .Dir)"
  cg="$(awk '$1=="k8s.io/client-go"{print $2; exit}' "$dir/go.mod")"      # v0.34.x
  major=$(( $(echo "${cg#v}" | cut -d. -f1) + 1 )); minor="$(echo "$cg" | cut -d. -f2)"
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  gobin -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

crictl_() {
  gobin -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
}

containerd_() {
  # containerd's go.mod has exclude directives, so `go install` refuses it.
  local m=github.com/containerd/containerd/v2
  local ld="-s -w -X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Package=$m"
  WRAP_FLAGS=(-tags "no_aufs no_zfs no_btrfs no_devmapper urfave_cli_no_docs" -ldflags "$ld")
  wrapped_build "$CONTAINERD_VERSION" "$m/cmd/containerd" "$m/cmd/containerd-shim-runc-v2" "$m/cmd/ctr"
}

runc_() {
  # runc needs cgo (nsenter) and libseccomp; it links against the same
  # bookworm glibc/libseccomp2 that the node rootfs has.
  if ! pkg-config --exists libseccomp 2>/dev/null; then
    apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libseccomp-dev pkg-config gcc >/dev/null
  fi
  CGO_ENABLED=1 gobin -tags "seccomp urfave_cli_no_docs" \
    -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION"
}

cni_() {
  local p=github.com/containernetworking/plugins/plugins
  gobin -ldflags "-s -w" "$p/ipam/host-local@$CNI_PLUGINS_VERSION" "$p/main/loopback@$CNI_PLUGINS_VERSION" \
    "$p/main/ptp@$CNI_PLUGINS_VERSION" "$p/meta/portmap@$CNI_PLUGINS_VERSION"
}

coredns_() { gobin -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"; }

etcd_() {
  # etcd's server module replaces its sibling modules with ../ paths, so
  # `go install` refuses it; a wrapper module requires it like any dependency.
  WRAP_FLAGS=(-ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=release-$ETCD_VERSION")
  wrapped_build "$ETCD_VERSION" go.etcd.io/etcd/server/v3
  mv "$BIN/server" "$BIN/etcd"   # the main package's folder is named "server"
}

ALL=(kind helm crictl containerd runc cni coredns etcd)
for t in "${@:-${ALL[@]}}"; do
  case $t in
    kind) build kind "$KIND_VERSION" kind_ ;;
    helm) build helm "$HELM_VERSION" helm_ ;;
    crictl) build crictl "$CRICTL_VERSION" crictl_ ;;
    containerd) build containerd "$CONTAINERD_VERSION" containerd_ ;;
    runc) build runc "$RUNC_VERSION" runc_ ;;
    cni) build cni-plugins "$CNI_PLUGINS_VERSION" cni_ ;;
    coredns) build coredns "$COREDNS_VERSION" coredns_ ;;
    etcd) build etcd "$ETCD_VERSION" etcd_ ;;
    *) echo "unknown tool $t" >&2; exit 2 ;;
  esac
done
log "tools ready in $CACHE/tools"
