"""The words of the report in Indonesian and English (issue 17: every string a reader sees is
translated): its labels (``LABELS``, ``labels``), and the words that come from records - statuses,
verdicts, change states, event names and the details of the timeline (``term``,
``timeline_detail``). A record's word with no translation is shown as it is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .errors import SopctlError
from .stage_table import PRODUCTION_STAGE
from .stage_table import stage as stage_record

LANGS = ("id", "en")
NA = {"id": "tidak tersedia", "en": "not available"}

LABELS: dict[str, dict[str, str]] = {
    "title": {"id": "Laporan Perubahan Sistem", "en": "System Change Report"},
    "summary": {"id": "Ringkasan", "en": "Summary"},
    "timeline": {"id": "Kronologi tahap dan gerbang", "en": "Timeline of stages and gates"},
    "stage_runs": {"id": "Eksekusi tahap", "en": "Stage runs"},
    "hosts": {"id": "Hasil per host", "en": "Per-host results"},
    "approvals": {"id": "Persetujuan dan tanda tangan", "en": "Approvals and signatures"},
    "backup": {"id": "Daftar periksa backup", "en": "Backup checklist"},
    "artifacts": {"id": "Verifikasi artefak", "en": "Artifact verification"},
    "staging": {"id": "Simulasi staging", "en": "Staging simulation"},
    "execution": {"id": stage_record(PRODUCTION_STAGE).name_id, "en": "Execution"},
    "functional": {"id": "Uji fungsional", "en": "Functional tests"},
    "security": {"id": "Uji keamanan", "en": "Security tests"},
    "monitoring": {"id": "Statistik monitoring", "en": "Monitoring statistics"},
    "incidents": {"id": "Insiden", "en": "Incidents"},
    "evaluation": {"id": "Evaluasi", "en": "Evaluation"},
    "problems": {"id": "Masalah yang ditemui", "en": "Problems met"},
    "followups": {"id": "Tindak lanjut", "en": "Follow-ups"},
    "compliance": {"id": "Kepatuhan: bukti terhadap kontrol", "en": "Compliance: evidence against controls"},
    "audit_logs": {"id": "Log audit", "en": "Audit logs"},
    "change_id": {"id": "ID perubahan", "en": "Change id"},
    "type": {"id": "Jenis", "en": "Type"}, "risk": {"id": "Risiko", "en": "Risk"},
    "requester": {"id": "Pemohon", "en": "Requester"}, "state": {"id": "Status", "en": "State"},
    "window": {"id": "Jendela waktu", "en": "Window"}, "targets": {"id": "Target", "en": "Targets"},
    "description": {"id": "Deskripsi", "en": "Description"},
    "rollback_plan": {"id": "Rencana rollback", "en": "Rollback plan"},
    "dpia": {"id": "DPIA diperlukan", "en": "DPIA required"},
    "generated": {"id": "Dibuat", "en": "Generated"},
    "time": {"id": "Waktu", "en": "Time"}, "event": {"id": "Kejadian", "en": "Event"},
    "who": {"id": "Oleh", "en": "By"}, "detail": {"id": "Rincian", "en": "Detail"},
    "config_diff": {"id": "Konfigurasi sebelum/sesudah", "en": "Configuration before/after"},
    "blocking_findings": {"id": "Temuan yang memblokir", "en": "Blocking findings"},
    "chart_title": {"id": "Ketersediaan dan latensi selama monitoring",
                    "en": "Availability and latency while monitored"},
    "chart_availability": {"id": "ketersediaan %", "en": "availability %"},
    "chart_p95": {"id": "latensi p95 (ms)", "en": "p95 latency (ms)"},
    "chart_latency": {"id": "latensi sampel (ms)", "en": "sample latency (ms)"},
    "chart_down": {"id": "sampel gagal", "en": "failed sample"},
    "stage_timeline": {"id": "Garis waktu tahap", "en": "Stage timeline"},
    "findings": {"id": "Temuan", "en": "Findings"},
    "stage": {"id": "Tahap", "en": "Stage"}, "status": {"id": "Status", "en": "Status"},
    "operator": {"id": "Operator", "en": "Operator"}, "started": {"id": "Mulai", "en": "Started"},
    "ended": {"id": "Selesai", "en": "Ended"}, "duration": {"id": "Durasi (s)", "en": "Duration (s)"},
    "host": {"id": "Host", "en": "Host"}, "gate": {"id": "Gerbang", "en": "Gate"},
    "person": {"id": "Orang", "en": "Person"}, "role": {"id": "Peran", "en": "Role"},
    "decision": {"id": "Keputusan", "en": "Decision"}, "comment": {"id": "Komentar", "en": "Comment"},
    "signature": {"id": "Tanda tangan", "en": "Signature"}, "valid": {"id": "sah", "en": "valid"},
    "invalid": {"id": "TIDAK SAH", "en": "INVALID"},
    "sig_not_in_roster": {"id": "TIDAK DAPAT DIPERIKSA: penanda tangan tidak lagi ada di roster",
                          "en": "NOT CHECKED: signer no longer in the roster"},
    "sig_no_key": {"id": "TIDAK DAPAT DIPERIKSA: tidak ada kunci di roster", "en": "NOT CHECKED: no key in the roster"},
    "sig_other_key": {"id": "TIDAK SAH: ditandatangani kunci lain", "en": "INVALID: signed with another key"},
    "sig_no_roster": {"id": "TIDAK DAPAT DIPERIKSA: tanpa roster", "en": "NOT CHECKED: no roster"},
    "bound": {"id": "Terikat ke versi akhir", "en": "Bound to final"},
    "void": {"id": "batal (versi lama)", "en": "void (earlier version)"},
    "yes": {"id": "ya", "en": "yes"}, "no": {"id": "tidak", "en": "no"},
    "verdict": {"id": "Hasil", "en": "Verdict"}, "item": {"id": "Butir", "en": "Item"},
    "name": {"id": "Nama", "en": "Name"}, "passed": {"id": "Lulus", "en": "Passed"},
    "message": {"id": "Pesan", "en": "Message"}, "check": {"id": "Pemeriksaan", "en": "Check"},
    "availability": {"id": "Ketersediaan %", "en": "Availability %"}, "p95": {"id": "p95 (ms)", "en": "p95 (ms)"},
    "restarts": {"id": "Restart", "en": "Restarts"}, "journal_errors": {"id": "Error journal", "en": "Journal errors"},
    "samples": {"id": "Sampel", "en": "Samples"}, "healthy": {"id": "Sehat", "en": "Healthy"},
    "severity": {"id": "Tingkat", "en": "Severity"}, "detected": {"id": "Terdeteksi", "en": "Detected"},
    "action": {"id": "Tindakan", "en": "Action"},
    "planned": {"id": "Rencana", "en": "Planned"}, "actual": {"id": "Aktual", "en": "Actual"},
    "downtime": {"id": "Downtime (menit)", "en": "Downtime (minutes)"},
    "downtime_plan": {"id": "Downtime menurut rencana tahap 1 (menit)",
                      "en": "Downtime from the stage 1 plan (minutes)"},
    "stage3_duration": {"id": "Durasi tahap 3 (menit; batas atas downtime)",
                        "en": "Stage 3 duration (minutes; upper bound of downtime)"},
    "duration_total": {"id": "Durasi (menit): jendela vs. aktual", "en": "Duration (minutes): window vs. actual"},
    "runs": {"id": "Eksekusi tahap (berhasil / total)", "en": "Stage runs (succeeded / total)"},
    "none": {"id": "tidak ada", "en": "none"}, "kind": {"id": "Jenis", "en": "Kind"},
    "control": {"id": "Kontrol", "en": "Control"}, "requirement": {"id": "Persyaratan", "en": "Requirement"},
    "sop_step": {"id": "Langkah SOP", "en": "SOP step"}, "evidence": {"id": "Bukti", "en": "Evidence"},
    "source": {"id": "Sumber", "en": "Source"}, "available": {"id": "Tersedia", "en": "Available"},
    "file": {"id": "Berkas", "en": "File"}, "records": {"id": "Rekaman", "en": "Records"},
    "refusals": {"id": "Penolakan oleh aturan", "en": "Refusals by rule"}, "rule": {"id": "Aturan", "en": "Rule"},
    "failed_tasks": {"id": "Tugas gagal", "en": "Failed tasks"}, "task": {"id": "Tugas", "en": "Task"},
    "ok": {"id": "ok", "en": "ok"}, "changed": {"id": "berubah", "en": "changed"},
    "failed": {"id": "gagal", "en": "failed"}, "skipped": {"id": "dilewati", "en": "skipped"},
    "evidence_files": {"id": "Berkas bukti", "en": "Evidence files"},
    "footer": {"id": "Dibuat dari catatan nyata (penyimpanan status, log audit, berkas bukti). "
                     "Bagian tanpa bukti ditandai 'tidak tersedia'.",
               "en": "Built from the real records (state store, audit logs, evidence files). "
                     "Sections without evidence say 'not available'."},
}


def labels(lang: str) -> dict[str, str]:
    if lang not in LANGS:
        raise SopctlError(f"unknown language {lang} (one of {', '.join(LANGS)})")
    out = {k: v[lang] for k, v in LABELS.items()}
    out["na"] = NA[lang]
    return out


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
    return {lang: _detail(rec, lang, short) for lang in LANGS}


def _detail(rec: dict[str, Any], lang: str, short) -> str:
    t = rec.get("type")

    def say(key: str, **values: Any) -> str:
        return PHRASES[key][lang].format(**values)

    if t in ("stage_started", "stage_result", "stage_interrupted"):
        return say("stage", stage=rec.get("stage")) + (
            f": {term(rec.get('status'), lang)}" if rec.get("status") else "") + (
            f" ({rec.get('duration')} s)" if rec.get("duration") is not None else "")
    if t in ("gate_waiting", "gate_decision"):
        return say("gate", gate=rec.get("gate")) + (
            f": {term(rec.get('decision'), lang)}" if rec.get("decision") else "") + (
            say("missing", missing=short(rec.get("missing"), 80)) if rec.get("missing") else "")
    if t in ("approval", "rejection"):
        return say("as_role", gate=rec.get("gate"), person=rec.get("person"), role=rec.get("role"))
    if t == "refusal":
        return f"{rec.get('rule')}: {short(rec.get('reason') or rec.get('message') or '', 160)}"
    if t == "incident":
        return say("incidents", stage=rec.get("stage"), count=rec.get("count"))
    if t == "archive_written":
        return say("archive", name=Path(str(rec.get("path"))).name, files=rec.get("files"),
                   retention=rec.get("retention"))
    if t == "stage6_reports":
        return ", ".join(map(str, rec.get("files") or []))
    if t == "change_cancelled":
        return say("was", state=term(rec.get("previous_state"), lang), reason=short(rec.get("reason") or "", 160))
    fields = {k: v for k, v in rec.items() if k in ("what", "title", "effect", "note")}
    return short(fields, 160) if fields else ""
