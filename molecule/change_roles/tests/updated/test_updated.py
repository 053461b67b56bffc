"""After converge (plan, then role update): itsop-demo-web 1.1.0 runs with the change's configuration."""

import hashlib
import json
import os
import stat
from pathlib import Path

import yaml

SCENARIO = Path(__file__).resolve().parents[2]

# testinfra's podman backend (one ``podman exec`` per command) instead of the ansible backend, which
# runs ansible once per command for the containers.podman connection: the same checks, ten times faster.
testinfra_hosts = [f"podman://{platform['name']}" for platform in
                   yaml.safe_load((SCENARIO / "molecule.yml").read_text())["platforms"]]
EVIDENCE = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "evidence"
CONFIG = "/etc/itsop-demo-web/config.ini"

# Ask the service from inside the host; print status, the two security headers and the body.
HTTP = (
    "import json, urllib.request\n"
    "r = urllib.request.urlopen('http://127.0.0.1:8080/', timeout=10)\n"
    "print(json.dumps({'status': r.status, 'nosniff': r.headers.get('X-Content-Type-Options'),"
    " 'fix': r.headers.get('X-Itsop-Security-Fix'), 'body': r.read().decode()}))\n"
)


def expected_config(hostname: str) -> bytes:
    """The template of the change request rendered for this host (its only variable is inventory_hostname)."""
    return (SCENARIO / "change" / "config.ini.j2").read_text().replace("{{ inventory_hostname }}", hostname).encode()


def test_version_1_1_0_installed_and_service_running(host):
    assert host.package("itsop-demo-web").version == "1.1.0"
    service = host.service("itsop-demo-web")
    assert service.is_running and service.is_enabled
    assert not host.file("/var/lib/itsop-demo-web/maintenance").exists


def test_http_200_with_the_security_headers_inside_the_host(host):
    answer = json.loads(host.check_output("python3 -c %s", HTTP))
    assert answer["status"] == 200
    assert answer["nosniff"] == "nosniff"
    assert answer["fix"] == "DEMO-2026-0001"
    assert "1.1.0" in answer["body"]
    assert f"Selamat datang, {host.backend.get_hostname()}" in answer["body"], "the service did not reload its config"


def test_configuration_is_the_changed_one_byte_exact(host):
    conf = host.file(CONFIG)
    expected = expected_config(host.backend.get_hostname())
    assert conf.size == len(expected) and conf.sha256sum == hashlib.sha256(expected).hexdigest()
    assert conf.mode == 0o640 and conf.user == "root" and conf.group == "root"


def test_update_evidence(host):
    name = host.backend.get_hostname()
    path = EVIDENCE / "stage3" / f"{name}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    record = json.loads(path.read_text())
    assert record["status"] == "succeeded" and record["change_id"] == "CHG-2026-0601"
    assert record["packages_before"] == {"itsop-demo-web": "1.0.0"}
    assert record["packages_after"] == {"itsop-demo-web": "1.1.0"}
    assert f"+greeting = Selamat datang, {name}" in record["config_diffs"][CONFIG]
    assert record["health"] and all(check["passed"] for check in record["health"])


def test_before_state_recorded_on_the_host_for_the_rollback(host):
    before = host.file("/var/lib/itsop/changes/CHG-2026-0601/before.json")
    assert before.mode == 0o600
    assert json.loads(before.content_string)["packages"] == {"itsop-demo-web": "1.0.0"}


def test_plan_document_written_on_the_controller():
    plan = json.loads((EVIDENCE / "stage1" / "plan.json").read_text())
    assert plan["change_id"] == "CHG-2026-0601"
    assert [batch["environment"] for batch in plan["batches"]] == ["production"]
    assert "Rencana Kerja / Work Plan" in (EVIDENCE / "stage1" / "plan.md").read_text()
