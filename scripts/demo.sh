#!/usr/bin/env bash
# README command 1: set everything up, start the demo hosts and run the demo.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bash scripts/setup.sh
# shellcheck source=scripts/env.sh
. scripts/env.sh
bash scripts/demo-hosts up
ansible-playbook playbooks/demo_app.yml -e demo_app_version=1.0.0
echo
echo "Demo hosts (inventory inventories/demo/hosts.yml):"
bash scripts/demo-hosts list
cat <<'TXT'

itsop-demo-web 1.0.0 runs on every demo host, port 8080 inside the host. Reach it with e.g.
  podman exec itsop-prd-1 python3 -c "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:8080/').read().decode())"
  . scripts/env.sh && ansible -m ansible.builtin.uri -a url=http://127.0.0.1:8080/health demo_web
Remove the hosts with: scripts/demo-hosts down
TXT
