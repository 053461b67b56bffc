# shellcheck shell=bash
# Source this file to use the project's tools from a checkout:  . scripts/env.sh
ITSOP_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ITSOP_REPO
export PATH="$ITSOP_REPO/.venv/bin:$PATH"
export CONTAINERS_CONF="$ITSOP_REPO/tests/containers/containers.conf"
export ANSIBLE_CONFIG="$ITSOP_REPO/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="$ITSOP_REPO/.cache/collections${ANSIBLE_COLLECTIONS_PATH:+:$ANSIBLE_COLLECTIONS_PATH}"
export ITSOP_TESTHOST_IMAGE="${ITSOP_TESTHOST_IMAGE:-localhost/itsop-testhost:bookworm}"
