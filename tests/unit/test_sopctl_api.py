"""The public Python API of sopctl (sopctl.api) and the engine's explicit dependencies: who acts,
the clock, the store and the stage 6 close hooks are passed in, not read deep inside."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sopctl import api, stage6
from sopctl.approvals import Actor
from sopctl.errors import Refusal
from sopctl.store import Store

from tests.fixtures.sopctl.world import World

CID = "CHG-2026-9501"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = World(tmp_path)
    monkeypatch.setenv("SOPCTL_HOME", str(w.home))
    monkeypatch.setenv("SOPCTL_PLAYBOOK_DIR", str(tmp_path / "no-playbooks"))
    monkeypatch.delenv("SOPCTL_IDENTITY", raising=False)
    return w


def quiet():
    return open(os.devnull, "w")


def test_submit_and_status_through_the_api_with_an_explicit_actor(world):
    budi = Actor(world.identity("budi"))
    res = api.submit(world.cr(CID), operator="budi", actor=budi, out=quiet())
    assert res["change_id"] == CID and res["targets"]["production"]
    st = api.status(CID, actor=budi, out=quiet())
    assert st["state"] == "submitted" and st["next"] == "stage 1"
    assert [s["step"] for s in st["steps"]][:3] == ["stage 1", "gate plan", "stage 2"]
    assert Store().get_change(CID)["submitted_by"] == "budi"


def test_who_acts_is_the_actor_passed_in_not_the_environment(world, monkeypatch):
    eng = api.engine(actor=Actor(world.identity("budi")), out=quiet())
    eng.submit(world.cr(CID), None, "budi")
    # the environment names sari; the engine acts as the actor it was given (budi)
    monkeypatch.setenv("SOPCTL_IDENTITY", str(world.identity("sari")))
    assert eng.identity().id == "budi"
    sari = Actor(world.identity("sari"))
    with pytest.raises(Refusal, match="GATE-1"):
        api.decide(CID, "plan", "approve", actor=sari, out=quiet())
    assert [r for r in world.audit_records(CID) if r["type"] == "refusal"][-1]["operator"]["declared"] == "sari"


def test_the_clock_is_passed_in(world):
    eng = api.engine(actor=Actor(world.identity("budi")), out=quiet())
    eng.submit(world.cr(CID), None, "budi")
    change = eng.change(CID)
    eng._check_stage3(change)  # now: inside the window
    late = api.engine(actor=Actor(world.identity("budi")), out=quiet(),
                      clock=lambda: eng.clock() + timedelta(days=2))
    with pytest.raises(Refusal, match="WINDOW-1"):
        late._check_stage3(change)


def test_decisions_are_stamped_by_the_clock_passed_in(world):
    from datetime import UTC, datetime

    eng = api.engine(actor=Actor(world.identity("budi")), out=quiet())
    eng.submit(world.cr(CID), None, "budi")
    rid = eng.store.start_stage_run(CID, "1", "stage1-x", "t1", "eko", os.getpid(), "h")
    eng.store.finish_stage_run(rid, "succeeded", summary={"result": "passed"})
    eng.plan_file(CID).parent.mkdir(parents=True, exist_ok=True)
    eng.plan_file(CID).write_text('{"plan": "demo"}')
    fixed = datetime(2026, 11, 24, 15, 0, 1, 5, tzinfo=UTC)
    api.decide(CID, "plan", "approve", actor=Actor(world.identity("sari")), out=quiet(), clock=lambda: fixed)
    assert [r["time"] for r in eng.store.approvals(CID, "plan")] == ["2026-11-24T15:00:01.000005Z"]


def test_close_hooks_are_wired_explicitly(world):
    seen = []

    def hook(engine, change):
        seen.append((change["id"], engine.store.get_change(change["id"])["state"]))

    eng = api.engine(actor=Actor(world.identity("budi")), out=quiet(), close_hooks=[hook])
    eng.submit(world.cr(CID), None, "budi")
    assert eng._close(eng.change(CID), "sari") == 0
    assert seen == [(CID, "submitted")]  # the hooks run before the change is marked closed
    assert eng.change(CID)["state"] == "closed"
    closed = [r for r in world.audit_records(CID) if r["type"] == "change_closed"]
    assert closed[-1]["hooks"] == ["hook"]
    assert api.engine(out=quiet()).close_hooks == stage6.CLOSE_HOOKS
    assert [h.__name__ for h in stage6.CLOSE_HOOKS] == ["close_hook"]


def test_stage6_needs_no_import_side_effect(tmp_path):
    code = ("import sys; from sopctl.engine import Engine; from sopctl.store import Store; "
            "e = Engine(Store()); print([h.__name__ for h in e.close_hooks], 'sopctl.report_cmd' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(REPO / "controller"), SOPCTL_HOME=str(tmp_path / "home"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=REPO)
    assert out.stdout.split() == ["['close_hook']", "False"]
