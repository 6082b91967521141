#!/usr/bin/env bash
# `make kind-down`: delete the kind cluster named in kind-config.yaml and stop
# the registry beside it (its volume stays: a later kind-up pushes nothing the
# registry holds already).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
CONFIG="${KIND_CONFIG:-$REPO_ROOT/kind-config.yaml}"
CLUSTER="$(awk '$1=="name:"{print $2; exit}' "$CONFIG")"
KIND="$REPO_ROOT/.tools/bin/kind"
[ -x "$KIND" ] || KIND="$CACHE/tools/kind-$KIND_VERSION/bin/kind"
if [ -x "$KIND" ] && docker info >/dev/null 2>&1; then
  "$KIND" delete cluster --name "$CLUSTER"
  if docker inspect "$REGISTRY_CONTAINER" >/dev/null 2>&1; then
    log "removing $REGISTRY_CONTAINER (its volume stays)"; docker rm -f "$REGISTRY_CONTAINER" >/dev/null
  fi
else
  log "no kind or no docker engine: nothing to delete"
fi
rm -f "$REPO_ROOT/.tools/kubeconfig"
