"""End-to-end: the README demo (scripts/demo_sop.py) on its own set of systemd containers.

Runs the same six scenarios as ``bash scripts/demo.sh`` (three on servers, three on routers; own
container names itsop-e2e-*, labelled itsop.test=1, so a running demo is never touched) and then
checks the outcome from the real things, not from the demo's own summary: package versions and
configuration on the hosts, the routers' configuration and routes, sopctl's state store, the
offline verification of every audit archive (and that a flipped byte is caught), and the HTML
report rendered by headless Chromium.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from tests.helpers import REPO, base_env, podman
from tests.integration.test_report_browser import needs_chromium, rendered_report

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
PREFIX = "itsop-e2e-"
CONTAINERS = [f"{PREFIX}{n}" for n in ("stg-1", "prd-1", "prd-2")]
ROUTERS = {"itsop-rtr-stg": f"{PREFIX}rtr-stg", "itsop-rtr-prd-1": f"{PREFIX}rtr-prd-1",
           "itsop-rtr-prd-2": f"{PREFIX}rtr-prd-2"}
SOPCTL = str(REPO / ".venv" / "bin" / "sopctl")


def host_version(name: str) -> str:
    return podman("exec", name, "dpkg-query", "-W", "-f", "${Version}", "itsop-demo-web").stdout.strip()


def config_digest(name: str) -> str:
    text = podman("exec", name, "cat", "/etc/itsop-demo-web/config.ini").stdout
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e") / "demo"
    env = base_env()
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "demo_sop.py"), "--workdir", str(work),
                           "--prefix", PREFIX, "--label", "itsop.test=1", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=2400, check=False, cwd=REPO)
    (work.parent / "demo.log").write_text(proc.stdout + proc.stderr)
    try:
        assert proc.returncode == 0, \
            f"demo failed (rc {proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
        summary = json.loads((work / "summary.json").read_text())
        yield {"work": work, "summary": summary, "out": proc.stdout,
               "env": dict(env, SOPCTL_HOME=str(work / "sopctl-home"))}
    finally:
        # hosts, routers, their network and the routers' pinned host keys (one home: demo-hosts)
        subprocess.run(["bash", str(REPO / "scripts" / "demo-hosts"), "down"], capture_output=True, check=False,
                       env=dict(env, ITSOP_DEMO_PREFIX=PREFIX, ITSOP_DEMO_LABEL="itsop.test=1"))


def scenario(demo, name):
    return next(s for s in demo["summary"]["scenarios"] if s["scenario"] == name)


def sopctl_status(demo, cid):
    proc = subprocess.run([SOPCTL, "status", cid, "--json"], capture_output=True, text=True, env=demo["env"],
                          check=True)
    return json.loads(proc.stdout)


def test_demo_outcome_on_the_hosts_and_in_sopctl(demo):
    # the containers exist only for this test; their state is the result of the three changes
    versions = {n: host_version(n) for n in CONTAINERS}
    # 1: 1.0.0 -> 1.1.0 everywhere; 2: 1.2.0 never left staging (staging rolled back);
    # 3: 1.3.0 rolled back to 1.1.0 in production by monitoring; staging keeps 1.3.0 for analysis
    assert versions == {f"{PREFIX}stg-1": "1.3.0", f"{PREFIX}prd-1": "1.1.0", f"{PREFIX}prd-2": "1.1.0"}, versions
    patch, broken, monitoring = (scenario(demo, n) for n in ("patch", "broken", "monitoring"))

    st = sopctl_status(demo, patch["change_id"])
    assert st["state"] == "closed"
    assert all(s["status"] in ("succeeded", "satisfied") for s in st["steps"]), st["steps"]
    assert patch["versions_before"] == {h: "1.0.0" for h in patch["versions_before"]}
    ev = demo["work"] / "sopctl-home" / "changes" / patch["change_id"] / "evidence"
    artifacts = json.loads((ev / "stage2" / "artifacts" / "verification.json").read_text())
    assert artifacts["kind"] == "artifacts" and artifacts["passed"] is True
    text = json.dumps(artifacts)
    assert "clamscan" in text or "clamav" in text.lower()
    for host in ("itsop-prd-1", "itsop-prd-2"):
        checklist = json.loads((ev / "stage2" / "backup" / host / "checklist.json").read_text())
        assert checklist["passed"] is True and all(i["ok"] for i in checklist["items"]), checklist
        created = next(i for i in checklist["items"] if i["id"] == "backup_created")
        assert created["evidence"]["record_signed"] is True, created  # sopctl's backup record key
        assert json.loads((ev / "stage3" / f"{host}.json").read_text())["status"] == "succeeded"

    st = sopctl_status(demo, broken["change_id"])
    assert st["state"] == "cancelled"
    assert broken["staging_passed"] is False
    assert [s["status"] for s in st["steps"] if s["step"] == "stage 3"] == ["pending"]
    assert all(broken["versions_after"][h] == "1.1.0" for h in ("itsop-prd-1", "itsop-prd-2"))
    ev = demo["work"] / "sopctl-home" / "changes" / broken["change_id"] / "evidence"
    assert not (ev / "stage3").exists() or not any((ev / "stage3").glob("itsop-prd-*.json"))
    # 1.2.0 failed its health check in staging, which was rolled back by itself; production was only
    # backed up (Tahap 2.1) and never changed
    staging = json.loads((ev / "stage2" / "staging.json").read_text())
    assert staging["passed"] is False and "status 500 (expected 200)" in staging["hosts"][0]["error"], staging
    assert staging["reasons"] == [f"itsop-stg-1: {staging['hosts'][0]['error']}"], staging
    assert broken["versions_after"]["itsop-stg-1"] == broken["versions_before"]["itsop-stg-1"] == "1.1.0"
    for host in ("itsop-prd-1", "itsop-prd-2"):
        assert json.loads((ev / "stage2" / "backup" / host / "checklist.json").read_text())["passed"] is True

    st = sopctl_status(demo, monitoring["change_id"])
    assert st["state"] == "rolled_back"
    assert monitoring["versions_after_stage3"]["itsop-prd-1"] == "1.3.0"
    assert monitoring["incidents"] and all(i["rollback_succeeded"] for i in monitoring["incidents"])
    assert {i["host"] for i in monitoring["incidents"]} == {"itsop-prd-1", "itsop-prd-2"}
    # configuration: changed by stage 3, restored byte-exact by the rollback (checked on the hosts now)
    for host, name in (("itsop-prd-1", f"{PREFIX}prd-1"), ("itsop-prd-2", f"{PREFIX}prd-2")):
        assert monitoring["config_after_stage3"][host] != monitoring["config_before"][host]
        assert config_digest(name) == monitoring["config_before"][host]
    assert "DEMO FAILED" not in demo["out"]


def running_config(name: str) -> bytes:
    return subprocess.run(["podman", "exec", name, "vtysh", "-c", "show running-config"], capture_output=True,
                          check=True, env=base_env()).stdout


def test_network_scenarios_on_the_routers(demo):
    """4: the routing change is closed and every router routes the service network; 5: the change
    breaking the standard never reached a router; 6: after the change's prefix cap broke the peerings
    during monitoring both production routers run their stage-2 configuration byte for byte (read from
    the routers now)."""
    announce, stopped, monitored = (scenario(demo, n) for n in ("network", "network-staging", "network-monitoring"))
    assert sopctl_status(demo, announce["change_id"])["state"] == "closed"
    for name in ROUTERS.values():
        table = json.loads(podman("exec", name, "vtysh", "-c", "show ip route 198.51.100.0/24 json").stdout)
        assert "198.51.100.0/24" in table, name
        assert "static" in {r["protocol"] for r in table["198.51.100.0/24"]}, (name, table)
    ev = demo["work"] / "sopctl-home" / "changes" / announce["change_id"] / "evidence"
    for host in ("itsop-rtr-prd-1", "itsop-rtr-prd-2"):
        run = json.loads((ev / "stage3" / f"{host}.json").read_text())
        assert run["network"]["confirmed"] is True and run["status"] == "succeeded", run
    # the report shows each router's configuration before and after (the device's own diff)
    reports = demo["work"] / "sopctl-home" / "changes" / announce["change_id"] / "reports"
    rows = {x["host"]: x for x in json.loads((reports / "report.json").read_text())["evidence"]["execution"]}
    for host in ("itsop-rtr-prd-1", "itsop-rtr-prd-2"):
        assert "\n+ip route 198.51.100.0/24 Null0\n" in rows[host]["config_diff"], rows[host]
        assert "\n+  network 198.51.100.0/24\n" in rows[host]["config_diff"], rows[host]
    assert "+ip route 198.51.100.0/24 Null0" in next(reports.glob("*.md")).read_text()

    assert sopctl_status(demo, stopped["change_id"])["state"] == "cancelled"
    staging = json.loads((demo["work"] / "sopctl-home" / "changes" / stopped["change_id"] / "evidence" / "stage2"
                          / "staging.json").read_text())
    assert staging["passed"] is False and "DSKS-RTR-03" in staging["reasons"][0], staging
    for name in ROUTERS.values():
        assert b" access-class MGMT" in running_config(name), name

    cid = monitored["change_id"]
    assert sopctl_status(demo, cid)["state"] == "rolled_back"
    incidents = json.loads((demo["work"] / "sopctl-home" / "changes" / cid / "evidence" / "stage5"
                            / "incidents.json").read_text())["incidents"]
    assert {i["host"] for i in incidents} == {"itsop-rtr-prd-1", "itsop-rtr-prd-2"}
    assert all(i["rollback"]["succeeded"] for i in incidents)
    monitoring = json.loads((demo["work"] / "sopctl-home" / "changes" / cid / "evidence" / "stage5"
                             / "monitoring.json").read_text())
    # the breach is the change's own: the cap tore the peering with the grown staging site down
    assert monitored["peer_reset_reason"] == "Cease/Maximum Number of Prefixes Reached", monitored
    for host in ("itsop-rtr-prd-1", "itsop-rtr-prd-2"):  # sampled as a session out of Established
        failed = [f for s in monitoring["hosts"][host]["samples"] for f in s["failed"]]
        assert any(f.startswith("every BGP session established: ") and "Idle" in f for f in failed), failed
    for host in ("itsop-rtr-prd-1", "itsop-rtr-prd-2"):
        saved = demo["work"] / "backup-store" / cid / host / "network" / "running.cfg"
        assert running_config(ROUTERS[host]) == saved.read_bytes(), host
        assert b"maximum-prefix" not in saved.read_bytes()
    # staging keeps the cap, rendered with its own peers
    assert running_config(ROUTERS["itsop-rtr-stg"]).count(b" maximum-prefix ") == 2


def test_every_evidence_file_keeps_the_contract(demo):
    """Issue 22: every JSON evidence file the three changes wrote carries the envelope (kind, change,
    host, passed agreeing with reasons) and matches the JSON Schema of its kind; the gate's and the
    report's loader accepts it; the report's verdicts are the envelope's."""
    from sopctl.evidence import KINDS

    from tests.helpers import evidence

    changes = demo["work"] / "sopctl-home" / "changes"
    seen: dict[str, int] = {}
    for path in sorted(changes.glob("*/evidence/**/*.json")):
        doc = json.loads(path.read_text())
        assert isinstance(doc, dict) and doc.get("kind") in KINDS, f"{path}: no evidence envelope"
        cid = path.relative_to(changes).parts[0]
        evidence(path, doc["kind"], cid)
        seen[doc["kind"]] = seen.get(doc["kind"], 0) + 1
    # the demo's three changes reach every stage: each kind a stage writes is there and was checked
    assert set(seen) >= {"plan", "backup", "artifacts", "baseline", "staging", "execution", "execution_summary",
                         "functional_tests", "security_tests", "monitoring", "incidents", "rollback"}, seen
    report = json.loads((changes / scenario(demo, "patch")["change_id"] / "reports" / "report.json").read_text())
    assert all(b["verdict"] == "passed" for b in report["evidence"]["backup"]), report["evidence"]["backup"]


