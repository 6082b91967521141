#!/usr/bin/env bash
# Make sure a Docker engine answers, configured for this kind of host.
#
# Why: the machines have only the docker client. This host also lacks
# CAP_SYS_RESOURCE, so runc cannot start --privileged containers (kind nodes);
# dockerd therefore runs with our wrapper (hack/oci-runtime-wrapper) as its
# default runtime, which drops that one capability before calling runc.
#
# Idempotent and quick when the engine is already up with our runtime: safe to
# call from every make target that needs Docker.
#   hack/docker-engine.sh           ensure the engine is running
#   DOCKERD_LOG=/path ...           where dockerd logs (default outside the checkout)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUNTIME_NAME=posts-runc
RUNTIME_PATH=/usr/local/sbin/posts-runc
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/posts-pipeline-dockerd.log}"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

log() { echo "docker-engine: $*" >&2; }

engine_ok() {
  # The engine answers and uses our runtime by default.
  [ "$(timeout 10 docker info --format '{{.DefaultRuntime}}' 2>/dev/null)" = "$RUNTIME_NAME" ]
}

# Fast path: nothing to do (the wrapper is also up to date).
src_sum() { cat "$HERE"/oci-runtime-wrapper/*.go "$HERE"/oci-runtime-wrapper/go.mod | sha256sum | cut -c1-16; }
SUM="$(src_sum)"
if engine_ok && [ "$(cat "$RUNTIME_PATH.sum" 2>/dev/null)" = "$SUM" ]; then
  exit 0
fi

# 1. Install Debian's docker.io (dockerd, containerd, runc) if absent.
if ! command -v dockerd >/dev/null; then
  log "installing docker.io from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null
fi

# 2. Build the runtime wrapper when its source changed.
if [ "$(cat "$RUNTIME_PATH.sum" 2>/dev/null)" != "$SUM" ] || [ ! -x "$RUNTIME_PATH" ]; then
  log "building $RUNTIME_PATH"
  (cd "$HERE/oci-runtime-wrapper" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o "$RUNTIME_PATH.tmp" .)
  mv "$RUNTIME_PATH.tmp" "$RUNTIME_PATH"
  echo "$SUM" >"$RUNTIME_PATH.sum"
fi

# kind bind-mounts /lib/modules into every node; this host has none.
mkdir -p /lib/modules

# 3. (Re)start dockerd with our runtime as the default.
if engine_ok; then
  exit 0
fi
if pid="$(cat /var/run/docker.pid 2>/dev/null)" && kill -0 "$pid" 2>/dev/null; then
  log "restarting dockerd (pid $pid) to use runtime $RUNTIME_NAME"
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
fi
# containerd is started by dockerd itself (its managed containerd).
log "starting dockerd, log in $DOCKERD_LOG"
mkdir -p "$(dirname "$DOCKERD_LOG")"
setsid nohup dockerd \
  --add-runtime "$RUNTIME_NAME=$RUNTIME_PATH" \
  --default-runtime "$RUNTIME_NAME" \
  >>"$DOCKERD_LOG" 2>&1 </dev/null &
disown || true

for _ in $(seq 1 120); do
  if engine_ok; then
    log "ready ($(docker version --format '{{.Server.Version}}'), runtime $RUNTIME_NAME)"
    exit 0
  fi
  sleep 0.5
done
log "dockerd did not come up; last lines of $DOCKERD_LOG:"
tail -n 30 "$DOCKERD_LOG" >&2
exit 1
