"""The six-stage state machine: stages, people gates, the evidence gate, window and freeze, resume.

Steps, in order (Tahap = stage)::

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
``run`` (after checking that no process of that run is still alive).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from . import approvals as ap
from . import notify
from .changelog import ChangeLog
from .archive import backup_record_key_file
from .changes import load_cr, resolve_targets, target_list
from .config import Config, load_config
from .errors import EXIT_OK, Refusal, SopctlError, StageFailed
from .policy import (
    DEFAULT_QUORUM,
    GATE_TITLES,
    Roster,
    check_freeze,
    check_may_run,
    check_sod,
    check_window,
    choose_role,
    freezes_overlapping,
    load_freezes,
    load_roster,
    now_utc,
    overlaps,
    parse_time,
)
from .runner import Progress, RunResult, playbook_path, processes_with_token, run_stage
from .store import Store, atomic_write, read_json_file, utc_now
from .textsafe import one_line

STEPS: list[tuple[str, str]] = [
    ("stage", "1"), ("gate", "plan"), ("stage", "2"), ("evidence", "stage3"), ("stage", "3"),
    ("stage", "4"), ("gate", "signoff"), ("stage", "5"), ("gate", "close"), ("stage6", "6"),
]
STAGE_NAMES = {
    "1": "Perencanaan / planning", "2": "Persiapan teknis dan backup / preparation and backup",
    "3": "Pelaksanaan / execution", "4": "Pengujian dan validasi / testing and validation",
    "5": "Implementasi dan monitoring / go-live and monitoring", "6": "Dokumentasi dan evaluasi / closing",
    "rollback": "Rollback",
}
#: the stage that must have succeeded before people can decide at a gate
GATE_AFTER = {"plan": "1", "signoff": "4", "close": "5"}
TERMINAL = ("closed", "rolled_back", "cancelled")
#: roles that may cancel a change that has not reached production (besides its requester)
CANCEL_ROLES = ("it_manager",)

#: Stage 6 hooks: callables ``hook(engine, change) -> None`` run when the IT manager's closing
#: approval is in, before the change is marked closed. ``sopctl report`` / ``archive`` (a later
#: issue) register here to write the report and the audit archive.
CLOSE_HOOKS: list[Callable[[Engine, dict[str, Any]], None]] = []


def passed(doc: Any) -> bool:
    """An evidence document says *passed*, in the form its producer writes.

    ``passed: true`` or ``verdict: passed`` (stage documents), ``result: passed`` (the artifact
    verification record of role artifact_verify), ``complete: true`` (the backup checklist of role
    backup, ``itsop-backup-checklist/1``); any of them saying otherwise fails.
    """
    if not isinstance(doc, dict):
        return False
    verdicts = {
        "passed": doc.get("passed"),
        "verdict": doc.get("verdict"),
        "result": doc.get("result"),
        "complete": doc.get("complete"),
    }
    if verdicts["passed"] is False or verdicts["complete"] is False:
        return False
    if verdicts["verdict"] not in (None, "passed") or verdicts["result"] not in (None, "passed"):
        return False
    return (verdicts["passed"] is True or verdicts["complete"] is True
            or "passed" in (verdicts["verdict"], verdicts["result"]))


@dataclass
class GateState:
    gate: str
    open: bool
    binding: str | None
    counted: dict[str, list[str]]
    missing: dict[str, int]
    rejected: list[dict[str, Any]]
    void: list[dict[str, Any]]
    tampered: list[dict[str, Any]]

    @property
    def satisfied(self) -> bool:
        return self.open and not self.missing and not self.rejected and not self.tampered

    def to_dict(self) -> dict[str, Any]:
        status = ("not_open" if not self.open else "tampered" if self.tampered else "rejected" if self.rejected
                  else "satisfied" if not self.missing else "waiting")
        return {"gate": self.gate, "status": status, "approved": self.counted, "missing": self.missing,
                "rejected": [{k: r[k] for k in ("person", "role", "comment", "time")} for r in self.rejected],
                "void": len(self.void), "tampered": [r["person"] for r in self.tampered],
                "binding": self.binding}


class Engine:
    def __init__(self, store: Store | None = None, out: TextIO | None = None, json_mode: bool = False) -> None:
        self.store = store or Store()
        self.cfg: Config = load_config(self.store.home)
        self.out = out or sys.stdout
        self.json_mode = json_mode
        self._roster: Roster | None = None
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
                                                             text=text, time=utc_now()))
        if results:
            self.log(change["id"]).record("notification", event=event,
                                          deliveries=[{k: v for k, v in r.items()} for r in results])

    def change(self, change_id: str) -> dict[str, Any]:
        ch = self.store.get_change(change_id)
        if ch is None:
            raise SopctlError(f"no change {change_id} in {self.store.path} (submit it first)")
        return ch

    def refusal(self, change_id: str | None, exc: Refusal, action: str, operator: str | None = None) -> None:
        """Record a refusal in the change's audit log (when the change exists)."""
        if change_id and self.store.get_change(change_id):
            self.log(change_id, operator).record("refusal", action=action, rule=exc.rule, reason=exc.reason,
                                                 message=str(exc))

    def identity(self) -> ap.Identity:
        ident = ap.load_identity()
        ap.check_identity_matches(ident, self.roster.person(ident.id).public_key_pem)
        return ident

    # ------------------------------------------------------------------ derived state
    def plan_file(self, change_id: str) -> Path:
        return self.store.evidence_dir(change_id) / "stage1" / "plan.json"

    def succeeded(self, change_id: str) -> dict[str, dict[str, Any]]:
        out = {}
        for r in self.store.stage_runs(change_id):
            if r["status"] == "succeeded":
                out[r["stage"]] = r
        return out

    def stage3_operators(self, change_id: str) -> set[str]:
        return {r["operator"] for r in self.store.stage_runs(change_id)
                if r["stage"] == "3" and r["status"] != "superseded"}

    def binding(self, change: dict[str, Any], gate: str) -> str | None:
        plan = ap.file_digest(self.plan_file(change["id"]))
        if plan is None:
            return None
        return ap.binding_digest(change["id"], gate, change["cr_digest"], plan, target_list(change["targets"]))

    def gate_state(self, change: dict[str, Any], gate: str) -> GateState:
        done = self.succeeded(change["id"])
        binding = self.binding(change, gate)
        is_open = GATE_AFTER[gate] in done and binding is not None
        counted: dict[str, list[str]] = {}
        rejected, void, tampered = [], [], []
        roster = self.roster
        for row in self.store.approvals(change["id"], gate):
            pem = roster.people[row["person"]].public_key_pem if row["person"] in roster.people else None
            if not ap.verify_decision(row, pem):
                tampered.append(row)
                continue
            if row["binding"] != binding:
                void.append(row)
                continue
            if row["decision"] == "reject":
                rejected.append(row)
            elif row["person"] not in counted.setdefault(row["role"], []):
                counted[row["role"]].append(row["person"])
        quorum = roster.quorum.get(gate, DEFAULT_QUORUM[gate])
        missing = {r: n - len(counted.get(r, [])) for r, n in quorum.items() if len(counted.get(r, [])) < n}
        return GateState(gate, is_open, binding, counted, missing, rejected, void, tampered)

    def _unverified_refusal(self, state: GateState, gate: str, suffix: str = "") -> Refusal:
        """SIG-1 naming why each stored decision does not verify: a tampered one apart from one whose
        signer is no longer in the roster (or whose roster key was replaced)."""
        from .archive import SIG_INVALID, check_decision

        tampered, unverifiable = [], []
        for row in state.tampered:
            person = self.roster.people.get(row["person"])
            status, reason = check_decision(row, person is not None, person.public_key_pem if person else None)
            (tampered if status == SIG_INVALID else unverifiable).append((row["person"], reason))
        parts = []
        if tampered:
            parts.append("stored decision(s) of " + ", ".join(p for p, _ in tampered)
                         + f" at gate {gate} fail signature verification (tampered)")
        parts.extend(f"the decision of {p} at gate {gate} cannot be verified: {reason}" for p, reason in unverifiable)
        return Refusal("SIG-1", "; ".join(parts) + suffix)

    def evidence_problems(self, change: dict[str, Any]) -> list[str]:
        ev = self.store.evidence_dir(change["id"]) / "stage2"
        problems = []

        def check(path: Path, missing: str | None, failed: str) -> None:
            doc, unreadable = read_json_file(path)
            if unreadable:
                problems.append(f"{failed}: {unreadable} ({path})")
            elif doc is None:
                if missing:
                    problems.append(f"{missing} ({path})")
            elif not passed(doc):
                problems.append(f"{failed} ({path})")

        for host in change["targets"].get("production", []):
            check(ev / "backup" / host / "checklist.json", f"no backup checklist for production host {host}",
                  f"backup checklist of {host} is not verified/passed")
        check(ev / "artifacts" / "verification.json",
              "no artifact verification record" if (change["cr"].get("items") or {}).get("artifacts") else None,
              "artifact verification did not pass")
        check(ev / "staging.json", "no staging run verdict", "the staging run did not pass")
        return problems

    def conflicts(self, cr: dict[str, Any], targets: dict[str, list[str]], exclude: str | None = None
                  ) -> list[dict[str, Any]]:
        start, end = _window(cr)
        hosts = {h for hs in targets.values() for h in hs}
        out = []
        for other in self.store.list_changes():
            if other["id"] == exclude or other["state"] in TERMINAL:
                continue
            o_hosts = {h for hs in other["targets"].values() for h in hs}
            common = hosts & o_hosts
            o_start, o_end = parse_time(other["window_start"], "window"), parse_time(other["window_end"], "window")
            if common and overlaps(start, end, o_start, o_end):
                out.append({"change_id": other["id"], "hosts": sorted(common), "created": other["created"],
                            "window": f"{other['window_start']} .. {other['window_end']}"})
        return out

    # ------------------------------------------------------------------ submit
    def submit(self, cr_path: Path, inventory: Path | None, operator: str | None,
               allow_conflict: bool = False) -> dict[str, Any]:
        cr = load_cr(cr_path)
        inv = inventory or self.cfg.inventory
        if not inv:
            raise SopctlError(f"no inventory: pass --inventory or set 'inventory:' in {self.cfg.path}")
        inv = Path(inv).resolve()
        roster = self.roster
        if cr["requester"] not in roster.people:
            raise Refusal("ROLE-1", f"requester {cr['requester']} is not in the roster {roster.path}")
        for role, people in (cr.get("approvers") or {}).items():
            for pid in people:
                person = roster.people.get(pid)
                if person is None or role not in person.roles:
                    raise Refusal("ROLE-1", f"approvers.{role}: {pid} does not hold role {role} in the roster")
        if cr["requester"] in ((cr.get("approvers") or {}).get("it_manager") or []):
            raise Refusal("SoD-1", f"requester {cr['requester']} cannot approve the plan "
                                   "(named as it_manager approver)")
        targets = resolve_targets(str(inv), cr)
        found = self.conflicts(cr, targets)
        if self.store.get_change(cr["id"]):
            raise SopctlError(f"change {cr['id']} is already submitted; edit its file {cr_path} and 'sopctl run' "
                              "it (approvals are voided), or use a new id")
        if found and not allow_conflict:
            desc = "; ".join(f"{c['change_id']} on {', '.join(c['hosts'])} ({c['window']})" for c in found)
            raise Refusal("CONFLICT-1", f"{cr['id']} touches the same hosts in an overlapping window as {desc}")
        start, end = _window(cr)
        self.store.insert_change({
            "id": cr["id"], "title": cr["title"], "requester": cr["requester"], "cr_path": str(cr_path.resolve()),
            "cr": cr, "cr_digest": ap.cr_digest(cr), "inventory": str(inv), "targets": targets,
            "window_start": start.isoformat(), "window_end": end.isoformat(),
            "submitted_by": operator or os.environ.get("USER", "?"),
        })
        self.store.evidence_dir(cr["id"])
        snapshot = self.store.change_dir(cr["id"]) / "change_request.json"
        atomic_write(snapshot, json.dumps(cr, indent=2, sort_keys=True))
        warnings = [f"freeze period '{f.name}' overlaps the window" for f in freezes_overlapping(self.freezes(), start,
                                                                                                  end)]
        warnings += [f"conflict (CONFLICT-1, allowed by --allow-conflict): {c['change_id']} on "
                     f"{', '.join(c['hosts'])}" for c in found]
        self.log(cr["id"], operator).record("change_submitted", cr_digest=ap.cr_digest(cr), cr_path=str(cr_path),
                                            inventory=str(inv), targets=targets, warnings=warnings,
                                            requester=cr["requester"], title=cr["title"])
        return {"change_id": cr["id"], "targets": targets, "warnings": warnings}

    # ------------------------------------------------------------------ refresh (CR or targets changed)
    def refresh(self, change: dict[str, Any], operator: str | None) -> dict[str, Any]:
        cr = load_cr(change["cr_path"])
        if cr["id"] != change["id"]:
            raise Refusal("CR-2", f"{change['cr_path']} now holds change {cr['id']}, not {change['id']}")
        targets = resolve_targets(change["inventory"], cr)
        digest = ap.cr_digest(cr)
        if digest == change["cr_digest"] and targets == change["targets"]:
            return change
        started3 = [r for r in self.store.stage_runs(change["id"]) if r["stage"] == "3" and r["status"] != "superseded"]
        what = "change request" if digest != change["cr_digest"] else "target hosts"
        if started3:
            raise Refusal("CR-2", f"the {what} of {change['id']} changed after stage 3 started; "
                                  "the change can only be rolled back or closed — submit a new change")
        start, end = _window(cr)
        self.store.update_change(change["id"], cr=cr, cr_digest=digest, targets=targets,
                                 window_start=start.isoformat(), window_end=end.isoformat(), title=cr["title"])
        self.store.supersede_stage_runs(change["id"])
        atomic_write(self.store.change_dir(change["id"]) / "change_request.json", json.dumps(cr, indent=2,
                                                                                                sort_keys=True))
        self.log(change["id"], operator).record(
            "change_request_changed", what=what, old_cr_digest=change["cr_digest"], new_cr_digest=digest,
            old_targets=change["targets"], new_targets=targets,
            effect="earlier approvals are void; stages 1 and 2 run again")
        self.say(f"{change['id']}: the {what} changed since it was loaded: earlier approvals are void and the "
                 "stages from 1 run again")
        return self.change(change["id"])

    def file_changed(self, change: dict[str, Any]) -> bool:
        try:
            return ap.cr_digest(load_cr(change["cr_path"])) != change["cr_digest"]
        except SopctlError:
            return True

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
                raise self._unverified_refusal(state, gate)
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
                   "comment": comment, "binding": state.binding, "time": utc_now()}
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
                self.store.update_change(change_id, state=f"rejected_at_{gate}")
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
        path = self.store.lock_path(change_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            try:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            except OSError:
                pass
            os.close(fd)
            raise Refusal("LOCK-1", f"{change_id} is already being run ({holder or 'another sopctl'}); "
                                    "one stage run at a time per change") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {utc_now()}\n".encode(), 0)
        return fd

    def _recover(self, change: dict[str, Any], operator: str) -> None:
        for r in self.store.running_stage_runs(change["id"]):
            alive = processes_with_token(r["token"])
            if alive:
                raise Refusal("LOCK-2", f"stage {r['stage']} of {change['id']} from an interrupted sopctl (pid "
                                        f"{r['pid']}) still has running processes {alive}; wait for them or stop them")
            self.store.finish_stage_run(r["id"], "interrupted", message=f"sopctl pid {r['pid']} on {r['host']} "
                                                                          "ended without recording a result")
            self.log(change["id"], operator).record(
                "stage_interrupted", stage=r["stage"], ident=r["ident"], pid=r["pid"], host=r["host"],
                started=r["started"], effect="recorded as interrupted (not done); the stage runs again")
            self.say(f"{change['id']}: stage {r['stage']} was interrupted (sopctl pid {r['pid']} on {r['host']}, "
                     f"run {r['ident']}); it is not recorded as done and runs again")

    def run(self, change_id: str, max_stage: str | None = None) -> int:
        operator = None
        lock_fd = None
        try:
            change = self.change(change_id)
            ident = self.identity()
            operator = ident.id
            check_may_run(self.roster, operator)
            lock_fd = self._lock(change_id)
            self._recover(change, operator)
            if change["state"] in TERMINAL:
                self.say(f"{change_id} is {change['state']}; nothing to run")
                return EXIT_OK
            change = self.refresh(change, operator)
            for c in self.conflicts(change["cr"], change["targets"], exclude=change_id):
                self.say(f"warning: conflict with {c['change_id']} on {', '.join(c['hosts'])} ({c['window']})")
            return self._walk(change, operator, max_stage)
        except Refusal as exc:
            self.refusal(change_id, exc, "run", operator)
            raise
        finally:
            if lock_fd is not None:
                os.close(lock_fd)

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
                if name == "3":
                    self._check_stage3(change)
                self._run_stage(change, name, operator)
            elif kind == "gate":
                state = self.gate_state(change, name)
                if state.tampered:
                    raise self._unverified_refusal(state, name, f"; gate {name} is closed")
                if state.rejected:
                    r = state.rejected[-1]
                    raise Refusal("GATE-3", f"gate {name} was rejected by {r['person']} ({r['role']}): "
                                            f"{r['comment']}")
                if not state.satisfied:
                    need = ", ".join(f"{role} x{n}" for role, n in state.missing.items())
                    void = f"; {len(state.void)} earlier decision(s) void (CR, plan or targets changed)" \
                        if state.void else ""
                    self.store.update_change(cid, state=f"waiting_gate_{name}")
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
                if "3" not in done:
                    self.log(cid, operator).record("gate_decision", gate="evidence", decision="satisfied")
            elif kind == "stage6":
                return self._close(change, operator)
        return EXIT_OK

    def _check_stage3(self, change: dict[str, Any]) -> None:
        start, end = _window(change["cr"])
        now = now_utc()
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

    def _run_stage(self, change: dict[str, Any], stage: str, operator: str) -> RunResult:
        cid = change["id"]
        playbook = playbook_path(stage)
        if not playbook.is_file():
            raise SopctlError(f"stage {stage} playbook {playbook} does not exist")
        ident = f"stage{stage}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"
        token = uuid.uuid4().hex
        run_row = self.store.start_stage_run(cid, stage, ident, token, operator, os.getpid(), socket.gethostname())
        self.store.update_change(cid, state=f"stage{stage}_running" if stage != "rollback" else "rollback_running")
        self.log(cid, operator).record("stage_started", stage=stage, ident=ident, playbook=str(playbook),
                                       name=STAGE_NAMES[stage])
        self.say(f"{cid}: stage {stage} ({STAGE_NAMES[stage]}) started, run {ident}")
        old = {s: signal.signal(s, self._cancel_handler) for s in (signal.SIGTERM, signal.SIGINT)}
        self._cancel = False
        started = time.time()
        try:
            result = run_stage(
                stage=stage, playbook=playbook, private_data_dir=self.store.runner_dir(cid),
                inventory=change["inventory"], change_id=cid, cr=change["cr"],
                evidence_dir=self.store.evidence_dir(cid), audit_dir=self.store.audit_dir(cid), operator=operator,
                token=token, ident=ident, progress=Progress(stage, self.out, "json" if self.json_mode else None),
                cancel=lambda: self._cancel,
                signing_key=str(self.cfg.audit_signing_key) if self.cfg.audit_signing_key else None,
                backup_record_key=str(backup_record_key_file(self.store.home)))
        except Exception as exc:
            self.store.finish_stage_run(run_row, "failed", message=f"runner error: {exc}")
            self.log(cid, operator).record("stage_result", stage=stage, ident=ident, status="error", error=str(exc))
            raise
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        took = round(time.time() - started, 2)
        if result.status == "successful" and result.summary is None:
            result.failures.append(f"the playbook did not report its summary itsop_stage{stage} (set_stats)")
            result.status = "failed"
        status = {"successful": "succeeded", "canceled": "interrupted"}.get(result.status, "failed")
        self.store.finish_stage_run(run_row, status, summary=result.summary,
                                    message="; ".join(result.failures)[:2000] or None)
        self.log(cid, operator).record("stage_result", stage=stage, ident=ident, status=status, rc=result.rc,
                                       runner_status=result.status, summary=result.summary,
                                       failures=result.failures[:50], duration=took, stats=result.stats)
        rolled_back = self._stage5_incidents(change, operator, result) if stage == "5" else False
        if status != "succeeded":
            self.store.update_change(cid, state="rolled_back" if rolled_back else f"stage{stage}_{status}")
            text = f"{cid}: stage {stage} {status} (run {ident}): " + ("; ".join(result.failures[:5]) or result.status)
            self.notify("stage_failed", change, text, stage=stage)
            if rolled_back:
                text += ("; every production host was rolled back automatically (Tahap 5.3): the change is "
                         "rolled_back")
            raise StageFailed(text)
        self.store.update_change(cid, state=f"stage{stage}_done")
        self.say(f"{cid}: stage {stage} succeeded in {took} s (evidence {self.store.evidence_dir(cid)}/stage{stage})")
        return result

    def _stage5_incidents(self, change: dict[str, Any], operator: str, result: RunResult) -> bool:
        """Record the incidents of a stage 5 run (from ``stage5/incidents.json``, else the summary).

        Returns True when monitoring rolled back *every* production host successfully: the change
        is then ``rolled_back`` (recorded as ``change_rolled_back`` by the automatic rollback).
        """
        cid = change["id"]
        path = self.store.evidence_dir(cid) / "stage5" / "incidents.json"
        doc, _problem = read_json_file(path)
        incidents = [i for i in doc.get("incidents") or [] if isinstance(i, dict)] if isinstance(doc, dict) else []
        summary = (result.summary or {}).get("incidents")
        count = len(incidents) or (len(summary) if isinstance(summary, list) else int(summary or 0))
        if not count:
            return False
        brief = [{"id": i.get("id"), "host": i.get("host"), "what": str(i.get("what") or "")[:300],
                  "rollback": (i.get("rollback") or {}).get("succeeded") if isinstance(i.get("rollback"), dict)
                  else None} for i in incidents]
        self.log(cid, operator).record("incident", stage="5", count=count, incidents=brief, evidence=str(path))
        self.notify("incident", change, f"{cid}: {count} incident(s) raised during monitoring", count=count)
        rolled = {b["host"] for b in brief if b["rollback"] is True}
        production = set(change["targets"].get("production", []))
        if not production or not production <= rolled or any(b["rollback"] is False for b in brief):
            return False
        self.log(cid, operator).record("change_rolled_back", by="monitoring", hosts=sorted(rolled),
                                       note="automatic rollback after incidents in the monitoring period (Tahap 5.3)")
        self.say(f"{cid}: incident(s) {', '.join(str(b['id']) for b in brief)}: monitoring rolled back "
                 f"{', '.join(sorted(rolled))} automatically")
        return True

    def _close(self, change: dict[str, Any], operator: str) -> int:
        cid = change["id"]
        for hook in CLOSE_HOOKS:
            hook(self, change)
        self.store.update_change(cid, state="closed")
        self.log(cid, operator).record("change_closed", hooks=[getattr(h, "__name__", str(h)) for h in CLOSE_HOOKS],
                                       note="stage 6 = IT manager closing approval; report/archive hooks run here")
        text = f"{cid}: closed (Tahap 6: IT manager's closing approval recorded)"
        self.say(text)
        self.notify("change_completed", change, text)
        return EXIT_OK

    # ------------------------------------------------------------------ rollback
    def rollback(self, change_id: str) -> int:
        operator = None
        lock_fd = None
        try:
            change = self.change(change_id)
            ident = self.identity()
            operator = ident.id
            check_may_run(self.roster, operator)
            lock_fd = self._lock(change_id)
            self._recover(change, operator)
            if change["state"] in TERMINAL:
                raise Refusal("STATE-1", f"{change_id} is {change['state']}")
            if not any(r["stage"] == "3" and r["status"] != "superseded" for r in self.store.stage_runs(change_id)):
                raise Refusal("STATE-2", f"stage 3 of {change_id} never started: nothing to roll back")
            self._run_stage(change, "rollback", operator)
            self.store.update_change(change_id, state="rolled_back")
            self.log(change_id, operator).record("change_rolled_back")
            self.notify("incident", change, f"{change_id}: rolled back")
            return EXIT_OK
        except Refusal as exc:
            self.refusal(change_id, exc, "rollback", operator)
            raise
        finally:
            if lock_fd is not None:
                os.close(lock_fd)

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
            if any(r["stage"] == "3" and r["status"] != "superseded" for r in self.store.stage_runs(change_id)):
                raise Refusal("STATE-3", f"stage 3 of {change_id} has started and may have changed production: "
                                         f"use 'sopctl rollback {change_id}' instead of cancel")
            lock_fd = self._lock(change_id)
            try:
                previous = change["state"]
                self.store.update_change(change_id, state="cancelled")
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
                steps.append({"step": f"stage {name}", "name": STAGE_NAMES[name], "status": st,
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


def _window(cr: dict[str, Any]) -> tuple[datetime, datetime]:
    w = cr["window"]
    return (parse_time(w.get("start_utc") or w["start"], "window.start"),
            parse_time(w.get("end_utc") or w["end"], "window.end"))
