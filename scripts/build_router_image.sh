#!/usr/bin/env bash
# Build localhost/itsop-router:bookworm: the test-host image plus FRRouting 8.4 from the Debian
# mirror (frr, frr-pythontools for frr-reload.py, iputils-ping, traceroute), set up like a router
# appliance: bgpd and ospfd enabled, the operator account "netops" logs in to vtysh (the router CLI), root keeps a
# Linux shell for the on-device revert timer. Skipped when an image of the same recipe exists.
# Routers are started by scripts/demo-hosts (routers-up) on a podman network of their own.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CONTAINERS_CONF="$REPO/tests/containers/containers.conf"
BASE="${ITSOP_TESTHOST_IMAGE:-localhost/itsop-testhost:bookworm}"
IMAGE="${ITSOP_ROUTER_IMAGE:-localhost/itsop-router:bookworm}"
PACKAGES="frr frr-pythontools iputils-ping traceroute"
podman image exists "$BASE" || { echo "[setup] ERROR: base image $BASE missing (scripts/build_testhost_image.sh)" >&2; exit 1; }
BASE_ID="$(podman image inspect --format '{{.Id}}' "$BASE")"
RECIPE="$(printf '%s|%s|%s' "$PACKAGES" "$BASE_ID" "$(sha256sum "$0" | cut -d' ' -f1)" | sha256sum | cut -c1-16)"
# shellcheck source=scripts/image_recipe.sh
. "$REPO/scripts/image_recipe.sh"
if image_current "$IMAGE" "$RECIPE"; then
  echo "[setup] router image $IMAGE present (recipe $RECIPE)"
  exit 0
fi
echo "[setup] building router image $IMAGE (FRRouting from the Debian mirror)"
NAME="itsop-router-build-$$"
trap 'podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true' EXIT
# The host's own Debian sources (and apt settings) are lent for the build only; the image keeps
# no package sources, like the test-host image.
mounts=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/apt.conf.d/*; do
  [[ -f $f ]] && mounts+=(-v "$f:$f:ro")
done
podman run --name "$NAME" --network host "${mounts[@]}" "$BASE" sh -euc "
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
  rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
  sed -i -e 's/^bgpd=no/bgpd=yes/' -e 's/^ospfd=no/ospfd=yes/' /etc/frr/daemons
  grep -qx /usr/bin/vtysh /etc/shells || echo /usr/bin/vtysh >> /etc/shells
  useradd --create-home --shell /usr/bin/vtysh --groups frrvty,frr netops
  install -d -m 0700 -o netops -g netops /home/netops/.ssh
  systemctl enable frr.service >/dev/null 2>&1
" >"/tmp/$NAME.log" 2>&1 || {
  tail -20 "/tmp/$NAME.log" >&2; echo "[setup] ERROR: installing FRRouting into the router image failed" >&2; exit 1; }
rm -f "/tmp/$NAME.log"
podman commit -q --change "LABEL itsop.recipe=$RECIPE" --change 'CMD ["/sbin/init"]' \
  --change 'STOPSIGNAL SIGRTMIN+3' "$NAME" "$IMAGE" >/dev/null
echo "[setup] built $IMAGE (recipe $RECIPE)"
