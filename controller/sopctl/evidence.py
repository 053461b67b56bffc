"""The one reader of evidence documents, for the gates and the report alike.

Every evidence file carries the envelope of ``module_utils/_evidence/envelope.py`` (``kind``,
``version``, ``change_id``, ``host``, ``passed``, ``reasons``; JSON Schemas under
``schemas/evidence/``). :func:`load` reads one file the safe way (:func:`sopctl.store.read_json_file`:
no FIFO, bounded size, duplicate keys refused) and checks its envelope against what the reader
expects (kind, change, host) and against its JSON Schema. A document that breaks the contract
does not count as passed: its problems are the reasons. Nothing else in the controller decides whether evidence passed.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .collection import ensure_importable
from .store import read_json_file

ensure_importable()
from ansible_collections.itsop.change.plugins.module_utils._evidence import envelope  # noqa: E402

KINDS = envelope.KINDS
#: how many schema errors a problem line names (the first ones by position in the document)
SCHEMA_ERRORS_SHOWN = 3


def schema_dir() -> Path:
    """``schemas/evidence/`` of the collection sopctl uses (shipped in the collection artifact)."""
    return ensure_importable() / "schemas" / "evidence"


@functools.cache
def _schemas() -> dict[str, dict[str, Any]]:
    """Every schema of ``schemas/evidence/`` by file name, read once per process."""
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(schema_dir().glob("*.v1.json"))}


@functools.cache
def validator(kind: str):
    """The JSON Schema validator of ``kind`` (``<kind>.v1.json`` with the envelope it refers to)."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    docs = _schemas()
    if f"{kind}.v1.json" not in docs:
        raise FileNotFoundError(f"no JSON Schema for evidence kind {kind!r} in {schema_dir()}")
    registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs.values())
    return Draft202012Validator(docs[f"{kind}.v1.json"], registry=registry)


def schema_problems(doc: Any, kind: str) -> list[str]:
    """Where ``doc`` breaks the schema of ``kind`` (empty: valid)."""
    errors = sorted(validator(kind).iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    out = [f"at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:200]}" for e in errors[:SCHEMA_ERRORS_SHOWN]]
    if len(errors) > SCHEMA_ERRORS_SHOWN:
        out.append(f"and {len(errors) - SCHEMA_ERRORS_SHOWN} more schema error(s)")
    return out


@dataclass(frozen=True)
class Evidence:
    """One evidence file as read: ``doc`` is None when it is missing or unreadable."""

    path: Path
    doc: dict[str, Any] | None
    passed: bool
    reasons: list[str] = field(default_factory=list)
    #: the file does not exist (then ``passed`` is False and ``reasons`` empty)
    missing: bool = False
    #: why the file is not valid evidence (unreadable, no envelope, another change's ...)
    invalid: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str | None:
        """``passed`` / ``failed`` for the report; None when there is no document."""
        if self.missing:
            return None
        return "passed" if self.passed else "failed"

    @property
    def body(self) -> dict[str, Any]:
        return self.doc if isinstance(self.doc, dict) else {}


def load(path: Path, kind: str, change_id: str | None = None, host: str | None = None) -> Evidence:
    """Read ``path`` as evidence of ``kind`` (of ``change_id`` and ``host`` when given)."""
    if kind not in KINDS:
        raise ValueError(f"unknown evidence kind {kind!r}")
    doc, unreadable = read_json_file(path)
    if unreadable:
        return Evidence(path, None, False, [unreadable], invalid=[unreadable])
    if doc is None:
        return Evidence(path, None, False, missing=True)
    invalid = envelope.problems(doc, kind=kind, change_id=change_id, host=host) or schema_problems(doc, kind)
    if invalid:
        return Evidence(path, doc if isinstance(doc, dict) else None, False,
                        [f"{path.name}: {p}" for p in invalid], invalid=invalid)
    return Evidence(path, doc, doc["passed"], list(doc["reasons"]))