def test_the_indonesian_report_says_what_the_records_say(demo):
    """Issue 17's list of what the report showed wrongly: the artifact signature verdict, the
    controller's own audit signatures, the planned downtime of stage 1, English words in the
    Indonesian report."""
    reports = demo["work"] / "sopctl-home" / "changes" / scenario(demo, "patch")["change_id"] / "reports"
    report = json.loads((reports / "report.json").read_text())
    assert report["evidence"]["artifacts"]["artifacts"][0]["checks"]["signature"] == "pass"
    assert {log["signature"] for log in report["audit_logs"]} == {"verified"}, report["audit_logs"]
    assert report["evaluation"]["planned_downtime_from_plan_minutes"] > 0
    text = (reports / "report.id.md").read_text()
    for english in ("VALUE_REDACTED", "change_submitted", "| succeeded |", "stage 1: succeeded", "blocking ",
                    ": satisfied", "not_checked"):
        assert english not in text, english
    assert "tahap 1: berhasil" in text and "| perubahan diajukan |" in text and "signature: lulus" in text


def test_backup_record_key_stays_in_its_file(demo):
    """The key that signs snapshot records is a secret of the controller: not in any evidence,
    log, report, archive or runner file the demo wrote (issue 15, classes 3 and 4)."""
    key_file = demo["work"] / "sopctl-home" / "keys" / "backup-record.key"
    assert key_file.stat().st_mode & 0o077 == 0
    key = key_file.read_text().strip().encode()
    assert len(key) == 64
    leaks = [str(p) for p in demo["work"].rglob("*")
             if p.is_file() and not p.is_symlink() and p != key_file and key in p.read_bytes()]
    assert leaks == []


