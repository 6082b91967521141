#!/usr/bin/env bash
# Build the local base image `posts-pipeline-base:<key>` from Debian bookworm.
#
# Why: no container registry is reachable on our machines, so the public
# python:3.11-slim-bookworm (the Dockerfile's default BASE_IMAGE) cannot be
# pulled. Debian's package mirror is reachable: debootstrap a minimal bookworm
# (python3 3.11 with venv, ca-certificates, tini; no Debian pip: the image's virtual
# environment has its own), `docker import` it.
#
# Cached by content: the key hashes this script (package list, cleanup), so the
# rootfs tarball in $CACHE and the imported image are reused until it changes.
#   docker/build-base.sh          print the image reference (build it if missing)
#   POSTS_PIPELINE_CACHE=/dir     where the rootfs tarball is kept
#   DEBIAN_MIRROR=http://...      mirror for debootstrap
set -euo pipefail

SUITE=bookworm
PKGS=python3,python3-venv,ca-certificates,tini
CACHE="${POSTS_PIPELINE_CACHE:-/var/cache/posts-pipeline}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEY="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)"
REPO="${BASE_REPO:-posts-pipeline-base}"
IMAGE="$REPO:$SUITE-$KEY"
OUT="$CACHE/python-base-$SUITE-$KEY"

log() { echo "[$(date +%H:%M:%S)] build-base: $*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"; exit 0
fi

if [ ! -f "$OUT/.done" ]; then
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  rm -rf "$OUT"; mkdir -p "$OUT"
  ROOT="$OUT/rootfs"
  log "debootstrap $SUITE ($PKGS) into $ROOT"
  debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$ROOT" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 ||
    { tail -20 "$OUT/debootstrap.log" >&2; exit 1; }
  # Slim it down: no apt lists/caches, docs, man pages or locales other than C.
  chroot "$ROOT" sh -euc '
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/log/*.log \
           /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/lintian/*
    find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name "locale.alias" -exec rm -rf {} +
    find / -xdev -name __pycache__ -type d -prune -exec rm -rf {} +
  '
  # A container's /etc/resolv.conf and /etc/hosts are bind-mounted by the engine.
  : >"$ROOT/etc/resolv.conf"
  tar -C "$ROOT" --numeric-owner -cf "$OUT/rootfs.tar" .
  rm -rf "$ROOT"
  date -u +%FT%TZ >"$OUT/.done"
  log "rootfs: $OUT/rootfs.tar ($(du -h "$OUT/rootfs.tar" | cut -f1))"
fi

log "docker import -> $IMAGE"
docker import \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  --message "debootstrap --variant=minbase $SUITE + $PKGS" \
  "$OUT/rootfs.tar" "$IMAGE" >/dev/null
docker tag "$IMAGE" "$REPO:$SUITE"
echo "$IMAGE"
