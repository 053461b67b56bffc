"""The public Python API of sopctl, in the manner of ansible-runner's ``interface.py``.

Each function does one command's work and returns its result (a dict, text or an exit code); it
prints nothing but the engine's progress lines (to ``out``). Errors are :mod:`sopctl.errors`
exceptions, each with its exit code. The command line (:mod:`sopctl.commands`,
:mod:`sopctl.report_cmd`) parses arguments, calls these and formats the results::

    from sopctl import api
    from sopctl.approvals import Actor

    me = Actor(Path("~/.config/sopctl/identity.yml").expanduser())
    api.submit(Path("CHG-2026-0042.yml"), actor=me)
    api.run("CHG-2026-0042", actor=me)               # 0: done or waiting at a gate
    api.decide("CHG-2026-0042", "plan", "approve", actor=Actor(Path("sari/identity.yml")))
    api.status("CHG-2026-0042")["next"]
    api.report("CHG-2026-0042", fmt="html", lang="en")
    api.archive("CHG-2026-0042")

Dependencies are explicit: ``store`` (default: the store under ``SOPCTL_HOME``), ``actor`` (who
acts; default: the identity ``SOPCTL_IDENTITY`` names), ``clock`` (default: the system clock),
``close_hooks`` (default: :data:`sopctl.stage6.CLOSE_HOOKS`, the report and the archive); or one
``engine`` built with :func:`engine` for several calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from .approvals import Actor
from .engine import CloseHook, Engine
from .store import Store

__all__ = ["archive", "cancel", "decide", "engine", "report", "rollback", "run", "status", "submit"]


def engine(*, store: Store | None = None, out: TextIO | None = None, json_mode: bool = False,
           actor: Actor | None = None, clock: Callable[[], datetime] | None = None,
           close_hooks: Sequence[CloseHook] | None = None, engine: Engine | None = None) -> Engine:
    """An :class:`~sopctl.engine.Engine` with these dependencies (the defaults for the rest), or
    ``engine`` itself when given (several calls sharing one engine, as the command line does)."""
    if engine is not None:
        return engine
    extra: dict[str, Any] = {}
    if clock is not None:
        extra["clock"] = clock
    if close_hooks is not None:
        extra["close_hooks"] = close_hooks
    return Engine(store, out=out, json_mode=json_mode, actor=actor or Actor.from_environment(), **extra)


def submit(cr_path: Path, inventory: Path | None = None, *, operator: str | None = None,
           submitted_by: str | None = None, allow_conflict: bool = False, **deps: Any) -> dict[str, Any]:
    """Validate and register a change request: ``{"change_id", "targets", "warnings"}``."""
    return engine(**deps).submit(Path(cr_path), inventory, operator, allow_conflict, submitted_by)


def run(change_id: str, until: str | None = None, **deps: Any) -> int:
    """Advance a change as far as its gates allow; 0 when done or waiting at a people gate."""
    return engine(**deps).run(change_id, until)


def decide(change_id: str, gate: str, decision: str, comment: str = "", role: str | None = None,
           **deps: Any) -> dict[str, Any]:
    """Sign and store a decision (``approve`` or ``reject``) at a people gate."""
    return engine(**deps).decide(change_id, gate, decision, comment, role)


def status(change_id: str, **deps: Any) -> dict[str, Any]:
    """Where a change stands: its state, every step with its status, the next step."""
    return engine(**deps).status(change_id)


def report(change_id: str, fmt: str = "md", lang: str = "id", **deps: Any) -> str:
    """The change report (laporan) as text: ``fmt`` html, md or json; ``lang`` id or en."""
    from . import report as rp

    return rp.render(rp.collect(engine(**deps), change_id), fmt, lang)


def archive(change_id: str, output: Path | None = None, **deps: Any) -> dict[str, Any]:
    """Write the signed audit archive and record it in the change's audit log."""
    from .archive import build_archive
    from .stage6 import record_archive

    eng = engine(**deps)
    eng.change(change_id)
    res = build_archive(eng, change_id, output)
    record_archive(eng, change_id, res)
    return res


def rollback(change_id: str, **deps: Any) -> int:
    """Run the rollback playbook of a change whose stage 3 started."""
    return engine(**deps).rollback(change_id)


def cancel(change_id: str, reason: str, **deps: Any) -> dict[str, Any]:
    """Withdraw a change before stage 3 (its requester or an IT manager)."""
    return engine(**deps).cancel(change_id, reason)
