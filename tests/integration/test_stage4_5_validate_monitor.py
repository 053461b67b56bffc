"""Stage 4 (validate) and stage 5 (monitor) on fresh systemd test hosts with the real demo packages.

- 1.0.0 -> baseline -> 1.1.0 passes functional (incl. a testinfra file) and security checks;
  1.1.1 (extra port 9090) fails the security gate with the finding named.
- 1.2.0 (/health 500) during the watch raises an incident with evidence, notifies three webhooks
  (generic, Slack, Teams) received on loopback, and triggers the rollback hook (a real apt downgrade).
- The service killed and kept down during the watch, with auto_rollback false, raises an incident
  and stops with an escalation.
"""

from __future__ import annotations

import json
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, ansible_playbook, base_env, podman
from tests.helpers import evidence as evidence_doc

PLAYS = REPO / "tests" / "integration" / "playbooks" / "validate_monitor"
SECRET = "T0SECRET/B0SECRET/xoxb-not-a-real-token-7f3a"
ENV = base_env(ANSIBLE_ROLES_PATH=str(PLAYS / "roles"))


EXAMPLE = REPO / "docs" / "examples" / "change-requests" / "security-patch-1.1.0.yml"


def change_request(version: str, *, auto_rollback: bool = True, duration: int = 20, interval: int = 2) -> dict:
    """The example change request (valid against the schema) adapted to ``version`` and a short watch."""
    change = yaml.safe_load(EXAMPLE.read_text())
    change["id"] = "CHG-2026-0777"
    change["title"] = f"Security patch itsop-demo-web {version}"
    change["items"]["packages"][0]["version"] = version
    change["test_plan"]["functional"] = [
        {"type": "service", "name": "itsop-demo-web", "state": "running"},
        {"type": "port", "port": 8080},
        {"type": "http", "url": "http://127.0.0.1:8080/health", "status": 200, "max_latency_ms": 5000},
        {"type": "http", "url": "http://127.0.0.1:8080/", "status": 200, "body_contains": version},
        {"type": "package", "name": "itsop-demo-web", "version": version},
        {"type": "command", "command": ["systemctl", "is-enabled", "itsop-demo-web"], "rc": 0,
         "stdout_contains": "enabled"},
    ]
    change["test_plan"]["testinfra"] = [str(PLAYS / "test_demo_web.py")]
    change["monitoring"].update({"duration_seconds": duration, "interval_seconds": interval,
                                 "auto_rollback": auto_rollback})
    change["monitoring"]["thresholds"]["p95_latency_ms"] = 5000
    change["rollback"]["automatic"] = auto_rollback
    return change


def write_change(tmp: Path, change: dict) -> Path:
    path = tmp / "change.yml"
    path.write_text(yaml.safe_dump(change))
    return path


def stage_vars(tmp: Path, change_file: Path, stage: int, **extra) -> list[str]:
    ev = {"itsop_change_file": str(change_file), "itsop_evidence_dir": str(tmp / "evidence"),
          "itsop_stage": stage, "itsop_change_id": "CHG-2026-0777", "itsop_operator": "tester"}
    ev.update(extra)
    return ["-e", json.dumps(ev)]


def setup(host, inv: Path, tmp: Path, version: str, **flags) -> None:
    ev = {"setup_version": version, "itsop_evidence_dir": str(tmp / "evidence"), "itsop_change_id": "CHG-2026-0777"}
    ev.update(flags)
    ansible_playbook(PLAYS / "setup.yml", "-i", str(inv), "-e", json.dumps(ev))


