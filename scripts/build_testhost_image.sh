#!/usr/bin/env bash
# Build localhost/itsop-testhost:bookworm with debootstrap + podman import (no registry needed).
# Skipped when an image built from the same recipe exists.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CONTAINERS_CONF="$REPO/tests/containers/containers.conf"
IMAGE="${ITSOP_TESTHOST_IMAGE:-localhost/itsop-testhost:bookworm}"
INCLUDE="python3,python3-apt,systemd,systemd-sysv,dbus,sudo,iproute2,procps,zstd,ca-certificates,xz-utils,openssh-server"
RECIPE="$(printf '%s|%s' "$INCLUDE" "$(sha256sum "$0" | cut -d' ' -f1)" | sha256sum | cut -c1-16)"

# shellcheck source=scripts/image_recipe.sh
. "$REPO/scripts/image_recipe.sh"
if image_current "$IMAGE" "$RECIPE"; then
  echo "[setup] test-host image $IMAGE present (recipe $RECIPE)"
  exit 0
fi
echo "[setup] building test-host image $IMAGE with debootstrap (about a minute)"
ROOTFS="$(mktemp -d /var/tmp/itsop-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include="$INCLUDE" bookworm "$ROOTFS" >"$ROOTFS.log" 2>&1 || {
  tail -20 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; echo "[setup] ERROR: debootstrap failed" >&2; exit 1; }
rm -f "$ROOTFS.log"
# Hermetic hosts: no internet sources; tests add the file: fixture repository themselves.
: > "$ROOTFS/etc/apt/sources.list"
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb
# No getty/console noise in containers; keep journald and dbus.
chroot "$ROOTFS" systemctl mask getty@tty1.service console-getty.service systemd-logind.service >/dev/null 2>&1 || true
# sshd runs as on a real server (the demo reaches its hosts over SSH; the security baseline reads
# its effective configuration with sshd -T): no host keys baked into the image - each container
# makes its own when ssh starts (ssh-keygen -A before sshd's config test).
rm -f "$ROOTFS"/etc/ssh/ssh_host_*
mkdir -p "$ROOTFS/etc/systemd/system/ssh.service.d"
printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
  > "$ROOTFS/etc/systemd/system/ssh.service.d/itsop-host-keys.conf"
chroot "$ROOTFS" systemctl enable ssh.service >/dev/null 2>&1
echo "itsop-testhost" > "$ROOTFS/etc/hostname"
tar -C "$ROOTFS" -c . | podman import \
  --change 'CMD ["/sbin/init"]' --change "LABEL itsop.recipe=$RECIPE" \
  --change 'STOPSIGNAL SIGRTMIN+3' - "$IMAGE" >/dev/null
echo "[setup] built $IMAGE (recipe $RECIPE)"
