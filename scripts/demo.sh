#!/usr/bin/env bash
# README command 1: set everything up, start the demo hosts and run the whole SOP demo through
# sopctl (scripts/demo_sop.py; docs/demo.md). Arguments go to demo_sop.py (e.g. --scenario patch).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bash scripts/setup.sh
# shellcheck source=scripts/env.sh
. scripts/env.sh
exec python scripts/demo_sop.py "$@"