class Receiver:
    """Webhook receiver on 127.0.0.1 (a real HTTP server in a thread)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"path": self.path, "ctype": self.headers.get("Content-Type"),
                                       "json": json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def hooks(self) -> list[dict]:
        base = f"http://127.0.0.1:{self.port}"
        return [{"url": f"{base}/generic?token={SECRET}", "format": "generic"},
                {"url": f"{base}/services/{SECRET}", "format": "slack"},
                {"url": f"{base}/teams/{SECRET}", "format": "teams", "name": "teams-oncall"}]


def assert_private(path: Path) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent


def test_stage4_110_passes_and_111_fails_security_gate(testhost, tmp_path):
    inv = testhost.inventory(tmp_path, group="production")
    evidence = tmp_path / "evidence"
    # stage 2: baseline on the old version, then the change (stage 3 stand-in: demo_app installs 1.1.0)
    setup(testhost, inv, tmp_path, "1.0.0", setup_baseline=True)
    baseline = evidence / "stage2" / "baseline" / f"{testhost.name}.json"
    assert_private(baseline)
    assert any(p["port"] == 8080 for p in json.loads(baseline.read_text())["snapshot"]["listening"])
    setup(testhost, inv, tmp_path, "1.1.0")

    proc = ansible_playbook(REPO / "playbooks" / "stage4_validate.yml", "-i", str(inv),
                            *stage_vars(tmp_path, write_change(tmp_path, change_request("1.1.0")), 4))
    result = evidence_doc(evidence / "stage4" / f"{testhost.name}.json", "functional_tests", host=testhost.name)
    assert result["passed"] is True and result["reasons"] == [], proc.stdout[-4000:]
    assert [c["passed"] for c in result["functional"]] == [True] * 6
    assert result["testinfra"]["passed"] is True and "2 passed" in result["testinfra"]["summary"]
    assert result["security"]["baseline_compared"] is True and result["security"]["passed"] is True
    assert "DSKS-FS-02" in result["security"]["rules_evaluated"]
    junit = (evidence / "stage4" / "junit.xml").read_text()
    assert 'failures="0"' in junit and "functional.http" in junit
    assert (evidence / "stage4" / "testinfra" / f"{testhost.name}.xml").is_file()
    for name in (f"{testhost.name}.json", "junit.xml", "security.json"):
        assert_private(evidence / "stage4" / name)

    # 1.1.1 opens the undeclared port 9090: the security gate fails with the finding named
    setup(testhost, inv, tmp_path, "1.1.1")
    change = change_request("1.1.1")
    change["test_plan"]["testinfra"] = []
    proc = ansible_playbook(REPO / "playbooks" / "stage4_validate.yml", "-i", str(inv),
                            *stage_vars(tmp_path, write_change(tmp_path, change), 4), check=False)
    assert proc.returncode != 0
    assert "new listening port 9090/tcp" in proc.stdout
    result = evidence_doc(evidence / "stage4" / f"{testhost.name}.json", "functional_tests", host=testhost.name)
    (reason,) = result["reasons"]  # functional checks passed: security is the one reason
    assert result["passed"] is False and reason.startswith("security: ") and "blocking finding(s)" in reason, reason
    assert all(c["passed"] for c in result["functional"])
    (finding,) = [f for f in result["security"]["findings"] if f["id"] == "new-listening-port"]
    assert finding["subject"] == "9090/tcp" and finding["severity"] == "high" and finding["blocking"]
    security = evidence_doc(evidence / "stage4" / "security.json", "security_tests")
    (reason,) = security["reasons"]
    assert security["passed"] is False and reason.startswith(f"{testhost.name}: ") and "blocking" in reason, reason
    assert 'failures="1"' in (evidence / "stage4" / "junit.xml").read_text()


def test_stage5_health_500_incident_webhooks_and_rollback(testhost, tmp_path):
    inv = testhost.inventory(tmp_path, group="production")
    evidence = tmp_path / "evidence"
    setup(testhost, inv, tmp_path, "1.2.0", setup_maintenance=True)
    change_file = write_change(tmp_path, change_request("1.2.0", auto_rollback=True, duration=20, interval=2))
    with Receiver() as receiver:
        extra = {"monitor_webhooks": receiver.hooks(), "monitor_rollback_role": "test_rollback"}
        proc = ansible_playbook(REPO / "playbooks" / "stage5_golive.yml", "-i", str(inv),
                                *stage_vars(tmp_path, change_file, 5, **extra), check=False, env=ENV)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    assert "Rolled back automatically with test_rollback" in out
    assert SECRET not in out

    monitoring = evidence_doc(evidence / "stage5" / "monitoring.json", "monitoring", "CHG-2026-0777")
    host = monitoring["hosts"][testhost.name]
    assert monitoring["passed"] is False and host["healthy"] is False
    assert monitoring["kind"] == "monitoring" and monitoring["reasons"][0].startswith(f"{testhost.name}: "), monitoring
    assert host["summary"]["http_status_counts"].get("500", 0) >= 1
    assert host["summary"]["availability_pct"] < 99
    assert host["stopped_early"] is True  # availability could no longer be met: incident at once

    incidents_doc = evidence_doc(evidence / "stage5" / "incidents.json", "incidents", "CHG-2026-0777")
    incidents = incidents_doc["incidents"]
    (incident,) = incidents
    assert incidents_doc["passed"] is False and incidents_doc["reasons"] == [f"{incident['id']}: {incident['what']}"]
    assert incident["host"] == testhost.name and incident["change_id"] == "CHG-2026-0777"
    assert incident["detected_at"].endswith("Z")
    assert "availability_pct" in [b["metric"] for b in incident["breaches"]]
    assert incident["rollback"]["attempted"] and incident["rollback"]["succeeded"]
    assert [d["ok"] for d in incident["notifications"]] == [True, True, True]
    assert SECRET not in json.dumps(incidents)
    for name in ("monitoring.json", "incidents.json"):
        assert_private(evidence / "stage5" / name)

    # the three payloads, received on loopback
    by_path = {r["path"].split("/")[1].split("?")[0]: r["json"] for r in receiver.requests}
    assert set(by_path) == {"generic", "services", "teams"}
    assert by_path["generic"]["incident"]["id"] == incident["id"]
    assert by_path["services"]["text"] and by_path["services"]["blocks"][0]["type"] == "header"
    assert by_path["teams"]["@type"] == "MessageCard" and testhost.name in by_path["teams"]["title"]

    # the rollback hook really ran: marker, 1.1.0 back, healthy, out of maintenance
    marker = json.loads(testhost.exec("cat", "/var/lib/itsop-test-rollback.json").stdout)
    assert marker["incident"] == incident["id"]
    assert "1.1.0" in testhost.exec("dpkg-query", "-W", "-f", "${Version}", "itsop-demo-web").stdout
    assert testhost.exec("test", "-e", "/var/lib/itsop-demo-web/maintenance", check=False).returncode == 1
    health = testhost.exec("python3", "-c", "import urllib.request;print(urllib.request.urlopen("
                           "'http://127.0.0.1:8080/health').status)")
    assert health.stdout.strip() == "200"


def test_stage5_service_killed_escalates_without_auto_rollback(testhost, tmp_path):
    inv = testhost.inventory(tmp_path, group="production")
    evidence = tmp_path / "evidence"
    setup(testhost, inv, tmp_path, "1.1.0", setup_maintenance=True)
    change_file = write_change(tmp_path, change_request("1.1.0", auto_rollback=False, duration=40, interval=2))

    def kill_when_live():
        # wait for go-live (flag removed), then kill the service and keep it down
        deadline = time.time() + 120
        while time.time() < deadline:
            if testhost.exec("test", "-e", "/var/lib/itsop-demo-web/maintenance", check=False).returncode == 1:
                break
            time.sleep(0.5)
        time.sleep(2)
        podman("exec", testhost.name, "sh", "-c",
               "systemctl mask --runtime itsop-demo-web && systemctl kill -s KILL itsop-demo-web")

    with Receiver() as receiver:
        killer = threading.Thread(target=kill_when_live, daemon=True)
        killer.start()
        extra = {"monitor_webhooks": receiver.hooks()[:1], "monitor_rollback_role": "test_rollback"}
        proc = ansible_playbook(REPO / "playbooks" / "stage5_golive.yml", "-i", str(inv),
                                *stage_vars(tmp_path, change_file, 5, **extra), check=False, env=ENV)
        killer.join(timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ESCALATE (Tahap 5.3)" in out and "monitoring.auto_rollback=false" in out
    (incident,) = json.loads((evidence / "stage5" / "incidents.json").read_text())["incidents"]
    assert incident["rollback"]["attempted"] is False
    assert "stopped and escalated" in incident["action"]
    assert any(e["what"] == "service" for e in incident["events"])
    assert len(receiver.requests) == 1 and receiver.requests[0]["json"]["incident"]["host"] == testhost.name
    # no rollback happened: the marker of the rollback hook is absent
    assert testhost.exec("test", "-e", "/var/lib/itsop-test-rollback.json", check=False).returncode == 1


@pytest.mark.parametrize("playbook", ["stage4_validate.yml", "stage5_golive.yml"])
def test_stage_playbooks_refuse_to_run_without_change_request(playbook, tmp_path):
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps({"all": {"hosts": {}}}))
    proc = ansible_playbook(REPO / "playbooks" / playbook, "-i", str(inv),
                            "-e", json.dumps({"itsop_evidence_dir": str(tmp_path)}), check=False)
    assert proc.returncode != 0
    assert "give the change request as the extra var itsop_change" in proc.stdout
