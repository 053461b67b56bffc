"""The state of a change: one enum, its allowed transitions, and the one function that writes it.

The values are the strings the store has always held (``stage2_running``, ``waiting_gate_plan``,
``rejected_at_signoff``, ...; a failed rollback run is ``stagerollback_failed``), so existing
stores read unchanged. :func:`set_state` is the only writer of a change's state in the engine: an
illegal transition is a programming error and raises :class:`~sopctl.errors.IllegalTransition`
(exit 70), never a silent overwrite.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from .errors import IllegalTransition
from .stage_table import PEOPLE_GATES, PLAYBOOK_STAGES, ROLLBACK

_RUN_RESULTS = ("done", "failed", "interrupted")


def _members() -> dict[str, str]:
    names = {"SUBMITTED": "submitted", "CLOSED": "closed", "ROLLED_BACK": "rolled_back", "CANCELLED": "cancelled",
             "ROLLBACK_RUNNING": "rollback_running"}
    for n in (*PLAYBOOK_STAGES, ROLLBACK.number):
        if n != ROLLBACK.number:
            names[f"STAGE{n}_RUNNING"] = f"stage{n}_running"
        for r in _RUN_RESULTS:
            names[f"STAGE{n}_{r}".upper()] = f"stage{n}_{r}"
    for g in PEOPLE_GATES:
        names[f"WAITING_GATE_{g}".upper()] = f"waiting_gate_{g}"
        names[f"REJECTED_AT_{g}".upper()] = f"rejected_at_{g}"
    return names


#: every state a change can be in (values: the strings in the store)
ChangeState = StrEnum("ChangeState", _members())  # type: ignore[misc]

TERMINAL: frozenset[ChangeState] = frozenset({ChangeState.CLOSED, ChangeState.ROLLED_BACK, ChangeState.CANCELLED})


def running(stage: str) -> ChangeState:
    """The state while ``stage`` (``1``..``5`` or ``rollback``) runs."""
    return ChangeState("rollback_running" if stage == ROLLBACK.number else f"stage{stage}_running")


def finished(stage: str, status: str) -> ChangeState:
    """The state after a run of ``stage`` ended (``status``: succeeded, failed, interrupted)."""
    return ChangeState(f"stage{stage}_{'done' if status == 'succeeded' else status}")


def waiting(gate: str) -> ChangeState:
    return ChangeState(f"waiting_gate_{gate}")


def rejected(gate: str) -> ChangeState:
    return ChangeState(f"rejected_at_{gate}")


def _run_of(state: ChangeState) -> tuple[str, str] | None:
    """``(stage, result)`` for a run state (``stage3_done`` -> ``("3", "done")``)."""
    value = state.value
    if value == "rollback_running":
        return ROLLBACK.number, "running"
    if value.startswith("stage"):
        stage, _, result = value[len("stage"):].partition("_")
        return stage, result
    return None


def allowed(old: ChangeState, new: ChangeState) -> bool:
    """Whether a change may go from ``old`` to ``new``.

    Nothing leaves a terminal state. A run result (``stageN_done|failed|interrupted``) follows only
    the run of the same stage; ``rolled_back`` follows the stage 5 run (monitoring rolled every host
    back) or a finished rollback run. Every other state (a run starting, again after a crash; a
    gate waiting or rejected; closed; cancelled) may follow any state that is not terminal: which
    one is decided by the rules of the engine, the gates and the policy.
    """
    if old in TERMINAL:
        return False
    new_run = _run_of(new)
    if new_run and new_run[1] != "running":
        return _run_of(old) == (new_run[0], "running")
    if new is ChangeState.ROLLED_BACK:
        return old in (ChangeState.STAGE5_RUNNING, ChangeState.STAGEROLLBACK_DONE)
    return True


def current(store: Any, change_id: str) -> ChangeState:
    row = store.get_change(change_id)
    return ChangeState(row["state"])


def set_state(store: Any, change_id: str, new: ChangeState) -> ChangeState:
    """Move ``change_id`` to ``new`` after checking the transition (the one writer of the state)."""
    old = current(store, change_id)
    if not allowed(old, new):
        raise IllegalTransition(f"change {change_id}: illegal state transition {old.value} -> {new.value}")
    store.update_change(change_id, state=new.value)
    return new
