"""testinfra verifier for the monitor scenario: live host and the stage 5 evidence on the controller."""

import json
import os
import stat
from pathlib import Path

EVIDENCE = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "evidence" / "stage5"


def test_out_of_maintenance_and_running(host):
    assert not host.file("/var/lib/itsop-demo-web/maintenance").exists
    assert host.service("itsop-demo-web").is_running


def test_monitoring_evidence(host):
    name = host.backend.get_hostname()
    for path in (EVIDENCE / "monitoring.json", EVIDENCE / "incidents.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    monitoring = json.loads((EVIDENCE / "monitoring.json").read_text())
    stats = monitoring["hosts"][name]
    assert monitoring["healthy"] is True and stats["healthy"] is True
    assert stats["summary"]["availability_pct"] == 100.0 and stats["summary"]["samples"] >= 2
    assert stats["summary"]["latency_ms"]["p95"] is not None and stats["breaches"] == []
    assert json.loads((EVIDENCE / "incidents.json").read_text())["incidents"] == []
