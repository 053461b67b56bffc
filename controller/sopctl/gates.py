"""The gates of a change: people gates (signed approvals, quorum, binding) and the evidence gate.

A people gate (``plan``, ``signoff``, ``close``; :data:`sopctl.stage_table.GATE_AFTER`) opens when
the stage before it succeeded and the stage 1 plan exists. A decision counts when its signature
verifies against the roster and it is *bound* to the current change request, plan and targets
(:func:`binding`, the one place that computes it; the report uses it too); a change of any of them
voids earlier decisions. The evidence gate before stage 3 reads the stage 2 evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import approvals as ap
from . import evidence
from .changes import target_list
from .errors import Refusal
from .policy import DEFAULT_QUORUM, Roster
from .stage_table import GATE_AFTER, PRODUCTION_STAGE
from .store import Store


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


def plan_file(store: Store, change_id: str) -> Path:
    return store.evidence_dir(change_id) / "stage1" / "plan.json"


def binding(store: Store, change: dict[str, Any], gate: str) -> str | None:
    """What a decision at ``gate`` is bound to now (change request, plan, targets); None before the plan."""
    plan = ap.file_digest(plan_file(store, change["id"]))
    if plan is None:
        return None
    return ap.binding_digest(change["id"], gate, change["cr_digest"], plan, target_list(change["targets"]))


def succeeded(store: Store, change_id: str) -> dict[str, dict[str, Any]]:
    """Stage number -> its (last) succeeded run."""
    return {r["stage"]: r for r in store.stage_runs(change_id) if r["status"] == "succeeded"}


def production_runs(store: Store, change_id: str) -> list[dict[str, Any]]:
    """The runs of the stage that changes production (stage 3) that count (not superseded)."""
    return [r for r in store.stage_runs(change_id) if r["stage"] == PRODUCTION_STAGE and r["status"] != "superseded"]


def gate_state(store: Store, roster: Roster, change: dict[str, Any], gate: str) -> GateState:
    done = succeeded(store, change["id"])
    bound = binding(store, change, gate)
    is_open = GATE_AFTER[gate] in done and bound is not None
    counted: dict[str, list[str]] = {}
    rejected, void, tampered = [], [], []
    for row in store.approvals(change["id"], gate):
        pem = roster.people[row["person"]].public_key_pem if row["person"] in roster.people else None
        if not ap.verify_decision(row, pem):
            tampered.append(row)
            continue
        if row["binding"] != bound:
            void.append(row)
            continue
        if row["decision"] == "reject":
            rejected.append(row)
        elif row["person"] not in counted.setdefault(row["role"], []):
            counted[row["role"]].append(row["person"])
    quorum = roster.quorum.get(gate, DEFAULT_QUORUM[gate])
    missing = {r: n - len(counted.get(r, [])) for r, n in quorum.items() if len(counted.get(r, [])) < n}
    return GateState(gate, is_open, bound, counted, missing, rejected, void, tampered)


def unverified_refusal(roster: Roster, state: GateState, gate: str, suffix: str = "") -> Refusal:
    """SIG-1 naming why each stored decision does not verify: a tampered one apart from one whose
    signer is no longer in the roster (or whose roster key was replaced)."""
    from .approvals import SIG_INVALID, check_decision

    tampered, unverifiable = [], []
    for row in state.tampered:
        person = roster.people.get(row["person"])
        status, reason = check_decision(row, person is not None, person.public_key_pem if person else None)
        (tampered if status == SIG_INVALID else unverifiable).append((row["person"], reason))
    parts = []
    if tampered:
        parts.append("stored decision(s) of " + ", ".join(p for p, _ in tampered)
                     + f" at gate {gate} fail signature verification (tampered)")
    parts.extend(f"the decision of {p} at gate {gate} cannot be verified: {reason}" for p, reason in unverifiable)
    return Refusal("SIG-1", "; ".join(parts) + suffix)


def evidence_problems(store: Store, change: dict[str, Any]) -> list[str]:
    """What keeps the evidence gate before stage 3 closed (empty: satisfied)."""
    ev = store.evidence_dir(change["id"]) / "stage2"
    problems = []

    def check(path: Path, kind: str, host: str | None, missing: str | None, failed: str) -> None:
        doc = evidence.load(path, kind, change_id=change["id"], host=host)
        if doc.missing:
            if missing:
                problems.append(f"{missing} ({path})")
        elif not doc.passed:
            problems.append(f"{failed}: {'; '.join(doc.reasons)} ({path})")

    for host in change["targets"].get("production", []):
        check(ev / "backup" / host / "checklist.json", "backup", host,
              f"no backup checklist for production host {host}", f"backup checklist of {host} is not complete")
    check(ev / "artifacts" / "verification.json", "artifacts", None,
          "no artifact verification record" if (change["cr"].get("items") or {}).get("artifacts") else None,
          "artifact verification did not pass")
    check(ev / "staging.json", "staging", None, "no staging run verdict", "the staging run did not pass")
    return problems
