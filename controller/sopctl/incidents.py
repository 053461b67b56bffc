"""The incidents of a stage 5 run (Tahap 5.3), read from ``stage5/incidents.json`` or the summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import evidence
from .store import Store


@dataclass
class Incidents:
    path: Path
    count: int
    brief: list[dict[str, Any]]
    #: production hosts that monitoring rolled back successfully
    rolled: set[str]
    #: every production host was rolled back and no rollback failed: the change is rolled_back
    all_rolled_back: bool


def read_incidents(store: Store, change: dict[str, Any], summary: dict[str, Any] | None) -> Incidents:
    path = store.evidence_dir(change["id"]) / "stage5" / "incidents.json"
    doc = evidence.load(path, "incidents", change_id=change["id"])
    # a file that breaks the contract (another change's, no envelope) counts no incident of its
    # own; the run's summary still gives the count
    incidents = [] if doc.invalid else [i for i in doc.body.get("incidents") or [] if isinstance(i, dict)]
    counted = (summary or {}).get("incidents")
    count = len(incidents) or (len(counted) if isinstance(counted, list) else int(counted or 0))
    brief = [{"id": i.get("id"), "host": i.get("host"), "what": str(i.get("what") or "")[:300],
              "rollback": (i.get("rollback") or {}).get("succeeded") if isinstance(i.get("rollback"), dict)
              else None} for i in incidents]
    rolled = {b["host"] for b in brief if b["rollback"] is True}
    production = set(change["targets"].get("production", []))
    all_back = bool(count) and bool(production) and production <= rolled \
        and not any(b["rollback"] is False for b in brief)
    return Incidents(path, count, brief, rolled, all_back)
