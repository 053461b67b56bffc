"""The engine of sopctl: walks a change through the steps of the stage table, with its dependencies
passed in.

Steps, in order (:data:`sopctl.stage_table.STEPS`; Tahap = stage)::

    stage 1 (plan)  -> gate plan (IT manager plan approval, users downtime approval,
                                  security pre-change risk evaluation)
    stage 2 (prepare, backup, artifacts, staging) -> evidence gate (verified backup checklist for
        every production host, artifact verification passed, staging.json passed)
    stage 3 (execute; only inside the approved window, outside freeze periods, no conflict)
    stage 4 (validate) -> gate signoff (QA, security, users)
    stage 5 (go-live and monitoring) -> gate close (IT manager, Tahap 6) -> stage 6 hooks -> closed

``run`` walks the steps from the start every time: finished stages are skipped, gates are
re-evaluated (so a change of the change request, the plan or the targets closes them again),
and it stops at the first gate still waiting. A stage is recorded ``succeeded`` only after its
playbook ended successfully *and* reported its ``itsop_stage<N>`` summary; a stage interrupted
by ``kill -9`` stays ``running`` in the store and is marked ``interrupted`` and re-run by the next
``run`` (:mod:`sopctl.locking`).

Dependencies (constructor): the store, the roster (loaded from the configuration when not given),
the stage runner (:func:`sopctl.runner.run_stage`), the clock, the actor (who acts:
:class:`sopctl.approvals.Actor`) and the stage 6 close hooks (:data:`sopctl.stage6.CLOSE_HOOKS`).
Gates live in :mod:`sopctl.gates`, submission in :mod:`sopctl.submission`, incidents in
:mod:`sopctl.incidents`, the state and its transitions in :mod:`sopctl.state`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from . import approvals as ap
from . import gates, locking, notify, stage6, submission
from . import state as st
from .keys import backup_record_key_file
from .changelog import ChangeLog
from .changes import target_list
from .config import Config, load_config
from .errors import EXIT_OK, Refusal, SopctlError, StageFailed
from .gates import GateState
from .incidents import read_incidents
from .policy import (
    DEFAULT_QUORUM,
    GATE_TITLES,
    Roster,
    check_freeze,
    check_may_run,
    check_sod,
    check_window,
    choose_role,
    load_freezes,
    load_roster,
    now_utc,
)
from .runner import Progress, RunResult, playbook_path, run_stage
from .stage_table import GATE_AFTER, PRODUCTION_STAGE, STEPS, stage
from .state import TERMINAL, ChangeState
from .store import Store, utc_text
from .textsafe import one_line

#: roles that may cancel a change that has not reached production (besides its requester)
CANCEL_ROLES = ("it_manager",)

#: ``hook(engine, change) -> None``, run when the IT manager's closing approval is in
CloseHook = Callable[["Engine", dict[str, Any]], None]


class Engine:
    def __init__(self, store: Store | None = None, out: TextIO | None = None, json_mode: bool = False, *,
                 roster: Roster | None = None, runner: Callable[..., RunResult] = run_stage,
                 clock: Callable[[], datetime] = now_utc, actor: ap.Actor | None = None,
                 close_hooks: Sequence[CloseHook] = stage6.CLOSE_HOOKS) -> None:
        self.store = store or Store()
        self.cfg: Config = load_config(self.store.home)
        self.out = out or sys.stdout
        self.json_mode = json_mode
        self._roster = roster
        self.runner = runner
        self.clock = clock
        self.actor = actor or ap.Actor()
        self.close_hooks = tuple(close_hooks)
        self._cancel = False

    # ------------------------------------------------------------------ helpers
    def say(self, text: str) -> None:
        if self.json_mode:
            self.out.write(json.dumps({"event": "message", "text": text}) + "\n")
        else:
            self.out.write(one_line(text) + "\n")  # a reason or comment in it cannot start a line of its own
        self.out.flush()

    @property
    def roster(self) -> Roster:
        if self._roster is None:
            if not self.cfg.roster:
                raise SopctlError(f"no roster configured: set 'roster:' in {self.cfg.path}")
            self._roster = load_roster(self.cfg.roster)
        return self._roster

    def freezes(self):
        return load_freezes(self.cfg.freeze_calendar)

    def log(self, change_id: str, operator: str | None = None) -> ChangeLog:
        return ChangeLog(self.store.audit_dir(change_id), change_id, operator, self.cfg.audit_signing_key)

    def notify(self, event: str, change: dict[str, Any], text: str, **extra: Any) -> None:
        if not self.cfg.webhooks:
            return
        results = notify.send(self.cfg.webhooks, event, dict(extra, change_id=change["id"], title=change["title"],
                                                             text=text, time=utc_text(self.clock())))
        if results:
            self.log(change["id"]).record("notification", event=event,
                                          deliveries=[{k: v for k, v in r.items()} for r in results])

    def change(self, change_id: str) -> dict[str, Any]:
        ch = self.store.get_change(change_id)
        if ch is None:
            raise SopctlError(f"no change {change_id} in {self.store.path} (submit it first)")
        return ch

    def set_state(self, change_id: str, new: ChangeState) -> None:
        st.set_state(self.store, change_id, new)

    def refusal(self, change_id: str | None, exc: Refusal, action: str, operator: str | None = None) -> None:
        """Record a refusal in the change's audit log (when the change exists)."""
        if change_id and self.store.get_change(change_id):
            self.log(change_id, operator).record("refusal", action=action, rule=exc.rule, reason=exc.reason,
                                                 message=str(exc))

    def identity(self) -> ap.Identity:
        ident = self.actor.identity()
        ap.check_identity_matches(ident, self.roster.person(ident.id).public_key_pem)
        return ident

    # ------------------------------------------------------------------ derived state
    def plan_file(self, change_id: str) -> Path:
        return gates.plan_file(self.store, change_id)

    def succeeded(self, change_id: str) -> dict[str, dict[str, Any]]:
        return gates.succeeded(self.store, change_id)

    def stage3_operators(self, change_id: str) -> set[str]:
        return {r["operator"] for r in gates.production_runs(self.store, change_id)}

    def binding(self, change: dict[str, Any], gate: str) -> str | None:
        return gates.binding(self.store, change, gate)

    def gate_state(self, change: dict[str, Any], gate: str) -> GateState:
        return gates.gate_state(self.store, self.roster, change, gate)

    def evidence_problems(self, change: dict[str, Any]) -> list[str]:
        return gates.evidence_problems(self.store, change)

    def conflicts(self, cr: dict[str, Any], targets: dict[str, list[str]], exclude: str | None = None
                  ) -> list[dict[str, Any]]:
        return submission.conflicts(self.store, cr, targets, exclude)

    def file_changed(self, change: dict[str, Any]) -> bool:
        return submission.file_changed(change)

    # ------------------------------------------------------------------ submit, refresh
    def submit(self, cr_path: Path, inventory: Path | None, operator: str | None,
               allow_conflict: bool = False, submitted_by: str | None = None) -> dict[str, Any]:
        return submission.submit(self.store, lambda: self.roster, self.cfg, self.freezes, self.log, cr_path,
                                 inventory, operator, allow_conflict, submitted_by)

    def refresh(self, change: dict[str, Any], operator: str | None) -> dict[str, Any]:
        if submission.refresh(self.store, self.log, self.say, change, operator):
            return self.change(change["id"])
        return change

    # ------------------------------------------------------------------ approve / reject
    def decide(self, change_id: str, gate: str, decision: str, comment: str, role: str | None = None
               ) -> dict[str, Any]:
        ident = None
        try:
            change = self.change(change_id)
            ident = self.identity()
            if gate not in DEFAULT_QUORUM:
                raise SopctlError(f"unknown gate {gate} (people gates: {', '.join(DEFAULT_QUORUM)})")
            if change["state"] in TERMINAL:
                raise Refusal("STATE-1", f"{change_id} is {change['state']}")
            if self.file_changed(change):
                raise Refusal("CR-4", f"the change request file {change['cr_path']} differs from the version "
                                      f"loaded for {change_id}; 'sopctl run {change_id}' loads it (and voids "
                                      "earlier approvals) before anyone can approve it")
            state = self.gate_state(change, gate)
            if not state.open:
                raise Refusal("GATE-1", f"gate {gate} of {change_id} is not open: stage {GATE_AFTER[gate]} "
                                        "has not completed")
            if state.tampered:
                raise gates.unverified_refusal(self.roster, state, gate)
            person = ident.id
            for row in self.store.approvals(change_id, gate):
                if row["person"] == person and row["binding"] == state.binding:
                    raise Refusal("GATE-2", f"{person} already decided ({row['decision']}) gate {gate} of "
                                            f"{change_id} for this version")
            if gate == "plan" and person == change["requester"]:
                raise Refusal("SoD-1", f"requester {person} cannot approve the plan")
            chosen = choose_role(self.roster, change["cr"], gate, person, role, state.counted)
            check_sod(gate, chosen, person, change["requester"], self.stage3_operators(change_id), state.counted)
            if gate == "plan" and chosen == "security" and decision == "approve" and not comment.strip():
                raise Refusal("EVAL-1", "security's pre-change risk evaluation needs a --comment with the "
                                        "evaluation")
            row = {"change_id": change_id, "gate": gate, "person": person, "role": chosen, "decision": decision,
                   "comment": comment, "binding": state.binding, "time": utc_text(self.clock())}
            row = ap.sign_decision(ident, row)
            self.store.add_approval(row)
            self.log(change_id, person).record(
                "approval" if decision == "approve" else "rejection", gate=gate, person=person, role=chosen,
                comment=comment, binding=state.binding, cr_digest=change["cr_digest"],
                plan_digest=ap.file_digest(self.plan_file(change_id)), targets=target_list(change["targets"]),
                key_id=row["key_id"], signature=row["signature"])
            after = self.gate_state(change, gate)
            if decision == "reject":
                self.log(change_id, person).record("gate_decision", gate=gate, decision="rejected", by=person)
                self.set_state(change_id, st.rejected(gate))
            elif after.satisfied:
                self.log(change_id, person).record("gate_decision", gate=gate, decision="satisfied",
                                                   approved=after.counted)
            return {"change_id": change_id, "gate": gate, "person": person, "role": chosen, "decision": decision,
                    "gate_state": after.to_dict()}
        except Refusal as exc:
            self.refusal(change_id, exc, f"{decision} gate {gate}", ident.id if ident else None)
            raise

    # ------------------------------------------------------------------ run
    def _lock(self, change_id: str) -> int:
        return locking.lock(self.store, change_id)

    def _recover(self, change: dict[str, Any], operator: str) -> None:
        locking.recover(self.store, change, self.log(change["id"], operator), self.say)

    @contextmanager
    def _exclusive(self, change_id: str, action: str) -> Iterator[tuple[dict[str, Any], str]]:
        """The change and who acts (a member of the infrastructure team), holding the change's lock
        after recovering a killed run; a refusal is recorded in the change's audit log."""
        operator = None
        lock_fd = None
        try:
            change = self.change(change_id)
            operator = self.identity().id
            check_may_run(self.roster, operator)
            lock_fd = self._lock(change_id)
            self._recover(change, operator)
            yield change, operator
        except Refusal as exc:
            self.refusal(change_id, exc, action, operator)
            raise
        finally:
            if lock_fd is not None:
                os.close(lock_fd)

    def run(self, change_id: str, max_stage: str | None = None) -> int:
        with self._exclusive(change_id, "run") as (change, operator):
            if change["state"] in TERMINAL:
                self.say(f"{change_id} is {change['state']}; nothing to run")
                return EXIT_OK
            change = self.refresh(change, operator)
            for c in self.conflicts(change["cr"], change["targets"], exclude=change_id):
                self.say(f"warning: conflict with {c['change_id']} on {', '.join(c['hosts'])} ({c['window']})")
            return self._walk(change, operator, max_stage)

    def _walk(self, change: dict[str, Any], operator: str, max_stage: str | None) -> int:
        cid = change["id"]
        for kind, name in STEPS:
            done = self.succeeded(cid)
            if kind == "stage":
                if name in done:
                    continue
                if max_stage and int(name) > int(max_stage):
                    self.say(f"{cid}: stopping before stage {name} (--until {max_stage})")
                    return EXIT_OK
                if name == PRODUCTION_STAGE:
                    self._check_stage3(change)
                self._run_stage(change, name, operator)
            elif kind == "gate":
                state = self.gate_state(change, name)
                if state.tampered:
                    raise gates.unverified_refusal(self.roster, state, name, f"; gate {name} is closed")
                if state.rejected:
                    r = state.rejected[-1]
                    raise Refusal("GATE-3", f"gate {name} was rejected by {r['person']} ({r['role']}): "
                                            f"{r['comment']}")
                if not state.satisfied:
                    need = ", ".join(f"{role} x{n}" for role, n in state.missing.items())
                    void = f"; {len(state.void)} earlier decision(s) void (CR, plan or targets changed)" \
                        if state.void else ""
                    self.set_state(cid, st.waiting(name))
                    self.log(cid, operator).record("gate_waiting", gate=name, missing=state.missing,
                                                   approved=state.counted, void=len(state.void))
                    text = f"{cid}: waiting at gate {name} ({GATE_TITLES[name]}): needs {need}{void}"
                    self.say(text)
                    self.notify("gate_waiting", change, text, gate=name, missing=state.missing)
                    return EXIT_OK
            elif kind == "evidence":
                problems = self.evidence_problems(change)
                if problems:
                    raise Refusal("EVIDENCE-1", "stage 3 needs the stage 2 evidence: " + "; ".join(problems))
                if PRODUCTION_STAGE not in done:
                    self.log(cid, operator).record("gate_decision", gate="evidence", decision="satisfied")
            elif kind == "stage6":
                return self._close(change, operator)
        return EXIT_OK

    def _check_stage3(self, change: dict[str, Any]) -> None:
        start, end = submission.window(change["cr"])
        now = self.clock()
        check_window(start, end, now)
        check_freeze(self.freezes(), now)
        earlier = [c for c in self.conflicts(change["cr"], change["targets"], exclude=change["id"])
                   if c["created"] < change["created"]]
        if earlier:
            c = earlier[0]
            raise Refusal("CONFLICT-1", f"{c['change_id']} (submitted earlier) touches {', '.join(c['hosts'])} in an "
                                        f"overlapping window ({c['window']}); finish or close it first")

    def _cancel_handler(self, signum: int, frame: Any) -> None:
        self._cancel = True

    def _run_stage(self, change: dict[str, Any], number: str, operator: str) -> RunResult:
        cid = change["id"]
        name = stage(number).title
        playbook = playbook_path(number)
        if not playbook.is_file():
            raise SopctlError(f"stage {number} playbook {playbook} does not exist")
        ident = f"stage{number}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"
        token = uuid.uuid4().hex
        run_row = self.store.start_stage_run(cid, number, ident, token, operator, os.getpid(), socket.gethostname())
        self.set_state(cid, st.running(number))
        self.log(cid, operator).record("stage_started", stage=number, ident=ident, playbook=str(playbook),
                                       name=name)
        self.say(f"{cid}: stage {number} ({name}) started, run {ident}")
        old = {s: signal.signal(s, self._cancel_handler) for s in (signal.SIGTERM, signal.SIGINT)}
        self._cancel = False
        started = time.time()
        try:
            result = self.runner(
                stage=number, playbook=playbook, private_data_dir=self.store.runner_dir(cid),
                inventory=change["inventory"], change_id=cid, cr=change["cr"],
                evidence_dir=self.store.evidence_dir(cid), audit_dir=self.store.audit_dir(cid), operator=operator,
                token=token, ident=ident, progress=Progress(number, self.out, "json" if self.json_mode else None),
                cancel=lambda: self._cancel,
                signing_key=str(self.cfg.audit_signing_key) if self.cfg.audit_signing_key else None,
                backup_record_key=str(backup_record_key_file(self.store.home)))
        except Exception as exc:
            self.store.finish_stage_run(run_row, "failed", message=f"runner error: {exc}")
            self.log(cid, operator).record("stage_result", stage=number, ident=ident, status="error", error=str(exc))
            raise
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        took = round(time.time() - started, 2)
        if result.status == "successful" and result.summary is None:
            result.failures.append(f"the playbook did not report its summary itsop_stage{number} (set_stats)")
            result.status = "failed"
        status = {"successful": "succeeded", "canceled": "interrupted"}.get(result.status, "failed")
        self.store.finish_stage_run(run_row, status, summary=result.summary,
                                    message="; ".join(result.failures)[:2000] or None)
        self.log(cid, operator).record("stage_result", stage=number, ident=ident, status=status, rc=result.rc,
                                       runner_status=result.status, summary=result.summary,
                                       failures=result.failures[:50], duration=took, stats=result.stats)
        rolled_back = self._stage5_incidents(change, operator, result) if number == "5" else False
        if status != "succeeded":
            self.set_state(cid, ChangeState.ROLLED_BACK if rolled_back else st.finished(number, status))
            text = f"{cid}: stage {number} {status} (run {ident}): " + ("; ".join(result.failures[:5])
                                                                          or result.status)
            self.notify("stage_failed", change, text, stage=number)
            if rolled_back:
                text += ("; every production host was rolled back automatically (Tahap 5.3): the change is "
                         "rolled_back")
            raise StageFailed(text)
        self.set_state(cid, st.finished(number, status))
        self.say(f"{cid}: stage {number} succeeded in {took} s (evidence {self.store.evidence_dir(cid)}/stage{number})")
        return result

    def _stage5_incidents(self, change: dict[str, Any], operator: str, result: RunResult) -> bool:
        """Record the incidents of a stage 5 run (from ``stage5/incidents.json``, else the summary).

        Returns True when monitoring rolled back *every* production host successfully: the change
        is then ``rolled_back`` (recorded as ``change_rolled_back`` by the automatic rollback).
        """
        cid = change["id"]
        found = read_incidents(self.store, change, result.summary)
        if not found.count:
            return False
        self.log(cid, operator).record("incident", stage="5", count=found.count, incidents=found.brief,
                                       evidence=str(found.path))
        self.notify("incident", change, f"{cid}: {found.count} incident(s) raised during monitoring",
                    count=found.count)
        if not found.all_rolled_back:
            return False
        self.log(cid, operator).record("change_rolled_back", by="monitoring", hosts=sorted(found.rolled),
                                       note="automatic rollback after incidents in the monitoring period (Tahap 5.3)")
        self.say(f"{cid}: incident(s) {', '.join(str(b['id']) for b in found.brief)}: monitoring rolled back "
                 f"{', '.join(sorted(found.rolled))} automatically")
        return True

    def _close(self, change: dict[str, Any], operator: str) -> int:
        cid = change["id"]
        for hook in self.close_hooks:
            hook(self, change)
        self.set_state(cid, ChangeState.CLOSED)
        self.log(cid, operator).record("change_closed",
                                       hooks=[getattr(h, "__name__", str(h)) for h in self.close_hooks],
                                       note="stage 6 = IT manager closing approval; report/archive hooks run here")
        text = f"{cid}: closed (Tahap 6: IT manager's closing approval recorded)"
        self.say(text)
        self.notify("change_completed", change, text)
        return EXIT_OK

    # ------------------------------------------------------------------ rollback
    def rollback(self, change_id: str) -> int:
        with self._exclusive(change_id, "rollback") as (change, operator):
            if change["state"] in TERMINAL:
                raise Refusal("STATE-1", f"{change_id} is {change['state']}")
            if not gates.production_runs(self.store, change_id):
                raise Refusal("STATE-2", f"stage 3 of {change_id} never started: nothing to roll back")
            self._run_stage(change, "rollback", operator)
            self.set_state(change_id, ChangeState.ROLLED_BACK)
            self.log(change_id, operator).record("change_rolled_back")
            self.notify("incident", change, f"{change_id}: rolled back")
            return EXIT_OK

    # ------------------------------------------------------------------ cancel
    def cancel(self, change_id: str, reason: str) -> dict[str, Any]:
        """Withdraw a change before stage 3 started (e.g. its staging simulation failed).

        The requester or an IT manager may cancel; the change becomes ``cancelled`` (terminal, so it
        no longer conflicts with later changes on the same hosts). After stage 3 started the hosts
        may already be changed: that is ``sopctl rollback``, not a cancel (STATE-3).
        """
        person = None
        try:
            change = self.change(change_id)
            ident = self.identity()
            person = ident.id
            if not reason.strip():
                raise SopctlError("cancel needs --reason TEXT (it goes into the audit log and the report)")
            if change["state"] in TERMINAL:
                raise Refusal("STATE-1", f"{change_id} is {change['state']}")
            roles = set(self.roster.person(person).roles)
            if person != change["requester"] and not roles & set(CANCEL_ROLES):
                raise Refusal("ROLE-2", f"{person} ({', '.join(sorted(roles))}) may not cancel {change_id}: only "
                                        f"its requester {change['requester']} or an IT manager may")
            if gates.production_runs(self.store, change_id):
                raise Refusal("STATE-3", f"stage 3 of {change_id} has started and may have changed production: "
                                         f"use 'sopctl rollback {change_id}' instead of cancel")
            lock_fd = self._lock(change_id)
            try:
                previous = change["state"]
                self.set_state(change_id, ChangeState.CANCELLED)
                self.log(change_id, person).record("change_cancelled", reason=reason, previous_state=previous)
            finally:
                os.close(lock_fd)
            self.say(f"{change_id}: cancelled by {person} (was {previous}): {reason}")
            self.notify("change_completed", change, f"{change_id}: cancelled by {person}: {reason}")
            return {"change_id": change_id, "state": "cancelled", "previous_state": previous, "by": person}
        except Refusal as exc:
            self.refusal(change_id, exc, "cancel", person)
            raise

    # ------------------------------------------------------------------ status
    def status(self, change_id: str) -> dict[str, Any]:
        change = self.change(change_id)
        runs = self.store.stage_runs(change_id)
        steps = []
        nxt = None
        for kind, name in STEPS:
            if kind in ("stage", "stage6"):
                mine = [r for r in runs if r["stage"] == name and r["status"] != "superseded"]
                last = mine[-1] if mine else None
                st = "succeeded" if any(r["status"] == "succeeded" for r in mine) else \
                    (last["status"] if last else "pending")
                if kind == "stage6":
                    st = "succeeded" if change["state"] == "closed" else "pending"
                steps.append({"step": f"stage {name}", "name": stage(name).title, "status": st,
                              "runs": len(mine), "last_run": last and {k: last[k] for k in
                                                                       ("ident", "operator", "status", "started",
                                                                        "ended", "message")}})
            elif kind == "gate":
                steps.append(dict(self.gate_state(change, name).to_dict(), step=f"gate {name}"))
            else:
                problems = self.evidence_problems(change) if "2" in self.succeeded(change_id) else ["stage 2 not done"]
                steps.append({"step": "gate evidence", "status": "satisfied" if not problems else "not_satisfied",
                              "problems": problems})
            if nxt is None and steps[-1]["status"] not in ("succeeded", "satisfied"):
                nxt = steps[-1]["step"]
        return {"change_id": change_id, "title": change["title"], "requester": change["requester"],
                "state": change["state"], "cr_path": change["cr_path"], "cr_digest": change["cr_digest"],
                "cr_file_changed": self.file_changed(change), "inventory": change["inventory"],
                "targets": change["targets"], "window": {"start": change["window_start"], "end": change["window_end"]},
                "next": nxt, "steps": steps, "evidence_dir": str(self.store.evidence_dir(change_id)),
                "audit_dir": str(self.store.audit_dir(change_id))}
