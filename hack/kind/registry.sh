# The local registry of the kind cluster, for hack/kind/*.sh after lib.sh:
# one container beside the kind nodes, on the kind network, published on the
# host's loopback. Nodes and host both name it localhost:$REGISTRY_PORT (on the
# nodes, containerd's hosts.toml sends that name to the container), as kind's
# local-registry guide does. (Not in lib.sh: the node image's tag hashes lib.sh,
# and the registry is not part of the node.)
REGISTRY_VERSION=v3.1.2       # github.com/distribution/distribution/v3 (cmd/registry)
REGISTRY_CONTAINER=posts-pipeline-registry
REGISTRY_PORT=5001
REGISTRY="localhost:$REGISTRY_PORT"
# The registry image's tag carries a hash of the script that makes it (its config).
registry_image() {
  echo "posts-pipeline/registry:$REGISTRY_VERSION-$(sha256sum <"$REPO_ROOT/hack/kind/build-registry.sh" | cut -c1-10)"
}

# registry_has NAME TAG: whether the registry holds NAME:TAG (a content tag
# names one content, so a tag that is there needs no push).
registry_has() {
  curl -sf -o /dev/null -I -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REGISTRY/v2/$1/manifests/$2"
}

# registry_push LOCAL_IMAGE TAG: push a local docker image to the registry as
# $REGISTRY/<its name>:TAG unless it is there; prints that reference.
registry_push() {
  local name="${1%:*}" ref
  name="${name##*/}"; ref="$REGISTRY/$name:$2"
  if registry_has "$name" "$2"; then
    log "$ref is in the registry"
  else
    docker tag "$1" "$ref"
    docker push -q "$ref" >/dev/null
    docker rmi "$ref" >/dev/null   # the tag only; the image stays as $1
  fi
  echo "$ref"
}
