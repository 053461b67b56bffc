#!/usr/bin/env bash
# README command 2: set everything up and run the whole test suite (quality gates, unit,
# integration, Molecule). Extra arguments go to pytest (e.g. -k backup, -m "not molecule").
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bash scripts/setup.sh
# shellcheck source=scripts/env.sh
. scripts/env.sh
# leftovers of an interrupted earlier run must not collide with this one
podman ps -aq --filter label=itsop.test=1 | xargs -r podman rm -f -t 0 >/dev/null
# Two workers (pytest-xdist): container work waits on systemd, SSH and the monitoring intervals, so
# a second stream of tests fills the other core. --dist loadfile keeps a file's tests on one worker
# (a module-scoped estate of containers is made once); files start in collection order, longest
# first (tests/conftest.py). ITSOP_TEST_WORKERS=0: one process.
exec python -m pytest -p no:cacheprovider -n "${ITSOP_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
