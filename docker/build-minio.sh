#!/usr/bin/env bash
# Build MinIO (a real S3 object store) from the Go module proxy and wrap it in a
# small image `posts-pipeline-minio:<version>` on the local Debian base, for tests.
#
# Why: no container registry is reachable here, so minio/minio cannot be pulled;
# the Go module proxy is, and github.com/minio/minio is a Go module without
# replace directives, so `go install` builds it. Cached by version in $CACHE.
#   docker/build-minio.sh          print the image reference (build it if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"   # go list -m github.com/minio/minio@latest
CACHE="${POSTS_PIPELINE_CACHE:-/var/cache/posts-pipeline}"
OUT="$CACHE/minio-$MINIO_VERSION"
IMAGE="posts-pipeline-minio:${MINIO_VERSION##*-}"
export PATH="/usr/local/go/bin:$PATH" CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOMAXPROCS="${GOMAXPROCS:-2}"

log() { echo "[$(date +%H:%M:%S)] build-minio: $*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then echo "$IMAGE"; exit 0; fi

if [ ! -x "$OUT/bin/minio" ]; then
  log "go install github.com/minio/minio@$MINIO_VERSION (several minutes on 2 cores)"
  mkdir -p "$OUT"
  GOBIN="$OUT/bin.tmp" nice -n 19 go install -p 2 -trimpath -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"
  mv "$OUT/bin.tmp" "$OUT/bin"
fi

BASE_IMAGE="$(docker/build-base.sh)"
CTX="$(mktemp -d)"; trap 'rm -rf "$CTX"' EXIT
cp "$OUT/bin/minio" "$CTX/minio"
cat >"$CTX/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
COPY minio /usr/local/bin/minio
RUN useradd --uid 1000 --create-home minio && mkdir -p /data && chown minio /data
USER 1000
ENTRYPOINT ["tini", "--", "minio"]
CMD ["server", "/data", "--address", ":9000"]
LABEL io.posts-pipeline.minio="$MINIO_VERSION"
DOCKERFILE
DOCKER_BUILDKIT=0 docker build --quiet --force-rm -t "$IMAGE" "$CTX" >/dev/null
log "built $IMAGE"
echo "$IMAGE"
