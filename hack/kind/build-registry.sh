#!/usr/bin/env bash
# Build the container registry the kind cluster pulls from: the CNCF
# distribution registry (cmd/registry) from the Go module proxy, static, into
# $CACHE/registry-<version>/bin, then the docker image registry_image (lib.sh)
# from a rootfs of that binary and its config alone (`docker import`: no base
# image, nothing pulled). Each step is skipped when its result is there.
#   build-registry.sh            binary, then the image
#   build-registry.sh --binary   the binary only (no Docker needed)
# Prints the image name (with --binary: the binary's path) on its last line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"

OUT="$CACHE/registry-$REGISTRY_VERSION"
MODULE=github.com/distribution/distribution/v3
if ! done_marker "$OUT"; then
  log "building registry $REGISTRY_VERSION"
  t=$SECONDS
  rm -rf "$OUT"; mkdir -p "$OUT/bin"
  GOBIN="$OUT/bin" go install -p "${GO_BUILD_JOBS:-2}" -trimpath \
    -ldflags "-s -w -X $MODULE/version.version=$REGISTRY_VERSION -X $MODULE/version.mainpkg=$MODULE" \
    "$MODULE/cmd/registry@$REGISTRY_VERSION"
  log "registry $REGISTRY_VERSION built in $((SECONDS - t)) s"
  mark_done "$OUT"
fi
if [ "${1:-}" = --binary ]; then echo "$OUT/bin/registry"; exit 0; fi

IMAGE="$(registry_image)"
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "importing $IMAGE"
  ROOT="$(mktemp -d)"; trap 'rm -rf "$ROOT"' EXIT
  mkdir -p "$ROOT/etc/distribution" "$ROOT/var/lib/registry" "$ROOT/tmp"
  install -m 0755 "$OUT/bin/registry" "$ROOT/registry"
  # Filesystem storage in the container's volume; plain HTTP, as it is reached
  # on the host's loopback and the kind network only; deletes allowed, so that
  # old content tags can be removed.
  cat >"$ROOT/etc/distribution/config.yml" <<'YAML'
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
YAML
  chmod 1777 "$ROOT/tmp"
  # Everything root's but the storage, which the registry (user nobody) writes.
  tar -C "$ROOT" --numeric-owner --owner=0 --group=0 --no-recursion -cf "$ROOT.tar" \
    . ./registry ./etc ./etc/distribution ./etc/distribution/config.yml ./tmp ./var ./var/lib
  tar -C "$ROOT" --numeric-owner --owner=65534 --group=65534 -rf "$ROOT.tar" ./var/lib/registry
  docker import --change 'USER 65534:65534' --change 'ENTRYPOINT ["/registry"]' \
    --change 'CMD ["serve", "/etc/distribution/config.yml"]' --change 'EXPOSE 5000' \
    --change 'VOLUME /var/lib/registry' "$ROOT.tar" "$IMAGE" >/dev/null
  rm -f "$ROOT.tar"
fi
echo "$IMAGE"
