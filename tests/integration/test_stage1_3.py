"""Stage playbooks 1-3 and rollback on fresh systemd test hosts (1 staging + 2 production).

One set of containers for the module; the tests run in order and build on each other:
outside-window refusal -> broken 1.2.0 stopped on staging -> forced production failure rolled
back -> 1.0.0 -> 1.1.0 through staging then production -> rollback idempotence.
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, TestHost, ansible_playbook, have_podman_image, ssh_hostvars
from tests.helpers import evidence as evidence_doc

EXAMPLES = REPO / "docs" / "examples" / "change-requests"
PLAYBOOKS = REPO / "playbooks"
STAGES = REPO / "tests" / "integration" / "playbooks" / "stages"
CONFIG = "/etc/itsop-demo-web/config.ini"


@pytest.fixture(scope="module")
def estate(tmp_path_factory):
    if not have_podman_image():
        pytest.fail("test-host image missing: run scripts/setup.sh")
    tmp = tmp_path_factory.mktemp("stages")
    hosts = {"stg": TestHost(), "prd1": TestHost(), "prd2": TestHost()}
    try:
        for host in hosts.values():
            host.start()
        hv = {h.name: ssh_hostvars(h.address) for h in hosts.values()}
        inv = {"all": {"children": {
            "staging": {"hosts": {hosts["stg"].name: hv[hosts["stg"].name]}},
            "production": {"hosts": {hosts["prd1"].name: hv[hosts["prd1"].name],
                                     hosts["prd2"].name: hv[hosts["prd2"].name]}},
        }}}
        inventory = tmp / "inventory.json"
        inventory.write_text(json.dumps(inv))
        ansible_playbook(STAGES / "setup.yml", "-i", str(inventory))
        yield {"hosts": hosts, "inventory": inventory, "tmp": tmp}
    finally:
        for host in hosts.values():
            host.remove()


DROP_IN = "/etc/systemd/system/itsop-demo-web.service.d/refuse-new-version.conf"
REFUSE_NEW_VERSION = """[Service]
ExecStartPre=/bin/sh -c 'v=$$(dpkg-query -W itsop-demo-web | cut -f2); dpkg --compare-versions "$$v" lt 1.1.0'
"""


def change_file(tmp: Path, example: str, *, window_hours: tuple[float, float] = (-1, 2), config: bool = False,
                change_id: str | None = None) -> Path:
    data = yaml.safe_load((EXAMPLES / example).read_text())
    now = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=7)))
    data["window"] = {"start": (now + datetime.timedelta(hours=window_hours[0])).isoformat(timespec="seconds"),
                      "end": (now + datetime.timedelta(hours=window_hours[1])).isoformat(timespec="seconds"),
                      "timezone": "Asia/Jakarta"}
    data["expected_downtime_minutes"] = 1
    if change_id:
        data["id"] = change_id
    if config:
        (tmp / "greeting.ini.j2").write_text((STAGES / "greeting.ini.j2").read_text())
        data["items"]["config_files"] = [{"dest": CONFIG, "template": "greeting.ini.j2", "mode": "0640",
                                          "service": "itsop-demo-web"}]
    path = tmp / f"{data['id']}-{example}"
    path.write_text(yaml.safe_dump(data))
    return path


def stage(playbook: str, estate, change: Path, evidence: Path, *extra: str, check: bool = True):
    return ansible_playbook(PLAYBOOKS / playbook, "-i", str(estate["inventory"]),
                            "-e", f"itsop_change_file={change}", "-e", f"itsop_evidence_dir={evidence}",
                            *extra, check=check, timeout=1200)


def version(host: TestHost) -> str:
    return host.exec("dpkg-query", "-W", "-f", "${Version}", "itsop-demo-web").stdout


def sha(host: TestHost, path: str) -> str:
    return host.exec("sha256sum", path).stdout.split()[0]


def recap_changed(out: str, name: str) -> int:
    match = re.search(rf"^{re.escape(name)}\s*:.*?changed=(\d+)", out, re.M)
    assert match, out[-3000:]
    return int(match.group(1))


def host_changes(out: str, name: str) -> list[str]:
    """Lines reporting a change on the host itself (not tasks delegated to the controller)."""
    return re.findall(rf"^changed: \[{re.escape(name)}\].*$", out, re.M)


def refused_before_any_host(estate, proc, reason: str) -> None:
    """The stage failed with ``reason`` and no host was contacted or changed."""
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert reason in out, out[-3000:]
    for host in estate["hosts"].values():
        assert f"[{host.name}]" not in out, f"{host.name} was contacted"
        assert version(host) == "1.0.0"
        assert host.exec("test", "-e", "/var/lib/itsop/changes", check=False).returncode == 1
        assert host.exec("test", "-e", "/var/lib/itsop-demo-web/maintenance", check=False).returncode == 1


def test_stage3_outside_window_is_refused_before_any_host(estate):
    tmp = estate["tmp"]
    evidence = tmp / "ev-window"
    change = change_file(tmp, "security-patch-1.1.0.yml", window_hours=(-5, -3), change_id="CHG-2026-9000")
    proc = stage("stage3_execute.yml", estate, change, evidence, "-e", "stage3_require_staging_pass=false",
                 check=False)
    refused_before_any_host(estate, proc, "outside the approved change window: the change window closed at")
    # the test-only clock override puts the same run inside the window's grace period
    future = change_file(tmp, "security-patch-1.1.0.yml", window_hours=(1, 2), change_id="CHG-2026-9000")
    proc = stage("stage3_execute.yml", estate, future, evidence, "-e", "stage3_require_staging_pass=false",
                 "--check", check=False)
    assert "the change window opens at" in proc.stdout + proc.stderr


def test_stage3_without_a_passed_staging_simulation_is_refused_before_any_host(estate):
    """The playbook's own guard (sopctl's evidence gate is the first): a failed staging verdict of
    stage 2 stops stage 3 before a host is contacted. Staging really failing (1.2.0, HTTP 500) is
    the end-to-end demo's second scenario (tests/e2e)."""
    tmp = estate["tmp"]
    evidence = tmp / "ev-staging-failed"
    (evidence / "stage2").mkdir(parents=True)
    (evidence / "stage2" / "staging.json").write_text(json.dumps({"passed": False, "hosts": []}))
    change = change_file(tmp, "broken-update-1.2.0.yml", change_id="CHG-2026-9002")
    proc = stage("stage3_execute.yml", estate, change, evidence, check=False)
    refused_before_any_host(estate, proc, "stage 3 does not start without a passed staging simulation")


