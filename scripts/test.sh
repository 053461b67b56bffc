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
exec python -m pytest -p no:cacheprovider "$@"