def test_every_archive_verifies_offline_and_a_flipped_byte_is_caught(demo, tmp_path):
    pub = demo["work"] / "sopctl-home" / "keys" / "controller.pub"
    roster = demo["work"] / "roster.yml"
    for s in demo["summary"]["scenarios"]:
        proc = subprocess.run([SOPCTL, "audit", "verify", s["archive"], "--public-key", str(pub), "--roster",
                               str(roster), "--json"], capture_output=True, text=True, env=demo["env"], check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    bad = tmp_path / "tampered.tar.gz"
    with open(demo["summary"]["scenarios"][0]["archive"], "rb") as handle:
        data = bytearray(handle.read())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    proc = subprocess.run([SOPCTL, "audit", "verify", str(bad), "--public-key", str(pub)], capture_output=True,
                          text=True, env=demo["env"], check=False)
    assert proc.returncode != 0, proc.stdout


@needs_chromium
def test_demo_report_renders_in_headless_chromium(demo, tmp_path):
    patch = scenario(demo, "patch")
    pages = [p for p in patch["reports"] if p.endswith(".html")]
    assert pages, patch["reports"]
    page = sorted(pages)[0]
    dom, parsed = rendered_report(tmp_path, f"file://{page}")
    # real content of this change: every approver, both production hosts, the versions
    for text in ("sari", "dewi", "agus", "rina", "itsop-prd-1", "itsop-prd-2", "1.1.0", patch["change_id"]):
        assert text in dom.stdout, text
    # the monitoring chart of each production host, drawn inline (availability, p95 and sample latency)
    for host in ("itsop-prd-1", "itsop-prd-2"):
        figure = dom.stdout.split(f'data-host="{host}"', 1)[1].split("</figure>", 1)[0]
        assert figure.count("<polyline") == 3 and "<svg" in figure, figure[:400]
    assert not [u for u in parsed.urls if u.lower().lstrip().startswith(("http:", "https:", "//"))], parsed.urls
