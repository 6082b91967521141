#!/usr/bin/env bash
# Build posts-pipeline:<version>/:latest and posts-pipeline-operator:<version>/:latest.
#
# Cached by content: the inputs (Dockerfile, lock file, pyproject, package
# sources, this script, the base image) are hashed into a key that is stored as
# a label; when the tagged images already carry the current key, nothing is
# built (a second `make image` does nothing). Otherwise Docker's layer
# cache still skips the dependency layer unless requirements/lock.txt changed.
#
#   docker/build-image.sh               build for this machine (local Debian base)
#   BASE_IMAGE=python:3.11-slim-bookworm docker/build-image.sh   use another base
#   FORCE=1 docker/build-image.sh       rebuild even if the key matches
#   docker/build-image.sh --test        also posts-pipeline-test:<version> (for tests/docker)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "[$(date +%H:%M:%S)] build-image: $*" >&2; }
export DOCKER_BUILDKIT=0   # the client here has no buildx; the legacy builder is enough

VERSION="$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -1)"
[ -n "$VERSION" ] || { log "no version in pyproject.toml"; exit 1; }
IMAGE="${IMAGE:-posts-pipeline}"
OPERATOR_IMAGE="${OPERATOR_IMAGE:-posts-pipeline-operator}"
TEST_IMAGE="${TEST_IMAGE:-posts-pipeline-test}"
TARGETS=(runtime operator)
[ "${1:-}" = --test ] && TARGETS+=(test)
image_of() { case "$1" in runtime) echo "$IMAGE";; operator) echo "$OPERATOR_IMAGE";; test) echo "$TEST_IMAGE";; esac; }

# 1. An engine (installs docker.io and starts dockerd on a fresh machine).
hack/docker-engine.sh

# 2. The base image.
BASE_IMAGE="${BASE_IMAGE:-$(docker/build-base.sh)}"
BASE_ID="$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE")"

# 3. The content key.
SOURCES=(docker/Dockerfile docker/build-image.sh docker/slim-venv.sh docker/test-extras.py requirements/lock.txt requirements/test-lock.txt pyproject.toml)
[ -f README.md ] && SOURCES+=(README.md)
mapfile -t PKG_FILES < <(find pipeline -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort)
KEY="$( { echo "$BASE_ID"; sha256sum "${SOURCES[@]}" "${PKG_FILES[@]}"; } | sha256sum | cut -c1-16)"

current_key() { docker image inspect --format '{{index .Config.Labels "io.posts-pipeline.content-key"}}' "$1" 2>/dev/null || true; }
up_to_date=1
for target in "${TARGETS[@]}"; do
  [ "$(current_key "$(image_of "$target"):$VERSION")" = "$KEY" ] || up_to_date=
done
if [ -z "${FORCE:-}" ] && [ -n "$up_to_date" ]; then
  log "up to date: $(for t in "${TARGETS[@]}"; do printf '%s ' "$(image_of "$t"):$VERSION"; done)(key $KEY)"
  exit 0
fi

lock_version() { sed -n "s/^$1==\([^ ]*\).*/\1/p" requirements/lock.txt; }
PYTHON_VERSION="$(docker run --rm --entrypoint python3 "$BASE_IMAGE" -c 'import platform; print(platform.python_version())')"
BUILD_ARGS=(
  --build-arg "BASE_IMAGE=$BASE_IMAGE"
  --build-arg "VERSION=$VERSION"
  --build-arg "PYTHON_VERSION=$PYTHON_VERSION"
  --build-arg "DASK_VERSION=$(lock_version dask)"
  --build-arg "DISTRIBUTED_VERSION=$(lock_version distributed)"
  --build-arg "CONTENT_KEY=$KEY"
)

# 4. The build context, streamed as a tar: the files the Dockerfile copies, plus
# this machine's extra CA certificates under docker/build-ca/ (for pip behind the
# HTTPS proxy; used by the builder stage only). Nothing is written to the checkout.
CTX="$(mktemp -d)"; trap 'rm -rf "$CTX"' EXIT
tar -cf "$CTX/context.tar" --owner=0 --group=0 --exclude=__pycache__ --exclude='*.pyc' \
  "${SOURCES[@]}" pipeline docker/build-ca
shopt -s nullglob
CAS=(/usr/local/share/ca-certificates/*.crt)
if [ "${#CAS[@]}" -gt 0 ]; then
  tar -rf "$CTX/context.tar" --owner=0 --group=0 -C /usr/local/share/ca-certificates \
    --transform 's,^,docker/build-ca/,' "${CAS[@]##*/}"
fi

for target in "${TARGETS[@]}"; do
  name="$(image_of "$target")"
  log "building $name:$VERSION (target $target, base $BASE_IMAGE, key $KEY)"
  if ! docker build --force-rm -f docker/Dockerfile --target "$target" "${BUILD_ARGS[@]}" \
      -t "$name:$VERSION" -t "$name:latest" - <"$CTX/context.tar" >"$CTX/build.log" 2>&1; then
    log "docker build failed; last lines of its log:"
    tail -n 40 "$CTX/build.log" >&2
    exit 1
  fi
done

# Dangling images from earlier keys take disk; drop the ones we made.
docker image prune --force --filter "label=io.posts-pipeline.content-key" >/dev/null || true
log "built $IMAGE:$VERSION ($(docker image inspect --format '{{.Size}}' "$IMAGE:$VERSION" | awk '{printf "%.0f MB", $1/1e6}')), $OPERATOR_IMAGE:$VERSION"