def test_stage1_plan_is_read_only_and_complete(estate):
    tmp = estate["tmp"]
    evidence = tmp / "ev-plan"
    change = change_file(tmp, "security-patch-1.1.0.yml", change_id="CHG-2026-9001")
    stg, prd1, prd2 = estate["hosts"].values()
    before = {h.name: h.exec("find", "/etc", "/var/lib/itsop-demo-web", "-newer", "/etc/hostname").stdout
              for h in (stg, prd1, prd2)}
    proc = stage("stage1_plan.yml", estate, change, evidence)
    assert "failed=0" in proc.stdout
    for host in (stg, prd1, prd2):
        after = host.exec("find", "/etc", "/var/lib/itsop-demo-web", "-newer", "/etc/hostname").stdout
        assert after == before[host.name], f"stage 1 changed files on {host.name}"
        assert version(host) == "1.0.0"
    plan = evidence_doc(evidence / "stage1" / "plan.json", "plan", "CHG-2026-9001")
    assert plan["passed"] is True
    assert [b["environment"] for b in plan["batches"]] == ["staging", "production", "production"]
    assert plan["batches"][0]["hosts"] == [stg.name]
    by_host = {h["host"]: h for h in plan["hosts"]}
    entry = by_host[prd1.name]
    assert entry["current"] == {"itsop-demo-web": "1.0.0"}
    assert entry["changes"] == [{"name": "itsop-demo-web", "action": "upgrade", "from": "1.0.0", "to": "1.1.0",
                                 "arch": "all"}]
    assert [s["name"] for s in entry["services"]] == ["itsop-demo-web"]
    assert entry["services"][0]["active"] is True
    assert entry["reboot_required"] is False
    assert entry["config_files"][0]["path"] == CONFIG
    assert entry["downtime_seconds"] > 0 and entry["disk"]["/"]["free_bytes"] > 0
    assert plan["schedule"]["fits_window"] is True
    md = (evidence / "stage1" / "plan.md").read_text()
    assert "Rencana Kerja / Work Plan" in md and "upgrade 1.0.0 → 1.1.0" in md
    assert oct((evidence / "stage1" / "plan.json").stat().st_mode & 0o777) == "0o600"
    assert oct((evidence / "stage1").stat().st_mode & 0o777) == "0o700"


