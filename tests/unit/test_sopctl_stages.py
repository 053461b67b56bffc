"""Unit tests of the sopctl state machine: gates, quorum, invalidation, tampering, window, freeze,
evidence, locks and recovery of a killed run. No stage playbook runs here: stage results are put
into the store the way a finished run records them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from sopctl.errors import Refusal
from sopctl.engine import Engine

from tests.fixtures.evidence import doc as evidence_doc
from sopctl.store import Store

from tests.fixtures.sopctl.world import World

CID = "CHG-2026-9001"


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = World(tmp_path)
    monkeypatch.setenv("SOPCTL_HOME", str(w.home))
    monkeypatch.setenv("SOPCTL_PLAYBOOK_DIR", str(tmp_path / "no-playbooks"))  # any playbook run would fail
    return w


def as_(monkeypatch, world, person):
    monkeypatch.setenv("SOPCTL_IDENTITY", str(world.identity(person)))


def engine():
    return Engine(Store(), out=open(os.devnull, "w"))


def finish_stage(eng, stage, operator="eko", plan=True):
    """Record a stage as a finished run records it (and the stage 1 plan document)."""
    rid = eng.store.start_stage_run(CID, stage, f"stage{stage}-x", "t" + stage, operator, os.getpid(), "h")
    eng.store.finish_stage_run(rid, "succeeded", summary={"result": "passed"})
    if stage == "1" and plan:
        path = eng.plan_file(CID)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"plan": "demo"}))


def write_evidence(eng, hosts=("prd-local-1", "prd-local-2"), staging="passed"):
    ev = eng.store.evidence_dir(CID) / "stage2"
    for h in hosts:
        (ev / "backup" / h).mkdir(parents=True, exist_ok=True)
        (ev / "backup" / h / "checklist.json").write_text(json.dumps(evidence_doc("backup", CID, host=h)))
    (ev / "artifacts").mkdir(parents=True, exist_ok=True)
    (ev / "artifacts" / "verification.json").write_text(json.dumps(evidence_doc("artifacts", CID)))
    reasons = [] if staging == "passed" else [f"stg-local-1: {staging}"]
    (ev / "staging.json").write_text(json.dumps(evidence_doc("staging", CID, reasons=reasons)))


def submitted(world, monkeypatch, **cr):
    as_(monkeypatch, world, "budi")
    eng = engine()
    eng.submit(world.cr(CID, **cr), None, "budi")
    return eng


def approve_plan(world, monkeypatch):
    for person, comment in (("sari", ""), ("dewi", ""), ("agus", "risk low")):
        as_(monkeypatch, world, person)
        engine().decide(CID, "plan", "approve", comment)


def audit_types(world):
    return [r["type"] for r in world.audit_records(CID)]


def test_gate_plan_needs_stage1_then_all_roles(world, monkeypatch):
    eng = submitted(world, monkeypatch)
    as_(monkeypatch, world, "sari")
    with pytest.raises(Refusal, match="GATE-1: gate plan of CHG-2026-9001 is not open: stage 1"):
        engine().decide(CID, "plan", "approve", "")
    finish_stage(eng, "1", "budi")
    as_(monkeypatch, world, "eko")
    assert engine().run(CID, max_stage="1") == 0
    assert engine().status(CID)["steps"][1]["status"] == "waiting"
    approve_plan(world, monkeypatch)
    st = engine().gate_state(eng.change(CID), "plan")
    assert st.satisfied and st.counted == {"it_manager": ["sari"], "users": ["dewi"], "security": ["agus"]}
    as_(monkeypatch, world, "eko")
    assert engine().run(CID, max_stage="1") == 0  # stops before stage 2 (--until 1)
    types = audit_types(world)
    assert types.count("approval") == 3 and "gate_waiting" in types and "gate_decision" in types


def test_self_approval_refused_and_logged(world, monkeypatch):
    eng = submitted(world, monkeypatch)
    finish_stage(eng, "1", "budi")
    as_(monkeypatch, world, "budi")
    with pytest.raises(Refusal, match=r"^refused \(SoD-1: requester budi cannot approve the plan\)$"):
        engine().decide(CID, "plan", "approve", "")
    rec = [r for r in world.audit_records(CID) if r["type"] == "refusal"][-1]
    assert rec["rule"] == "SoD-1" and rec["operator"]["declared"] == "budi"


def test_security_needs_risk_evaluation_comment_and_duplicates_refused(world, monkeypatch):
    eng = submitted(world, monkeypatch)
    finish_stage(eng, "1")
    as_(monkeypatch, world, "agus")
    with pytest.raises(Refusal, match="EVAL-1"):
        engine().decide(CID, "plan", "approve", "  ")
    engine().decide(CID, "plan", "approve", "risk medium, mitigated by rollback")
    with pytest.raises(Refusal, match="GATE-2: agus already decided"):
        engine().decide(CID, "plan", "approve", "again")


def test_quorum_is_configurable(world, monkeypatch):
    roster = yaml.safe_load((world.tmp / "roster.yml").read_text())
    roster["people"]["maya"] = {"name": "Maya (DEMO)", "roles": ["it_manager"]}
    from sopctl.approvals import keygen
    keygen("maya", world.ids / "maya")
    roster["people"]["maya"]["public_key_file"] = str(world.ids / "maya" / "maya.pub")
    roster["quorum"]["plan"]["it_manager"] = 2
    (world.tmp / "roster.yml").write_text(yaml.safe_dump(roster))
    eng = submitted(world, monkeypatch, approvers={"it_manager": ["sari", "maya"], "users": ["dewi"],
                                                    "security": ["agus"], "qa": ["rina"]})
    finish_stage(eng, "1")
    approve_plan(world, monkeypatch)
    st = engine().gate_state(eng.change(CID), "plan")
    assert not st.satisfied and st.missing == {"it_manager": 1}
    as_(monkeypatch, world, "maya")
    engine().decide(CID, "plan", "approve", "")
    assert engine().gate_state(eng.change(CID), "plan").satisfied


def test_plan_edit_voids_approvals_and_closes_gate(world, monkeypatch):
    eng = submitted(world, monkeypatch)
    finish_stage(eng, "1")
    approve_plan(world, monkeypatch)
    assert engine().gate_state(eng.change(CID), "plan").satisfied
    eng.plan_file(CID).write_text(json.dumps({"plan": "something else"}))
    st = engine().gate_state(eng.change(CID), "plan")
    assert not st.satisfied and len(st.void) == 3 and st.counted == {}


def test_change_request_edit_voids_approvals_and_reruns_from_stage1(world, monkeypatch):
    eng = submitted(world, monkeypatch)
    finish_stage(eng, "1")
    approve_plan(world, monkeypatch)
    path = world.tmp / f"{CID}.yml"
    data = yaml.safe_load(path.read_text())
    data["expected_downtime_minutes"] = 10
    path.write_text(yaml.safe_dump(data))
    as_(monkeypatch, world, "dewi")
    with pytest.raises(Refusal, match="CR-4: the change request file"):
        engine().decide(CID, "plan", "approve", "")
    change = engine().refresh(eng.change(CID), "eko")
    assert "1" not in engine().succeeded(CID)  # stage 1 runs again
    st = engine().gate_state(change, "plan")
    assert not st.open and len(st.void) == 3
    assert "change_request_changed" in audit_types(world)


def test_tampered_approval_detected(world, monkeypatch):
    eng = submitted(world, monkeypatch)
    finish_stage(eng, "1", "budi")
    approve_plan(world, monkeypatch)
    eng.store.db.execute("UPDATE approvals SET comment='risk none' WHERE person='agus'")  # edited in the DB
    st = engine().gate_state(eng.change(CID), "plan")
    assert [r["person"] for r in st.tampered] == ["agus"] and not st.satisfied
    as_(monkeypatch, world, "eko")
    with pytest.raises(Refusal, match=r"SIG-1: stored decision.* of agus at gate plan fail signature verification"):
        engine().run(CID, max_stage="1")
    assert [r for r in world.audit_records(CID) if r["type"] == "refusal"][-1]["rule"] == "SIG-1"


def test_rejection_blocks_gate(world, monkeypatch):
    eng = submitted(world, monkeypatch)
    finish_stage(eng, "1")
    as_(monkeypatch, world, "dewi")
    engine().decide(CID, "plan", "reject", "month-end closing that week")
    as_(monkeypatch, world, "eko")
    with pytest.raises(Refusal, match="GATE-3: gate plan was rejected by dewi \\(users\\): month-end"):
        engine().run(CID, max_stage="1")


def test_sod2_stage3_operator_cannot_sign_off_as_qa(world, monkeypatch):
    eng = submitted(world, monkeypatch, approvers={"it_manager": ["sari"], "users": ["dewi"], "security": ["agus"],
                                                    "qa": ["joko", "rina"]})
    for stage in "1234":
        finish_stage(eng, stage, "joko")
    as_(monkeypatch, world, "joko")
    with pytest.raises(Refusal, match="SoD-2: joko ran stage 3 and cannot give the qa sign-off"):
        engine().decide(CID, "signoff", "approve", "")
    as_(monkeypatch, world, "rina")
    assert engine().decide(CID, "signoff", "approve", "")["role"] == "qa"


def test_evidence_gate_lists_what_is_missing(world, monkeypatch):
    eng = submitted(world, monkeypatch)
    change = eng.change(CID)
    problems = eng.evidence_problems(change)
    assert any("no backup checklist for production host prd-local-1" in p for p in problems)
    assert any("no staging run verdict" in p for p in problems)
    write_evidence(eng, hosts=("prd-local-1",), staging="failed")
    problems = eng.evidence_problems(change)
    assert problems and all("prd-local-1" not in p for p in problems)
    assert any("prd-local-2" in p for p in problems) and any("staging run did not pass" in p for p in problems)
    write_evidence(eng)
    assert eng.evidence_problems(change) == []


@pytest.mark.parametrize("doc, why", [
    ({"passed": True}, "no evidence envelope"),                               # a verdict without the contract
    (evidence_doc("staging", "CHG-2026-0999"), "change_id is 'CHG-2026-0999'"),  # another change's
    (evidence_doc("backup", CID, host="prd-local-1"), "kind is 'backup', expected 'staging'"),
    ({**evidence_doc("staging", CID), "reasons": ["stg-local-1: HTTP 500"]}, "passed is true but reasons"),
    ({**evidence_doc("staging", CID), "passed": "true"}, "passed is 'true', not a boolean"),
    ({**evidence_doc("staging", CID), "hosts": [{"passed": "yes"}]}, "at /hosts/0"),  # schema of the kind
])
def test_evidence_gate_refuses_a_verdict_that_breaks_the_contract(world, monkeypatch, doc, why):
    """The gate reads ``passed`` only through the envelope: a file that says passed but is another
    change's, another kind's, or whose reasons contradict it, does not open the gate."""
    eng = submitted(world, monkeypatch)
    change = eng.change(CID)
    write_evidence(eng)
    (eng.store.evidence_dir(CID) / "stage2" / "staging.json").write_text(json.dumps(doc))
    problems = eng.evidence_problems(change)
    assert len(problems) == 1 and "the staging run did not pass" in problems[0] and why in problems[0], problems
    backup = eng.store.evidence_dir(CID) / "stage2" / "backup" / "prd-local-2" / "checklist.json"
    write_evidence(eng)
    backup.write_text(json.dumps(evidence_doc("backup", CID, host="prd-local-1")))  # copied from another host
    problems = eng.evidence_problems(change)
    assert problems == [f"backup checklist of prd-local-2 is not complete: checklist.json: host is 'prd-local-1', "
                        f"expected 'prd-local-2' ({backup})"], problems


def test_evidence_that_two_readers_read_differently_or_that_is_no_file_does_not_pass(world, monkeypatch):
    """Issue 15 (classes 7 and 10) for evidence: a verdict with a duplicate key, which Python's json
    resolves to the last one and other readers to the first, does not pass the gate; a FIFO in
    place of a verdict file neither blocks the gate nor passes it."""
    eng = submitted(world, monkeypatch)
    change = eng.change(CID)
    write_evidence(eng)
    assert eng.evidence_problems(change) == []
    ev = eng.store.evidence_dir(CID) / "stage2"
    (ev / "artifacts" / "verification.json").write_text('{"passed": false,\n "passed": true}')
    problems = eng.evidence_problems(change)
    assert any("verification.json" in p and "duplicate key 'passed'" in p for p in problems), problems
    write_evidence(eng)
    (ev / "staging.json").unlink()
    os.mkfifo(ev / "staging.json")
    problems = eng.evidence_problems(change)  # would block forever if the FIFO were opened
    assert any("staging" in p for p in problems), problems


def test_stage3_refused_outside_window_and_in_freeze(world, monkeypatch):
    eng = submitted(world, monkeypatch, start=datetime.now(UTC) + timedelta(days=2))
    with pytest.raises(Refusal, match="WINDOW-1"):
        eng._check_stage3(eng.change(CID))
    now = datetime.now(UTC)
    world.set_freezes([{"name": "Tutup buku", "start": (now - timedelta(hours=1)).isoformat(),
                        "end": (now + timedelta(hours=1)).isoformat()}])
    path = world.cr(CID, start=now - timedelta(minutes=5))
    change = eng.refresh(eng.change(CID), "eko")
    assert change["cr_path"] == str(path)
    with pytest.raises(Refusal, match="FREEZE-1: stage 3 is not allowed during the freeze period 'Tutup buku'"):
        eng._check_stage3(change)


def test_conflicting_changes_reported_at_submit(world, monkeypatch):
    submitted(world, monkeypatch)
    as_(monkeypatch, world, "budi")
    with pytest.raises(Refusal, match=r"CONFLICT-1: CHG-2026-9002 touches the same hosts .* CHG-2026-9001"):
        engine().submit(world.cr("CHG-2026-9002"), None, "budi")
    res = engine().submit(world.cr("CHG-2026-9002"), None, "budi", allow_conflict=True)
    assert any("CHG-2026-9001" in w for w in res["warnings"])
    eng = engine()
    later = eng.change("CHG-2026-9002")
    with pytest.raises(Refusal, match="CONFLICT-1: CHG-2026-9001 \\(submitted earlier\\)"):
        eng._check_stage3(later)
    far = world.cr("CHG-2026-9003", start=datetime.now(UTC) + timedelta(days=10))
    engine().submit(far, None, "budi")  # same hosts, no overlap: fine


def test_second_run_refused_by_lock(world, monkeypatch):
    submitted(world, monkeypatch)
    eng = engine()
    fd = eng._lock(CID)
    try:
        as_(monkeypatch, world, "eko")
        with pytest.raises(Refusal, match=r"LOCK-1: CHG-2026-9001 is already being run \(pid \d+ on "):
            engine().run(CID)
    finally:
        os.close(fd)
    assert [r for r in world.audit_records(CID) if r["type"] == "refusal"][-1]["rule"] == "LOCK-1"


def test_killed_run_is_recovered_as_interrupted(world, monkeypatch):
    eng = submitted(world, monkeypatch)
    # a sopctl that died with kill -9: its row says running, its process is gone
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    eng.store.start_stage_run(CID, "1", "stage1-dead", "deadtoken", "eko", dead.pid, "h")
    # a process of the stage run still alive -> refused
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             env=dict(os.environ, SOPCTL_RUN_TOKEN="deadtoken"))
    try:
        as_(monkeypatch, world, "eko")
        with pytest.raises(Refusal, match=r"LOCK-2: stage 1 .* still has running processes \[%d\]" % alive.pid):
            engine().run(CID, max_stage="0")
    finally:
        alive.kill()
        alive.wait()
    assert engine().run(CID, max_stage="0") == 0
    runs = engine().store.stage_runs(CID)
    assert [r["status"] for r in runs] == ["interrupted"]
    assert "stage_interrupted" in audit_types(world)
    assert "1" not in engine().succeeded(CID)


def test_gate_waiting_webhook_and_url_never_logged(world, monkeypatch):
    import http.server
    import threading

    got = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hooks/SECRET-TOKEN-123"
    cfg = yaml.safe_load((world.home / "config.yml").read_text())
    cfg["webhooks"] = [{"url": url, "events": ["gate_waiting"]},
                       {"url": "http://127.0.0.1:9/SECRET-TOKEN-456", "events": ["gate_waiting"]}]
    (world.home / "config.yml").write_text(yaml.safe_dump(cfg))
    try:
        eng = submitted(world, monkeypatch)
        finish_stage(eng, "1")
        as_(monkeypatch, world, "eko")
        assert engine().run(CID, max_stage="1") == 0
    finally:
        server.shutdown()
    assert got and got[0]["event"] == "gate_waiting" and got[0]["change_id"] == CID and got[0]["gate"] == "plan"
    note = [r for r in world.audit_records(CID) if r["type"] == "notification"][-1]
    assert [d["ok"] for d in note["deliveries"]] == [True, False]
    text = (world.home / "changes" / CID / "audit" / "controller.jsonl").read_text()
    assert "SECRET-TOKEN" not in text


@pytest.mark.parametrize("rollbacks, expect_rolled_back", [
    ({"prd-local-1": True, "prd-local-2": True}, True),    # every production host rolled back
    ({"prd-local-1": True}, False),                         # one host still on the new version
    ({"prd-local-1": True, "prd-local-2": False}, False),   # a rollback failed: escalate, not rolled_back
])
def test_stage5_incidents_recorded_and_rolled_back_only_when_every_host_was(world, monkeypatch, rollbacks,
                                                                             expect_rolled_back):
    from sopctl.runner import RunResult

    eng = submitted(world, monkeypatch)
    change = eng.change(CID)
    ev = eng.store.evidence_dir(CID) / "stage5"
    ev.mkdir(parents=True)
    incidents = [{"id": f"INC-{h}", "host": h, "what": "health breach", "rollback": {"succeeded": ok}}
                 for h, ok in rollbacks.items()]
    reasons = [f"{i['id']}: {i['what']}" for i in incidents]
    (ev / "incidents.json").write_text(json.dumps(evidence_doc("incidents", CID, reasons=reasons,
                                                             incidents=incidents)))
    result = RunResult(status="failed", rc=2, ident="stage5-x", summary={"incidents": [i["id"] for i in incidents]})
    assert eng._stage5_incidents(change, "eko", result) is expect_rolled_back
    recs = world.audit_records(CID)
    inc = [r for r in recs if r["type"] == "incident"]
    assert len(inc) == 1 and inc[0]["count"] == len(incidents)
    assert {i["host"]: i["rollback"] for i in inc[0]["incidents"]} == rollbacks
    assert ("change_rolled_back" in [r["type"] for r in recs]) is expect_rolled_back


def test_stage5_without_incidents_records_nothing(world, monkeypatch):
    from sopctl.runner import RunResult

    eng = submitted(world, monkeypatch)
    result = RunResult(status="successful", rc=0, ident="stage5-x", summary={"incidents": []})
    assert eng._stage5_incidents(eng.change(CID), "eko", result) is False
    assert "incident" not in audit_types(world)
