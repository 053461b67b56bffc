"""Registering a change (``sopctl submit``), reloading it when its file or targets changed, and
finding conflicts with other open changes (same hosts, overlapping windows).

Dependencies are passed in: the store, the roster and the freeze calendar (as loaders, so their
errors come in the order the checks need them), the configuration and the change's audit log
(``log(change_id, operator)``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from . import approvals as ap
from .changelog import ChangeLog
from .changes import load_cr, resolve_targets
from .config import Config
from .errors import Refusal, SopctlError
from .gates import production_runs
from .policy import Freeze, Roster, freezes_overlapping, overlaps, parse_time
from .state import TERMINAL
from .store import Store, atomic_write

LogFor = Callable[..., ChangeLog]


def window(cr: dict[str, Any]) -> tuple[datetime, datetime]:
    w = cr["window"]
    return (parse_time(w.get("start_utc") or w["start"], "window.start"),
            parse_time(w.get("end_utc") or w["end"], "window.end"))


def conflicts(store: Store, cr: dict[str, Any], targets: dict[str, list[str]], exclude: str | None = None
              ) -> list[dict[str, Any]]:
    """Open changes (not terminal) touching one of ``targets`` in a window overlapping ``cr``'s."""
    start, end = window(cr)
    hosts = {h for hs in targets.values() for h in hs}
    out = []
    for other in store.list_changes():
        if other["id"] == exclude or other["state"] in TERMINAL:
            continue
        o_hosts = {h for hs in other["targets"].values() for h in hs}
        common = hosts & o_hosts
        o_start, o_end = parse_time(other["window_start"], "window"), parse_time(other["window_end"], "window")
        if common and overlaps(start, end, o_start, o_end):
            out.append({"change_id": other["id"], "hosts": sorted(common), "created": other["created"],
                        "window": f"{other['window_start']} .. {other['window_end']}"})
    return out


def submit(store: Store, roster_of: Callable[[], Roster], cfg: Config, freezes_of: Callable[[], list[Freeze]],
           log: LogFor, cr_path: Path,
           inventory: Path | None, operator: str | None, allow_conflict: bool = False,
           submitted_by: str | None = None) -> dict[str, Any]:
    cr = load_cr(cr_path)
    inv = inventory or cfg.inventory
    if not inv:
        raise SopctlError(f"no inventory: pass --inventory or set 'inventory:' in {cfg.path}")
    inv = Path(inv).resolve()
    roster = roster_of()  # loaded here, after the change request: its errors come first
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
    found = conflicts(store, cr, targets)
    if store.get_change(cr["id"]):
        raise SopctlError(f"change {cr['id']} is already submitted; edit its file {cr_path} and 'sopctl run' "
                          "it (approvals are voided), or use a new id")
    if found and not allow_conflict:
        desc = "; ".join(f"{c['change_id']} on {', '.join(c['hosts'])} ({c['window']})" for c in found)
        raise Refusal("CONFLICT-1", f"{cr['id']} touches the same hosts in an overlapping window as {desc}")
    start, end = window(cr)
    store.insert_change({
        "id": cr["id"], "title": cr["title"], "requester": cr["requester"], "cr_path": str(cr_path.resolve()),
        "cr": cr, "cr_digest": ap.cr_digest(cr), "inventory": str(inv), "targets": targets,
        "window_start": start.isoformat(), "window_end": end.isoformat(),
        "submitted_by": submitted_by or operator or "?",
    })
    store.evidence_dir(cr["id"])
    atomic_write(store.change_dir(cr["id"]) / "change_request.json", json.dumps(cr, indent=2, sort_keys=True))
    warnings = [f"freeze period '{f.name}' overlaps the window" for f in freezes_overlapping(freezes_of(), start, end)]
    warnings += [f"conflict (CONFLICT-1, allowed by --allow-conflict): {c['change_id']} on "
                 f"{', '.join(c['hosts'])}" for c in found]
    log(cr["id"], operator).record("change_submitted", cr_digest=ap.cr_digest(cr), cr_path=str(cr_path),
                                   inventory=str(inv), targets=targets, warnings=warnings,
                                   requester=cr["requester"], title=cr["title"])
    return {"change_id": cr["id"], "targets": targets, "warnings": warnings}


def refresh(store: Store, log: LogFor, say: Callable[[str], None], change: dict[str, Any],
            operator: str | None) -> bool:
    """Reload the change request and targets of ``change``; True when they changed (approvals are
    then void and the stage runs superseded)."""
    cr = load_cr(change["cr_path"])
    if cr["id"] != change["id"]:
        raise Refusal("CR-2", f"{change['cr_path']} now holds change {cr['id']}, not {change['id']}")
    targets = resolve_targets(change["inventory"], cr)
    digest = ap.cr_digest(cr)
    if digest == change["cr_digest"] and targets == change["targets"]:
        return False
    started3 = production_runs(store, change["id"])
    what = "change request" if digest != change["cr_digest"] else "target hosts"
    if started3:
        raise Refusal("CR-2", f"the {what} of {change['id']} changed after stage 3 started; "
                              "the change can only be rolled back or closed — submit a new change")
    start, end = window(cr)
    store.update_change(change["id"], cr=cr, cr_digest=digest, targets=targets,
                        window_start=start.isoformat(), window_end=end.isoformat(), title=cr["title"])
    store.supersede_stage_runs(change["id"])
    atomic_write(store.change_dir(change["id"]) / "change_request.json", json.dumps(cr, indent=2, sort_keys=True))
    log(change["id"], operator).record(
        "change_request_changed", what=what, old_cr_digest=change["cr_digest"], new_cr_digest=digest,
        old_targets=change["targets"], new_targets=targets,
        effect="earlier approvals are void; stages 1 and 2 run again")
    say(f"{change['id']}: the {what} changed since it was loaded: earlier approvals are void and the "
        "stages from 1 run again")
    return True


def file_changed(change: dict[str, Any]) -> bool:
    try:
        return ap.cr_digest(load_cr(change["cr_path"])) != change["cr_digest"]
    except SopctlError:
        return True