def test_forced_production_failure_rolls_back_and_stops_batches(estate):
    tmp = estate["tmp"]
    evidence = tmp / "ev-main"
    change = change_file(tmp, "security-patch-1.1.0.yml", config=True, change_id="CHG-2026-9003")
    stg, prd1, prd2 = estate["hosts"].values()
    config_before = sha(prd1, CONFIG)
    stage("stage2_prepare.yml", estate, change, evidence)
    assert evidence_doc(evidence / "stage2" / "staging.json", "staging", "CHG-2026-9003")["passed"] is True
    assert version(stg) == "1.1.0" and version(prd1) == "1.0.0"
    # a real failure on prd1 only: the new version does not start there (a systemd drop-in refuses
    # to start itsop-demo-web at 1.1.0 or later), so its health check fails and the host is rolled back
    prd1.exec("mkdir", "-p", DROP_IN.rsplit("/", 1)[0])
    prd1.exec("sh", "-c", f"cat > {DROP_IN} <<'EOF'\n{REFUSE_NEW_VERSION}EOF")
    prd1.exec("systemctl", "daemon-reload")
    try:
        proc = stage("stage3_execute.yml", estate, change, evidence, "-e", "update_health_retries=2",
                     "-e", "update_health_delay=1", check=False)
    finally:
        prd1.exec("rm", "-f", DROP_IN)
        prd1.exec("systemctl", "daemon-reload")
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert version(prd1) == "1.0.0"
    assert sha(prd1, CONFIG) == config_before
    assert prd1.exec("test", "-e", "/var/lib/itsop-demo-web/maintenance", check=False).returncode == 1
    assert prd1.exec("python3", "-c", "import urllib.request;print(urllib.request.urlopen("
                     "'http://127.0.0.1:8080/health').status)").stdout.strip() == "200"
    assert version(prd2) == "1.0.0", "the next batch must not start"
    record = evidence_doc(evidence / "stage3" / f"{prd1.name}.json", "execution", "CHG-2026-9003", prd1.name)
    assert record["status"] == "failed_rolled_back" and record["passed"] is False
    assert record["reasons"][0].startswith("failed_rolled_back: ")
    assert record["packages_before"] == {"itsop-demo-web": "1.0.0"}
    assert record["packages_after"] == {"itsop-demo-web": "1.0.0"}
    assert record["rollback"]["status"] == "succeeded"
    # the configuration change restarts the service first, and 1.1.0 does not start there
    assert "Restart the affected services" in record["error"], record["error"]
    summary = evidence_doc(evidence / "stage3" / "summary.json", "execution_summary", "CHG-2026-9003")
    assert summary["not_started"] == [prd2.name]
    assert summary["failed"] == [prd1.name]
    assert summary["passed"] is False
    assert summary["reasons"] == [f"{prd1.name}: failed_rolled_back", f"{prd2.name}: not_started"]
    assert not (evidence / "stage3" / f"{prd2.name}.json").exists()


def test_security_patch_goes_through_staging_then_production(estate):
    tmp = estate["tmp"]
    evidence = tmp / "ev-main"
    change = change_file(tmp, "security-patch-1.1.0.yml", config=True, change_id="CHG-2026-9003")
    stg, prd1, prd2 = estate["hosts"].values()
    proc = stage("stage3_execute.yml", estate, change, evidence)
    out = proc.stdout
    assert out.index("Tahap 3 | Staging first") < out.index("Tahap 3 | Production in batches")
    for host in (stg, prd1, prd2):
        assert version(host) == "1.1.0"
        assert f"Selamat datang, {host.name}" in host.exec("cat", CONFIG).stdout
    summary = evidence_doc(evidence / "stage3" / "summary.json", "execution_summary", "CHG-2026-9003")
    assert summary["passed"] is True and summary["not_started"] == []
    record = evidence_doc(evidence / "stage3" / f"{prd2.name}.json", "execution", "CHG-2026-9003", prd2.name)
    assert record["status"] == "succeeded"
    assert record["packages_before"] == {"itsop-demo-web": "1.0.0"}
    assert record["packages_after"] == {"itsop-demo-web": "1.1.0"}
    assert "+greeting = Selamat datang, " in record["config_diffs"][CONFIG]
    assert all(c["passed"] for c in record["health"])
    assert oct((evidence / "stage3" / f"{prd2.name}.json").stat().st_mode & 0o777) == "0o600"


def test_rollback_playbook_restores_and_is_idempotent(estate):
    tmp = estate["tmp"]
    evidence = tmp / "ev-main"
    change = change_file(tmp, "security-patch-1.1.0.yml", config=True, change_id="CHG-2026-9003")
    _stg, prd1, prd2 = estate["hosts"].values()
    first = stage("rollback.yml", estate, change, evidence, "--limit", f"localhost,{prd2.name}")
    assert recap_changed(first.stdout, prd2.name) > 0
    assert version(prd2) == "1.0.0"
    assert "Selamat datang di layanan demo" in prd2.exec("cat", CONFIG).stdout
    second = stage("rollback.yml", estate, change, evidence, "--limit", f"localhost,{prd2.name}")
    # nothing changed on the host (the evidence file on the controller is rewritten with new timestamps)
    assert host_changes(second.stdout, prd2.name) == [], second.stdout[-3000:]
    assert host_changes(first.stdout, prd2.name)
    record = json.loads((evidence / "rollback" / f"{prd2.name}.json").read_text())
    assert record["packages_after"] == {"itsop-demo-web": "1.0.0"}
    assert version(prd1) == "1.1.0", "--limit keeps other hosts untouched"
