"""The words of the report that come from records rather than from labels: statuses, verdicts,
event names and the details of the timeline, in Indonesian and English (issue 17: every string a
reader sees is translated). A word with no translation is shown as it is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

TERMS: dict[str, dict[str, str]] = {
    # stage runs, checks, verdicts
    "succeeded": {"id": "berhasil", "en": "succeeded"}, "failed": {"id": "gagal", "en": "failed"},
    "passed": {"id": "lulus", "en": "passed"}, "pass": {"id": "lulus", "en": "pass"},
    "fail": {"id": "gagal", "en": "fail"}, "running": {"id": "berjalan", "en": "running"},
    "superseded": {"id": "digantikan", "en": "superseded"}, "interrupted": {"id": "terputus", "en": "interrupted"},
    "skipped": {"id": "dilewati", "en": "skipped"}, "not_requested": {"id": "tidak diminta", "en": "not requested"},
    "not_needed": {"id": "tidak perlu", "en": "not needed"}, "not_run": {"id": "tidak dijalankan", "en": "not run"},
    "failed_rolled_back": {"id": "gagal, di-rollback", "en": "failed, rolled back"},
    # change states and gate decisions
    "submitted": {"id": "diajukan", "en": "submitted"}, "approved": {"id": "disetujui", "en": "approved"},
    "rejected": {"id": "ditolak", "en": "rejected"}, "closed": {"id": "ditutup", "en": "closed"},
    "cancelled": {"id": "dibatalkan", "en": "cancelled"}, "rolled_back": {"id": "di-rollback", "en": "rolled back"},
    "approve": {"id": "setuju", "en": "approve"}, "reject": {"id": "tolak", "en": "reject"},
    "satisfied": {"id": "terpenuhi", "en": "satisfied"}, "refused": {"id": "ditolak", "en": "refused"},
    "planned": {"id": "direncanakan", "en": "planned"}, "in_progress": {"id": "berlangsung", "en": "in progress"},
    # audit-log signatures
    "verified": {"id": "terverifikasi", "en": "verified"},
    "unsigned": {"id": "tidak ditandatangani", "en": "unsigned"},
    "not_checked": {"id": "tidak diperiksa", "en": "not checked"}, "invalid": {"id": "TIDAK SAH", "en": "INVALID"},
    # events of the controller's audit log
    "change_submitted": {"id": "perubahan diajukan", "en": "change submitted"},
    "change_request_changed": {"id": "permintaan perubahan diubah", "en": "change request changed"},
    "stage_started": {"id": "tahap dimulai", "en": "stage started"},
    "stage_result": {"id": "hasil tahap", "en": "stage result"},
    "stage_interrupted": {"id": "tahap terputus", "en": "stage interrupted"},
    "gate_waiting": {"id": "gerbang menunggu", "en": "gate waiting"},
    "gate_decision": {"id": "keputusan gerbang", "en": "gate decision"},
    "approval": {"id": "persetujuan", "en": "approval"}, "rejection": {"id": "penolakan", "en": "rejection"},
    "refusal": {"id": "ditolak oleh aturan", "en": "refused by a rule"},
    "done": {"id": "selesai", "en": "done"},
    "incident": {"id": "insiden", "en": "incident"},
    "change_closed": {"id": "perubahan ditutup", "en": "change closed"},
    "change_rolled_back": {"id": "perubahan di-rollback", "en": "change rolled back"},
    "change_cancelled": {"id": "perubahan dibatalkan", "en": "change cancelled"},
    "stage6_reports": {"id": "laporan tahap 6", "en": "stage 6 reports"},
    "archive_written": {"id": "arsip ditulis", "en": "archive written"},
}

PHRASES: dict[str, dict[str, str]] = {
    "stage": {"id": "tahap {stage}", "en": "stage {stage}"},
    "gate": {"id": "gerbang {gate}", "en": "gate {gate}"},
    "missing": {"id": "; kurang {missing}", "en": "; missing {missing}"},
    "as_role": {"id": "gerbang {gate}: {person} sebagai {role}", "en": "gate {gate}: {person} as {role}"},
    "incidents": {"id": "tahap {stage}: {count} insiden", "en": "stage {stage}: {count} incident(s)"},
    "archive": {"id": "{name}: {files} berkas, retensi {retention}",
                "en": "{name}: {files} files, retention {retention}"},
    "was": {"id": "sebelumnya {state}: {reason}", "en": "was {state}: {reason}"},
}


# the change states of sopctl.state made of a stage number or a gate name
STATE_PATTERNS: tuple[tuple[re.Pattern[str], dict[str, str]], ...] = (
    (re.compile(r"stage(\d+)_running"), {"id": "tahap {0} berjalan", "en": "stage {0} running"}),
    (re.compile(r"stage(\d+)_done"), {"id": "tahap {0} selesai", "en": "stage {0} done"}),
    (re.compile(r"stage(\d+)_failed"), {"id": "tahap {0} gagal", "en": "stage {0} failed"}),
    (re.compile(r"stage(\d+)_interrupted"), {"id": "tahap {0} terputus", "en": "stage {0} interrupted"}),
    (re.compile(r"rollback_(running|done|failed|interrupted)"), {"id": "rollback {0}", "en": "rollback {0}"}),
    (re.compile(r"waiting_gate_([a-z]+)"), {"id": "menunggu gerbang {0}", "en": "waiting for gate {0}"}),
    (re.compile(r"rejected_at_([a-z]+)"), {"id": "ditolak di gerbang {0}", "en": "rejected at gate {0}"}),
)


def term(word: Any, lang: str) -> Any:
    """The word in ``lang`` when it is one the report knows; anything else (a number, free text)
    as it is."""
    if not isinstance(word, str):
        return word
    entry = TERMS.get(word)
    if entry:
        return entry[lang]
    for pattern, text in STATE_PATTERNS:
        match = pattern.fullmatch(word)
        if match:
            return text[lang].format(term(match.group(1), lang))
    return word


def timeline_detail(rec: dict[str, Any], short) -> dict[str, str]:
    """The detail of one controller-log record for the timeline, in every language (``short``
    shortens free text)."""
    t = rec.get("type")
    out = {}
    for lang in ("id", "en"):
        def say(key: str, **values: Any) -> str:
            return PHRASES[key][lang].format(**values)  # noqa: B023 - used at once, in this iteration

        if t in ("stage_started", "stage_result", "stage_interrupted"):
            text = say("stage", stage=rec.get("stage")) + (
                f": {term(rec.get('status'), lang)}" if rec.get("status") else "") + (
                f" ({rec.get('duration')} s)" if rec.get("duration") is not None else "")
        elif t in ("gate_waiting", "gate_decision"):
            text = say("gate", gate=rec.get("gate")) + (
                f": {term(rec.get('decision'), lang)}" if rec.get("decision") else "") + (
                say("missing", missing=short(rec.get("missing"), 80)) if rec.get("missing") else "")
        elif t in ("approval", "rejection"):
            text = say("as_role", gate=rec.get("gate"), person=rec.get("person"), role=rec.get("role"))
        elif t == "refusal":
            text = f"{rec.get('rule')}: {short(rec.get('reason') or rec.get('message') or '', 160)}"
        elif t == "incident":
            text = say("incidents", stage=rec.get("stage"), count=rec.get("count"))
        elif t == "archive_written":
            text = say("archive", name=Path(str(rec.get("path"))).name, files=rec.get("files"),
                       retention=rec.get("retention"))
        elif t == "stage6_reports":
            text = ", ".join(map(str, rec.get("files") or []))
        elif t == "change_cancelled":
            text = say("was", state=term(rec.get("previous_state"), lang), reason=short(rec.get("reason") or "", 160))
        else:
            fields = {k: v for k, v in rec.items() if k in ("what", "title", "effect", "note")}
            text = short(fields, 160) if fields else ""
        out[lang] = text
    return out
