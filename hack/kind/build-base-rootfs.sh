#!/usr/bin/env bash
# Debootstrap the Debian root filesystem of the kind node (and of the control
# plane images, which reuse it), as a tarball in the cache.
#
# Why: no container registry is reachable, so `debian:*-slim` cannot be pulled;
# Debian's own mirror is. The package list follows kind's images/base/Dockerfile
# (systemd, iptables, conntrack, ...), minus storage extras we do not use, plus
# busybox for small test pods. Bookworm because trixie's systemd refuses cgroup v1.
. "$(dirname "$0")/lib.sh"

OUT="$CACHE/base-rootfs-$DEBIAN_SUITE-r$ROOTFS_REV"
if done_marker "$OUT"; then log "cached: $OUT/rootfs.tar"; exit 0; fi
need debootstrap debootstrap

rm -rf "$OUT"; mkdir -p "$OUT"
ROOT="$OUT/rootfs"
PKGS=systemd,systemd-sysv,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod
PKGS+=,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,curl,jq,procps,busybox
log "debootstrap $DEBIAN_SUITE into $ROOT"
debootstrap --variant=minbase --include="$PKGS" "$DEBIAN_SUITE" "$ROOT" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$OUT/debootstrap.log" 2>&1 ||
  { tail -20 "$OUT/debootstrap.log" >&2; exit 1; }

# Same cleanup as kind's base image: no unit runs unless the node enables it.
chroot "$ROOT" sh -euc '
  find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
  rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
        /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
        /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*
  echo ReadKMsg=no >>/etc/systemd/journald.conf
  ln -sf /usr/lib/systemd/systemd /sbin/init
  systemctl mask systemd-binfmt.service
  apt-get clean
  rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/*.log
'
tar -C "$ROOT" --numeric-owner -cf "$OUT/rootfs.tar" .
rm -rf "$ROOT"
mark_done "$OUT"
log "done: $OUT/rootfs.tar ($(du -h "$OUT/rootfs.tar" | cut -f1))"
