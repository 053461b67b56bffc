#!/usr/bin/env bash
# One idempotent set-up path for both README commands (demo and tests).
#  - installs the Debian packages the project needs (only those missing);
#  - creates .venv from the pinned lock file (re-created only when the lock file changes);
#  - links the checkout as the collection itsop.change under .cache/collections;
#  - builds the test-host image localhost/itsop-testhost:bookworm and from it the router image
#    localhost/itsop-router:bookworm (FRRouting; each skipped when it exists and matches the recipe);
#  - builds the itsop-demo-web fixture packages and their APT repository (skipped when current).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

APT_PACKAGES=(
  podman runc debootstrap uidmap slirp4netns fuse-overlayfs
  clamav gnupg dpkg-dev zstd python3-venv python3-dev gcc git rsync openssh-client
  chromium
)

# --- 1. Debian packages -------------------------------------------------------------------
command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 || \
  die "apt/dpkg not found: this set-up supports Debian 12. Install by hand: ${APT_PACKAGES[*]}, Python 3.11 with venv, then re-run."
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
      die "missing Debian packages: ${missing[*]}. Run as root, or install them by hand: sudo apt-get install ${missing[*]}"
    fi
  else SUDO=(); fi
  log "installing Debian packages: ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi
[[ $(id -u) -eq 0 ]] || die "the test hosts run as rootful podman containers with systemd: run as root (or with sudo)"

# --- 2. test-host image, built in the background while the virtualenv is made --------------
# (both mostly wait on the package registries; on a fresh machine this saves a minute or two)
IMAGE_LOG="$(mktemp /tmp/itsop-image-build.XXXXXX)"
bash scripts/build_testhost_image.sh >"$IMAGE_LOG" 2>&1 &
IMAGE_PID=$!
trap 'kill "$IMAGE_PID" 2>/dev/null || true; rm -f "$IMAGE_LOG"' EXIT

# --- 3. Python virtual environment --------------------------------------------------------
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || die "Python >= 3.11 required ($PY)"
LOCK=requirements/requirements.lock
STAMP=.venv/.itsop-lock-sha256
want="$(sha256sum "$LOCK" controller/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ -x .venv/bin/python && -f $STAMP && "$(cat "$STAMP")" == "$want" ]]; then
  log "virtualenv .venv up to date"
else
  log "creating virtualenv .venv from $LOCK"
  rm -rf .venv
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q -r "$LOCK" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q --no-deps -e controller >/dev/null 2>&1 || die "cannot install controller/ (sopctl)"
  .venv/bin/python -c 'import ansible, ansible_runner, molecule, testinfra, sopctl' || die "virtualenv incomplete"
  echo "$want" > "$STAMP"
fi

# --- 4. the checkout as collection itsop.change -------------------------------------------
mkdir -p .cache/collections/ansible_collections/itsop
ln -sfn ../../../.. .cache/collections/ansible_collections/itsop/change

# --- 5. wait for the test-host image --------------------------------------------------------
if wait "$IMAGE_PID"; then cat "$IMAGE_LOG"; else
  cat "$IMAGE_LOG" >&2; die "building the test-host image failed (see above)"; fi
trap - EXIT
rm -f "$IMAGE_LOG"
# the router image (FRRouting) is the test-host image plus packages from the Debian mirror
bash scripts/build_router_image.sh || die "building the router image failed (see above)"

# --- 6. offline pip bootstrap for ansible-test --venv -------------------------------------
# ansible-test downloads get-pip.py from a host outside the package registries; give it a local
# stand-in that installs pip from a wheel fetched from PyPI (scripts/ansible-test-get-pip.py).
PIPV="$(sed -n "s/^ *pip='\([0-9.]*\)',.*/\1/p" .venv/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -1)"
[[ -n $PIPV ]] || die "cannot find the pip version ansible-test bootstraps"
GETPIP="$HOME/.ansible/test/cache/get_pip_${PIPV//./_}.py"
if [[ ! -f $GETPIP ]] || ! grep -q "itsop" "$GETPIP" 2>/dev/null || [[ ! -f .cache/wheels/pip-$PIPV-py3-none-any.whl ]]; then
  mkdir -p .cache/wheels "$(dirname "$GETPIP")"
  .venv/bin/python -m pip download -q --no-deps -d .cache/wheels "pip==$PIPV" 2>&1 | grep -v '^WARNING: Location' || true
  [[ -f .cache/wheels/pip-$PIPV-py3-none-any.whl ]] || die "cannot download pip $PIPV for ansible-test"
  sed "s#@WHEEL@#$REPO/.cache/wheels/pip-$PIPV-py3-none-any.whl#" scripts/ansible-test-get-pip.py > "$GETPIP"
  echo "# installed by itsop.change scripts/setup.sh" >> "$GETPIP"
  log "ansible-test pip bootstrap installed ($GETPIP)"
fi

# --- 7. fixture packages + APT repository ---------------------------------------------------
.venv/bin/python tests/fixtures/build_demo_debs.py --out .cache/aptrepo
log "ready"
