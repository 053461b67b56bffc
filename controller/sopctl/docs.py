"""The tables of ``docs/sop.md`` and ``docs/architecture.md``, generated from the stage table.

Each generated table sits between two markers in its document::

    <!-- BEGIN generated: python -m sopctl.docs (sop-map) -->
    ...
    <!-- END generated (sop-map) -->

``python -m sopctl.docs`` rewrites the tables in place, ``python -m sopctl.docs --check`` exits 1
naming each table that disagrees with :mod:`sopctl.stage_table` (a unit test runs the check).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from .stage_table import CROSS_STAGE_EVIDENCE, EVIDENCE_GATE, STAGES, Stage

REPO = Path(__file__).resolve().parents[2]


def _code(items: tuple[str, ...] | list[str], prefix: str = "") -> str:
    return ", ".join(f"`{prefix}{i}`" for i in items) or "—"


def _gate(s: Stage) -> str:
    if s.gate_after == EVIDENCE_GATE:
        return "evidence gate (before stage 3)"
    if s.gate_after:
        return f"gate `{s.gate_after}` (signed approvals)"
    return "—"


def sop_map() -> str:
    """One row per SOP step: playbook, roles, modules, evidence, gate after the stage, command."""
    rows = ["| SOP step | playbook | roles | modules | evidence | gate after the stage | sopctl command |",
            "|---|---|---|---|---|---|---|"]
    for s in STAGES:
        rows.append(f"| **Tahap {s.number} — {s.name_id}** ({s.name_en}) | "
                    f"{_code([f'playbooks/{s.playbook}']) if s.playbook else 'stage 6 hooks (`sopctl.stage6`)'}"
                    f" | | | | {_gate(s)} | |")
        for step in s.steps:
            rows.append(f"| {step.number} {step.text} | | {_code(step.roles, 'itsop.change.')} | "
                        f"{_code(step.modules, 'itsop.change.')} | {_code(step.evidence)} | | "
                        f"{_code(step.command.split(', '))} |")
    return "\n".join(rows)


def evidence_kinds() -> str:
    """Every evidence kind: the SOP step it proves and where it comes from."""
    rows = ["| evidence | SOP step | source |", "|---|---|---|"]
    for e in (*(e for s in STAGES for e in s.evidence), *CROSS_STAGE_EVIDENCE):
        rows.append(f"| `{e.kind}` | {e.sop_step} | {e.source} |")
    return "\n".join(rows)


def stage_files() -> str:
    """The evidence files of each stage and the gate that reads them (docs/architecture.md)."""
    rows = ["| stage | name | playbook | files (per host where it applies) | gate reading it |",
            "|---|---|---|---|---|"]
    for s in STAGES:
        rows.append(f"| {s.number} | {s.title} | {f'`{s.playbook}`' if s.playbook else '—'} | {s.files} | "
                    f"{s.read_by} |")
    return "\n".join(rows)


#: (document, table name) -> generator
TABLES: dict[tuple[str, str], Callable[[], str]] = {
    ("docs/sop.md", "sop-map"): sop_map,
    ("docs/sop.md", "evidence-kinds"): evidence_kinds,
    ("docs/architecture.md", "stage-files"): stage_files,
}


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- BEGIN generated: python -m sopctl\.docs \({re.escape(name)}\) -->\n)"
                      rf"(.*?)(<!-- END generated \({re.escape(name)}\) -->)", re.S)


def render(text: str, name: str, table: str) -> str:
    """``text`` with the table ``name`` replaced; ValueError when its markers are missing."""
    pattern = _pattern(name)
    if not pattern.search(text):
        raise ValueError(f"no markers for the generated table {name}")
    return pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(3), text, count=1)


def check(repo: Path = REPO) -> list[str]:
    """The tables that disagree with the stage table (empty: all agree)."""
    out = []
    for (doc, name), make in TABLES.items():
        text = (repo / doc).read_text(encoding="utf-8")
        try:
            if render(text, name, make()) != text:
                out.append(f"{doc}: table {name} differs from the stage table (run: python -m sopctl.docs)")
        except ValueError as exc:
            out.append(f"{doc}: {exc}")
    return out


def write(repo: Path = REPO) -> list[str]:
    changed = []
    for (doc, name), make in TABLES.items():
        path = repo / doc
        text = path.read_text(encoding="utf-8")
        new = render(text, name, make())
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(f"{doc} ({name})")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopctl.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when a table differs")
    parser.add_argument("--repo", type=Path, default=REPO)
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.repo)
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    for c in write(args.repo):
        print(f"rewrote {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
