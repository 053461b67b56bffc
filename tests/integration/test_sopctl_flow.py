"""Integration tests of sopctl: real ansible-runner runs of small stage playbooks
(tests/integration/playbooks/sopctl, through the test-only SOPCTL_PLAYBOOK_DIR) against
local-connection hosts, driven through the real CLI as distinct DEMO identities.

Every refusal must exit 3 with a message naming the rule and land in the change's controller
audit log, which must still verify as intact.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from tests.fixtures.sopctl.world import World

CID = "CHG-2026-9001"


def ok(proc):
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    return proc


def refused(proc, rule, text=""):
    assert proc.returncode == 3, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert f"refused ({rule}: " in proc.stderr, proc.stderr
    assert text in proc.stderr, proc.stderr
    return proc


def refusals(world, cid=CID):
    return [r["rule"] for r in world.audit_records(cid) if r["type"] == "refusal"]


def audit_intact(world, cid=CID):
    proc = world.sopctl(None, "audit", "verify", "--json", str(world.home / "changes" / cid / "audit"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["results"]


def approve_plan(world):
    ok(world.sopctl("sari", "approve", CID, "--gate", "plan", "--comment", "plan ok"))
    ok(world.sopctl("dewi", "approve", CID, "--gate", "plan", "--comment", "downtime 22:00 ok"))
    ok(world.sopctl("agus", "approve", CID, "--gate", "plan", "--comment", "risk medium; rollback tested"))


def wait_for(pred, timeout=240, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def running_stage(world):
    db = sqlite3.connect(world.home / "sopctl.db")
    try:
        row = db.execute("SELECT stage FROM stage_runs WHERE status='running'").fetchone()
        return row[0] if row else None
    finally:
        db.close()


def test_full_change_with_refusals_lock_and_kill9_resume(tmp_path):
    world = World(tmp_path)
    cr = world.cr(CID)
    ok(world.sopctl(None, "validate", str(cr)))
    ok(world.sopctl("budi", "submit", str(cr)))
    out = ok(world.sopctl("budi", "run", CID)).stdout
    assert "stage 1" in out and "waiting at gate plan" in out

    # self-approval: the requester cannot approve the plan
    refused(world.sopctl("budi", "approve", CID, "--gate", "plan"), "SoD-1", "requester budi cannot approve the plan")
    approve_plan(world)

    # change request edited after approval -> approvals void, stage 1 runs again, gate closed again
    data = yaml.safe_load(cr.read_text())
    data["expected_downtime_minutes"] = 7
    cr.write_text(yaml.safe_dump(data, sort_keys=False))
    refused(world.sopctl("dewi", "approve", CID, "--gate", "plan"), "CR-4")
    out = ok(world.sopctl("eko", "run", CID)).stdout
    assert "earlier approvals are void" in out and "waiting at gate plan" in out
    gate = world.status(CID)["steps"][1]
    assert gate["status"] == "waiting" and gate["void"] == 3
    approve_plan(world)

    # a tampered approval (comment rewritten in the store) -> refused, gate closed
    db = sqlite3.connect(world.home / "sopctl.db")
    original = db.execute("SELECT id, comment FROM approvals WHERE person='agus' ORDER BY id DESC").fetchone()
    db.execute("UPDATE approvals SET comment='no risk at all' WHERE id=?", (original[0],))
    db.commit()
    refused(world.sopctl("eko", "run", CID), "SIG-1", "agus")
    db.execute("UPDATE approvals SET comment=? WHERE id=?", (original[1], original[0]))
    db.commit()
    db.close()

    # stage 2, evidence gate, then stage 3 slowed down: a second run is refused by the lock,
    # then sopctl is killed with SIGKILL in the middle of stage 3
    slow = world.popen("eko", "run", CID, env={"SOPCTL_TEST_SLEEP": "20"})
    try:
        wait_for(lambda: running_stage(world) == "3", what="stage 3 to start")
        refused(world.sopctl("budi", "run", CID), "LOCK-1", "already being run")
        time.sleep(2)
        os.kill(slow.pid, signal.SIGKILL)
    finally:
        slow.wait(timeout=60)
    assert running_stage(world) == "3"  # half-done: never recorded as done

    from sopctl.runner import processes_with_token

    db = sqlite3.connect(world.home / "sopctl.db")
    token = db.execute("SELECT token FROM stage_runs WHERE status='running'").fetchone()[0]
    db.close()
    wait_for(lambda: not processes_with_token(token), timeout=120, what="orphaned stage processes to end")

    out = ok(world.sopctl("eko", "run", CID, env={"SOPCTL_TEST_SLEEP": "0"})).stdout
    assert "stage 3 was interrupted" in out and "runs again" in out
    assert "waiting at gate signoff" in out
    runs3 = next(s for s in world.status(CID)["steps"] if s["step"] == "stage 3")
    assert runs3["status"] == "succeeded" and runs3["runs"] == 2

    # whoever ran stage 3 (eko) ... joko is infrastructure+qa but did not run stage 3: the CR names rina
    refused(world.sopctl("eko", "approve", CID, "--gate", "signoff"), "ROLE-1")
    ok(world.sopctl("rina", "approve", CID, "--gate", "signoff", "--comment", "functional tests pass"))
    ok(world.sopctl("agus", "approve", CID, "--gate", "signoff", "--comment", "no new ports"))
    ok(world.sopctl("dewi", "approve", CID, "--gate", "signoff"))
    out = ok(world.sopctl("eko", "run", CID, "--json")).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert any(e.get("event") == "host" and e.get("stage") == "5" for e in lines)
    assert lines[-1]["state"] == "waiting_gate_close"
    refused(world.sopctl("rina", "approve", CID, "--gate", "close"), "ROLE-1")
    ok(world.sopctl("sari", "approve", CID, "--gate", "close", "--comment", "closed"))
    ok(world.sopctl("eko", "run", CID))
    st = world.status(CID)
    assert st["state"] == "closed" and st["next"] is None
    assert ok(world.sopctl("eko", "run", CID)).stdout.strip().endswith("is closed; nothing to run")

    # audit: refusals recorded, stage records stamped with the right stage, everything intact
    assert {"SoD-1", "CR-4", "SIG-1", "LOCK-1"} <= set(refusals(world))
    types = [r["type"] for r in world.audit_records(CID)]
    for t in ("change_submitted", "approval", "change_request_changed", "stage_interrupted", "gate_decision",
              "stage_result", "change_closed"):
        assert t in types, t
    results = audit_intact(world)
    stages = {}
    for r in results:
        if r["path"].endswith("controller.jsonl"):
            continue
        from sopctl.changelog import chain
        recs = list(chain().iter_records(r["path"]))
        stages.setdefault({x.get("stage") for x in recs if x.get("stage")}.pop(), 0)
    assert set(stages) >= {"1", "2", "3", "4", "5"}
    assert (world.marker.read_text().count(CID)) >= 2  # stage 3 really ran on the hosts (twice)


@pytest.mark.parametrize("case", ["evidence", "window", "freeze"])
def test_stage3_refusals(tmp_path, case):
    world = World(tmp_path)
    start = datetime.now(UTC) - timedelta(minutes=30)
    if case == "window":
        start = datetime.now(UTC) + timedelta(days=3)
    if case == "freeze":
        now = datetime.now(UTC)
        world.set_freezes([{"name": "Tutup buku akhir tahun", "start": (now - timedelta(hours=2)).isoformat(),
                            "end": (now + timedelta(hours=6)).isoformat()}])
    ok(world.sopctl("budi", "submit", str(world.cr(CID, start=start))))
    ok(world.sopctl("budi", "run", CID))
    approve_plan(world)
    env = {"SOPCTL_TEST_SKIP_BACKUP": "1"} if case == "evidence" else {}
    rule, text = {"evidence": ("EVIDENCE-1", "no backup checklist for production host prd-local-1"),
                  "window": ("WINDOW-1", "only inside the approved window"),
                  "freeze": ("FREEZE-1", "freeze period 'Tutup buku akhir tahun'")}[case]
    refused(world.sopctl("eko", "run", CID, env=env), rule, text)
    refused(world.sopctl("eko", "run", CID, env=env), rule)  # repeatable, still refused
    assert refusals(world).count(rule) == 2
    assert not world.marker.exists()  # stage 3 never touched the hosts
    st = world.status(CID)
    assert [s["status"] for s in st["steps"] if s["step"] == "stage 3"] == ["pending"]
    audit_intact(world)


def test_cli_exit_codes_and_roster_check(tmp_path):
    world = World(tmp_path)
    bad = tmp_path / "bad.yml"
    bad.write_text("api_version: itsop.change/v1\nid: nope\n")
    proc = world.sopctl(None, "validate", str(bad))
    assert proc.returncode == 2 and "CR-1" in proc.stderr
    proc = world.sopctl(None, "status", "CHG-2026-0000")
    assert proc.returncode == 2 and "no change CHG-2026-0000" in proc.stderr
    ok(world.sopctl(None, "roster", "check"))
    proc = ok(world.sopctl("sari", "identity", "show"))
    assert "matches the roster" in proc.stdout
    ident = tmp_path / "mallory"
    ok(world.sopctl(None, "identity", "keygen", "--id", "sari", "--dir", str(ident)))
    proc = world.sopctl(None, "identity", "show", env={"SOPCTL_IDENTITY": str(ident / "identity.yml")})
    assert proc.returncode == 3 and "ID-2" in proc.stderr
    assert sys.executable  # the world runs the CLI with the venv python


def test_cancel_before_stage3_frees_the_hosts(tmp_path):
    """A change stopped before production is cancelled by its requester or an IT manager only; it
    then no longer blocks a later change on the same hosts, and after stage 3 started cancel is refused."""
    world = World(tmp_path)
    ok(world.sopctl("budi", "submit", str(world.cr(CID))))
    ok(world.sopctl("budi", "run", CID))
    refused(world.sopctl("eko", "cancel", CID, "--reason", "not mine"), "ROLE-2", "only its requester budi")
    proc = world.sopctl("sari", "cancel", CID, "--reason", " ")
    assert proc.returncode == 2 and "--reason" in proc.stderr, proc.stderr
    assert world.status(CID)["state"] != "cancelled"
    # a second change on the same hosts and window is refused while the first is open
    refused(world.sopctl("budi", "submit", str(world.cr("CHG-2026-9002"))), "CONFLICT-1", CID)
    ok(world.sopctl("sari", "cancel", CID, "--reason", "staging failed; vendor fix expected"))
    assert world.status(CID)["state"] == "cancelled"
    refused(world.sopctl("sari", "cancel", CID, "--reason", "again"), "STATE-1", "cancelled")
    refused(world.sopctl("sari", "approve", CID, "--gate", "plan", "--comment", "x"), "STATE-1")
    rec = [r for r in world.audit_records(CID) if r["type"] == "change_cancelled"]
    assert len(rec) == 1 and rec[0]["reason"] == "staging failed; vendor fix expected"
    assert rec[0]["previous_state"] == "waiting_gate_plan"
    audit_intact(world)

    # the hosts are free again; once stage 3 has started, cancel is refused (rollback instead)
    second = "CHG-2026-9002"
    ok(world.sopctl("budi", "submit", str(world.cr(second))))
    ok(world.sopctl("budi", "run", second))
    ok(world.sopctl("sari", "approve", second, "--gate", "plan", "--comment", "plan ok"))
    ok(world.sopctl("dewi", "approve", second, "--gate", "plan", "--comment", "downtime ok"))
    ok(world.sopctl("agus", "approve", second, "--gate", "plan", "--comment", "risk low"))
    ok(world.sopctl("eko", "run", second, "--until", "3"))
    refused(world.sopctl("budi", "cancel", second, "--reason", "too late"), "STATE-3", "sopctl rollback")
    assert world.status(second)["state"] != "cancelled"
