"""testinfra verifier for the checks scenario: the host and the stage 2, 4 and 5 evidence on the controller."""

import json
import os
import stat
from pathlib import Path

EVIDENCE = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "evidence"
STAGE5 = EVIDENCE / "stage5"


def test_changed_host_is_healthy(host):
    assert host.package("itsop-demo-web").version == "1.1.0"
    assert host.service("itsop-demo-web").is_running
    assert host.socket("tcp://0.0.0.0:8080").is_listening


def test_baseline_and_stage4_evidence(host):
    name = host.backend.get_hostname()
    baseline = EVIDENCE / "stage2" / "baseline" / f"{name}.json"
    result = EVIDENCE / "stage4" / f"{name}.json"
    for path in (baseline, result, EVIDENCE / "stage4" / "junit.xml", EVIDENCE / "stage4" / "security.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((EVIDENCE / "stage4").stat().st_mode) == 0o700
    data = json.loads(result.read_text())
    assert data["passed"] is True
    assert len(data["functional"]) == 7 and all(c["passed"] for c in data["functional"])
    (config,) = [c for c in data["functional"] if c["type"] == "file"]
    assert config["actual"]["kind"] == "file" and config["name"] == "file /etc/itsop-demo-web/config.ini"
    assert data["security"]["baseline_compared"] is True and data["security"]["blocking"] == []
    assert json.loads(baseline.read_text())["snapshot"]["uid0_accounts"] == ["root"]


def test_out_of_maintenance_and_running(host):
    assert not host.file("/var/lib/itsop-demo-web/maintenance").exists
    assert host.service("itsop-demo-web").is_running


def test_monitoring_evidence(host):
    name = host.backend.get_hostname()
    for path in (STAGE5 / "monitoring.json", STAGE5 / "incidents.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    monitoring = json.loads((STAGE5 / "monitoring.json").read_text())
    stats = monitoring["hosts"][name]
    assert monitoring["kind"] == "monitoring" and monitoring["passed"] is True and monitoring["reasons"] == []
    assert stats["healthy"] is True
    assert stats["summary"]["availability_pct"] == 100.0 and stats["summary"]["samples"] >= 2
    assert stats["summary"]["latency_ms"]["p95"] is not None and stats["breaches"] == []
    assert json.loads((STAGE5 / "incidents.json").read_text())["incidents"] == []
