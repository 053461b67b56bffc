"""Stage 6 report (*laporan*): what happened to a change, gathered from the real records.

Sources, all of one change: the state store (change, stage runs, signed approvals), the
controller audit log and the per-run audit logs (``<change>/audit``), and the evidence files the
stage playbooks wrote (``<change>/evidence/stage<N>/...``, see docs/architecture.md). Nothing is
invented: a section whose evidence is missing says *tidak tersedia / not available*.

:func:`collect` builds one JSON-serialisable dict (the ``json`` format); :func:`render` turns it
into Markdown or a self-contained HTML page (Jinja2 templates in ``sopctl/templates``, inline CSS,
no external URL, ``@media print`` rules) with Indonesian or English labels.
"""

from __future__ import annotations

import json
import re
import socket
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from . import __version__
from . import evidence as evidence_files
from . import report_chart, report_i18n
from .report_i18n import LABELS, LANGS, NA, labels  # noqa: F401 - the report's words live there
from . import textsafe
from .changelog import chain
from .errors import SopctlError
from .gates import binding as gate_binding
from .stage_table import EVIDENCE_SOURCES, PRODUCTION_STAGE
from .store import utc_now

FORMATS = ("html", "md", "json")
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

#: GUIDE.md section 7: control -> SOP stage -> evidence the product produces (keys of ``evidence``)
CONTROLS: list[dict[str, Any]] = [
    {"control": "ISO 27001:2022 A.5.3 / NIST AU-10", "topic_id": "pemisahan tugas; nirsangkal",
     "topic": "segregation of duties; non-repudiation",
     "stages": "1, 4", "evidence": ["approvals", "stage_runs"]},
    {"control": "ISO 27001:2022 A.8.32 / NIST CM-3, CM-4", "topic_id":
     "pengendalian perubahan: dampak, otorisasi, pengujian, rencana cadangan, catatan",
     "topic": "change control: impact, authorisation, "
     "testing, fallback, records", "stages": "1-6", "evidence": ["change_request", "plan", "approvals", "rollback_plan",
                                                                 "functional_tests"]},
    {"control": "ISO 27001:2022 A.8.13 / NIST CP-9(1) / CIS 11.5", "topic_id": "backup dibuat dan diuji",
     "topic": "backups made and tested",
     "stages": "2", "evidence": ["backup"]},
    {"control": "ISO 27001:2022 A.8.19 / NIST SI-7(15)", "topic_id":
     "integritas perangkat lunak diverifikasi sebelum instalasi",
     "topic": "software integrity verified before install",
     "stages": "2", "evidence": ["artifacts"]},
    {"control": "ISO 27001:2022 A.8.31 / NIST CM-4(1)", "topic_id": "lingkungan uji terpisah (uji di staging)",
     "topic": "separate test environment (staging run)",
     "stages": "2", "evidence": ["staging"]},
    {"control": "ISO 27001:2022 A.8.9", "topic_id": "konfigurasi didokumentasikan dan dipantau",
     "topic": "configuration documented and monitored", "stages": "3, 4",
     "evidence": ["execution"]},
    {"control": "ISO 27001:2022 A.8.29 / NIST SI-2", "topic_id": "uji keamanan sebelum digunakan penuh",
     "topic": "security testing before full use", "stages": "4",
     "evidence": ["security_tests"]},
    {"control": "ISO 27001:2022 A.8.15, A.8.16 / NIST AU-9(3)", "topic_id": "log terlindungi; monitoring",
     "topic": "protected logs; monitoring",
     "stages": "all, 5", "evidence": ["audit_logs", "monitoring"]},
    {"control": "NIST AU-11 / CIS 8.10", "topic_id": "retensi (sebuah pengaturan, lihat metadata arsip)",
     "topic": "retention (a setting, see the archive metadata)",
     "stages": "6", "evidence": ["archive"]},
    {"control": "PP 71/2019 Ps 4, 22, 25, 26", "topic_id":
     "jejak audit; rekaman dapat ditampilkan ulang secara utuh; ketertelusuran",
     "topic": "audit trail; records redisplayable intact; "
     "traceability", "stages": "all", "evidence": ["audit_logs", "archive"]},
    {"control": "UU 27/2022 (PDP) Ps 34, 46", "topic_id": "penanda DPIA; waktu insiden",
     "topic": "DPIA flag; incident timestamps", "stages": "1, 5",
     "evidence": ["change_request", "incidents"]},
]

_FAILED_STATUSES = ("failed", "item_failed", "unreachable", "async_failed")


def _redactor():
    return chain().Redactor()


def _verdict_word(value: Any) -> Any:
    """A verifier's verdict word as it is; anything else (free text, a structure) redacted."""
    if value is None or isinstance(value, bool) or (isinstance(value, str) and re.fullmatch(r"[a-z_]{1,32}", value)):
        return value
    return chain().REDACTED


def _controller_public_key(engine: Any) -> tuple[Any, str | None]:
    """The public half of the controller's audit signing key (None when none is configured), and a
    problem to report when the configured key cannot be read."""
    path = engine.cfg.audit_signing_key
    if path is None:
        return None, None
    try:
        return chain().load_public_key(str(path)), None
    except Exception as exc:  # noqa: BLE001 - any unreadable key is reported, never fatal to the report
        return None, f"audit_signing_key {path}: cannot be read ({type(exc).__name__}); signatures not checked"


def _short(value: Any, limit: int = 160) -> str:
    if isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    except ValueError:
        return None


def _seconds(a: str | None, b: str | None) -> float | None:
    x, y = _parse(a), _parse(b)
    if x is None or y is None:
        return None
    return round((y - x).total_seconds(), 2)


# ---------------------------------------------------------------------------------------- collect
def collect(engine: Any, change_id: str) -> dict[str, Any]:
    """Everything the report shows, as one JSON-serialisable dict (the ``json`` format)."""
    store = engine.store
    change = engine.change(change_id)
    cr = change["cr"]
    ev_dir = store.evidence_dir(change_id)
    audit_dir = store.audit_dir(change_id)
    red = _redactor()
    ac = chain()

    # --- audit logs: verify every one, read the records
    logs = []
    records_by_log: dict[str, list[dict[str, Any]]] = {}
    # the controller holds its own signing key: its public half checks the checkpoints it signed
    own_key, own_key_problem = _controller_public_key(engine)
    for f in ac.find_logs(str(audit_dir)):
        res = ac.verify_log(f, public_keys=[own_key] if own_key is not None else None)
        logs.append({"file": Path(f).name, "status": res.status, "ok": res.ok, "records": res.records,
                     "signature": res.signature, "summary": res.summary(), "run_id": res.run_id,
                     "first_time": res.first_time, "last_time": res.last_time})
        records_by_log[Path(f).name] = list(ac.iter_records(f)) if res.status != ac.STATUS_UNREADABLE else []
    controller = records_by_log.get("controller.jsonl", [])

    # --- stage runs (store)
    runs = []
    for r in store.stage_runs(change_id):
        runs.append({"stage": r["stage"], "ident": r["ident"], "status": r["status"], "operator": r["operator"],
                     "host": r["host"], "started": r["started"], "ended": r["ended"],
                     "duration_seconds": _seconds(r["started"], r["ended"]), "message": r["message"],
                     "summary": red.redact(r["summary"]) if r["summary"] is not None else None})

    # --- per-host results from the per-run audit logs
    hosts: dict[str, dict[str, Counter]] = {}
    failed_tasks = []
    for name, recs in records_by_log.items():
        if name == "controller.jsonl":
            continue
        for x in recs:
            if x.get("type") != "result":
                continue
            stage = str(x.get("stage") or "?")
            c = hosts.setdefault(str(x.get("host")), {}).setdefault(stage, Counter())
            status = x.get("status")
            c[status if status in ("ok", "skipped") else ("failed" if status in _FAILED_STATUSES else "other")] += 1
            if x.get("changed"):
                c["changed"] += 1
            if status in _FAILED_STATUSES:
                res = x.get("result") or {}
                msg = "(no_log)" if x.get("no_log") else _short(res.get("msg") or res.get("stderr") or "", 200)
                failed_tasks.append({"stage": stage, "host": x.get("host"), "task": (x.get("task") or {}).get("name"),
                                     "status": status, "ignored": bool(x.get("ignore_errors")), "message": msg,
                                     "time": x.get("time"), "run_id": x.get("run_id")})
    host_rows = []
    for host in sorted(hosts):
        for stage in sorted(hosts[host]):
            c = hosts[host][stage]
            host_rows.append({"host": host, "stage": stage, "ok": c["ok"], "changed": c["changed"],
                              "failed": c["failed"], "skipped": c["skipped"]})

    # --- approvals (store), signatures checked against the roster, binding against the current CR/plan
    try:
        roster = engine.roster
    except SopctlError:
        roster = None
    approvals = []
    from .approvals import SIG_VALID, check_decision

    for row in store.approvals(change_id):
        person = roster.people.get(row["person"]) if roster else None
        pem = person.public_key_pem if person else None
        if roster is None:
            sig_status, sig_reason = "no_roster", "no roster configured: the signature cannot be checked"
        else:
            sig_status, sig_reason = check_decision(row, person is not None, pem)
        sig_ok = sig_status == SIG_VALID
        binding = gate_binding(store, change, row["gate"])  # what the gate code binds a decision to
        approvals.append({"gate": row["gate"], "person": row["person"],
                          "name": person.name if person else None, "role": row["role"],
                          "decision": row["decision"], "comment": row["comment"], "time": row["time"],
                          "key_id": row["key_id"], "signature": row["signature"],
                          "signature_valid": sig_ok, "signature_status": sig_status,
                          "signature_reason": sig_reason, "in_roster": person is not None,
                          "bound_to_current": binding is not None and row["binding"] == binding})

    # --- evidence
    evidence: dict[str, Any] = {}
    problems_reading: list[str] = [own_key_problem] if own_key_problem else []

    verdicts: dict[str, evidence_files.Evidence] = {}

    def load(rel: str, kind: str, host: str | None = None) -> Any:
        """The redacted document at ``rel`` (None when missing or unreadable); its verdict in ``verdicts``."""
        ev = evidence_files.load(ev_dir / rel, kind, change_id=change["id"], host=host)
        verdicts[rel] = ev
        if ev.invalid:
            problems_reading.append(f"{rel}: {'; '.join(ev.invalid)}")
        return red.redact(ev.doc) if ev.doc is not None else None

    def outcome(rel: str) -> dict[str, Any]:
        ev = verdicts[rel]
        return {"verdict": ev.verdict, "reasons": [_short(r, 200) for r in red.redact(ev.reasons)]}

    plan = load("stage1/plan.json", "plan")
    evidence["plan"] = None if plan is None else {"file": "stage1/plan.json", **outcome("stage1/plan.json"),
                                                  "schedule": plan.get("schedule")}
    backup = []
    for host in change["targets"].get("production", []):
        rel = f"stage2/backup/{host}/checklist.json"
        doc = load(rel, "backup", host)
        if doc is None:
            backup.append({"host": host, "available": False})
            continue
        items = [{"id": i.get("id"), "label": i.get("en") or i.get("id_label") or i.get("id"),
                  "label_id": i.get("id_label") or i.get("en") or i.get("id"), "ok": i.get("ok")}
                 for i in (doc.get("items") or []) if isinstance(i, dict)]
        backup.append({"host": host, "available": True, **outcome(rel), "items": items})
    evidence["backup"] = backup
    art = load("stage2/artifacts/verification.json", "artifacts")
    if art is None:
        evidence["artifacts"] = None
    else:
        def artifact_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
            inner = doc.get("verification") if isinstance(doc.get("verification"), dict) else doc
            return [a for a in inner.get("artifacts") or [] if isinstance(a, dict)]

        # the verdict of each check is a word of the verifier (pass, fail, not_requested), never a secret:
        # it is read from the document before redaction, which hides every value under a key such as
        # "signature" (a verdict that is not such a word stays redacted)
        raw = verdicts["stage2/artifacts/verification.json"].doc or {}
        rows = []
        for a, raw_a in zip(artifact_rows(art), artifact_rows(raw), strict=True):  # redaction keeps lists
            rows.append({"name": a.get("name"), "passed": a.get("passed"),
                         "sha256": (a.get("digests") or {}).get("sha256"),
                         "checks": {k: _verdict_word(v.get("verdict") if isinstance(v, dict) else v)
                                    for k, v in (raw_a.get("checks") or {}).items()}})
        evidence["artifacts"] = {**outcome("stage2/artifacts/verification.json"), "artifacts": rows}
    staging = load("stage2/staging.json", "staging")
    evidence["staging"] = None if staging is None else outcome("stage2/staging.json")
    execution = []
    for host in change["targets"].get("production", []):
        doc = load(f"stage3/{host}.json", "execution", host)
        if doc is None:
            execution.append({"host": host, "available": False, "config_diff": None})
            continue
        detail, config_diff = doc.get("versions"), None
        if isinstance(doc.get("network"), dict):  # a network device: the lines sent, how it ended, the diff
            net = doc["network"]
            detail = {"sent": [str(c).strip() for c in net.get("commands") or []],
                      "confirmed": net.get("confirmed"), "reverted_by": net.get("reverted_by") or None}
            config_diff = str(net.get("config_diff") or "") or None
        execution.append({"host": host, "available": True, **outcome(f"stage3/{host}.json"),
                          "versions": _short(detail, 300) if detail else None, "config_diff": config_diff,
                          "downtime_seconds": doc.get("downtime_seconds")})
    evidence["execution"] = execution
    summary3 = load("stage3/summary.json", "execution_summary")
    evidence["execution_summary"] = None if summary3 is None else outcome("stage3/summary.json")
    functional = []
    for host in change["targets"].get("production", []):
        doc = load(f"stage4/{host}.json", "functional_tests", host)
        if doc is None:
            continue
        vr = doc.get("validate_result") if isinstance(doc.get("validate_result"), dict) else doc
        for chk in vr.get("functional") or []:
            if isinstance(chk, dict):
                functional.append({"host": host, "type": chk.get("type"), "name": chk.get("name"),
                                   "passed": chk.get("passed"), "message": _short(chk.get("message") or "", 160)})
    evidence["functional_tests"] = functional or None
    sec = load("stage4/security.json", "security_tests")
    if sec is None:
        evidence["security_tests"] = None
    else:
        per_host = []
        for host, res in (sec.get("hosts") or {}).items() if isinstance(sec.get("hosts"), dict) else []:
            if isinstance(res, dict):
                per_host.append({"host": host, "passed": res.get("passed"),
                                 "blocking": len(res.get("blocking") or []),
                                 "findings": len(res.get("findings") or [])})
        evidence["security_tests"] = {**outcome("stage4/security.json"), "hosts": per_host}
    mon = load("stage5/monitoring.json", "monitoring")
    if mon is None:
        evidence["monitoring"] = None
    else:
        mrows = []
        for host, h in (mon.get("hosts") or {}).items() if isinstance(mon.get("hosts"), dict) else []:
            s = (h or {}).get("summary") or {}
            lat = s.get("latency_ms") or {}
            mrows.append({"host": host, "healthy": (h or {}).get("healthy"), "samples": s.get("samples"),
                          "availability_pct": s.get("availability_pct"), "p95_latency_ms": lat.get("p95"),
                          "restarts": s.get("restarts"), "journal_errors": s.get("journal_errors"),
                          "service_down_samples": s.get("service_down_samples"),
                          "chart": report_chart.series((h or {}).get("samples"))})
        evidence["monitoring"] = {**outcome("stage5/monitoring.json"), "hosts": mrows}
    inc = load("stage5/incidents.json", "incidents")
    incidents = []
    if isinstance(inc, dict):
        for i in inc.get("incidents") or []:
            if isinstance(i, dict):
                incidents.append({"id": i.get("id"), "host": i.get("host"), "what": _short(i.get("what") or "", 200),
                                  "severity": i.get("severity"), "detected_at": i.get("detected_at"),
                                  "action": _short(i.get("action") or "", 120),
                                  "rollback": _short(i.get("rollback"), 160) if i.get("rollback") else None})
    evidence["incidents"] = incidents if inc is not None else None
    evidence["files"] = sorted(str(p.relative_to(ev_dir)) for p in ev_dir.rglob("*") if p.is_file())

    # --- timeline, refusals, incidents from the controller log
    timeline = []
    refusals = []
    incident_records = []
    interesting = {"change_submitted", "change_request_changed", "stage_started", "stage_result", "stage_interrupted",
                   "gate_waiting", "gate_decision", "approval", "rejection", "refusal", "incident", "change_closed",
                   "change_rolled_back", "change_cancelled", "stage6_reports", "archive_written"}
    for rec in controller:
        t = rec.get("type")
        if t not in interesting:
            continue
        who = (rec.get("operator") or {}).get("declared") or rec.get("person") or ""
        if t == "refusal":
            refusals.append({"time": rec.get("time"), "rule": rec.get("rule"), "action": rec.get("action"),
                             "operator": who, "reason": _short(rec.get("reason") or rec.get("message") or "", 240)})
        elif t == "incident":
            incident_records.append({"time": rec.get("time"), "stage": rec.get("stage"), "count": rec.get("count")})
        detail = report_i18n.timeline_detail(rec, _short)
        timeline.append({"time": rec.get("time"), "event": t, "who": who, "detail": detail})

    # --- evaluation
    window_minutes = _seconds(change["window_start"], change["window_end"])
    window_minutes = round(window_minutes / 60, 1) if window_minutes is not None else None
    succeeded = [r for r in runs if r["status"] == "succeeded"]
    first = min((r["started"] for r in runs), default=None)
    last = max((r["ended"] for r in runs if r["ended"]), default=None)
    stage3 = [r for r in runs if r["stage"] == PRODUCTION_STAGE and r["status"] != "superseded"]
    stage3_seconds = sum(r["duration_seconds"] or 0 for r in stage3) if stage3 else None
    host_downtime = [e["downtime_seconds"] for e in execution if e.get("downtime_seconds") is not None]
    plan_minutes = None
    if isinstance(plan, dict):
        sched = plan.get("schedule") or {}
        # the plan's estimate of the longest downtime of one host (schemas/evidence/plan.v1.json)
        est = sched.get("estimated_max_host_downtime_seconds") if isinstance(sched, dict) else None
        plan_minutes = round(est / 60, 1) if isinstance(est, (int, float)) else None
    problems = []
    for r in runs:
        if r["status"] in ("failed", "interrupted"):
            problems.append({"kind": f"stage_{r['status']}", "time": r["ended"] or r["started"],
                             "text": f"stage {r['stage']} run {r['ident']} {r['status']}"
                                     + (f": {_short(r['message'], 200)}" if r["message"] else "")})
    for f in failed_tasks:
        problems.append({"kind": "failed_task" + ("_ignored" if f["ignored"] else ""), "time": f["time"],
                         "text": f"stage {f['stage']} {f['host']}: {f['task']} ({f['status']}) {f['message']}"})
    for r in refusals:
        problems.append({"kind": "refusal", "time": r["time"], "text": f"{r['rule']}: {r['reason']}"})
    for a in approvals:
        if a["decision"] == "reject":
            problems.append({"kind": "rejection", "time": a["time"],
                             "text": f"gate {a['gate']} rejected by {a['person']}: {a['comment']}"})
        if not a["signature_valid"]:
            kind = "tampered_approval" if a["signature_status"] == "invalid" else \
                f"unverified_approval_{a['signature_status']}"
            problems.append({"kind": kind, "time": a["time"],
                             "text": f"{a['decision']} of {a['person']} at gate {a['gate']}: {a['signature_reason']}"})
    for i in incidents:
        problems.append({"kind": "incident", "time": i["detected_at"], "text": f"{i['id']} {i['host']}: {i['what']}"})
    for lg in logs:
        if not lg["ok"]:
            problems.append({"kind": "audit_log", "time": lg["last_time"], "text": f"{lg['file']}: {lg['summary']}"})
    problems.sort(key=lambda p: p["time"] or "")
    followups = []
    for i in incidents:
        followups.append(f"Post-incident review of {i['id']} ({i['host']})")
    if any(p["kind"] == "failed_task" for p in problems):
        followups.append("Find the cause of the failed task(s) listed above and fix the playbook or host")
    if any(p["kind"] == "stage_interrupted" for p in problems):
        followups.append("Check why the interrupted stage run(s) stopped (operator, host, signal)")
    if any(not lg["ok"] for lg in logs):
        followups.append("Investigate the audit log(s) that do not verify")
    if any(lg["signature"] == "unsigned" for lg in logs):
        followups.append("Configure audit_signing_key so audit checkpoints are signed (today only hash-chained)")
    # artifact verification is evidence only for a change that has artifacts (a network change has none)
    expected = [k for k in ("plan", "artifacts", "staging", "security_tests", "monitoring", "incidents")
                if k != "artifacts" or (cr.get("items") or {}).get("artifacts")]
    missing = [k for k in expected if evidence.get(k) is None]
    if missing or any(not b["available"] for b in backup) or any(not e["available"] for e in execution) \
            or evidence.get("functional_tests") is None:
        followups.append("Evidence missing for: " + ", ".join(
            missing + [f"backup {b['host']}" for b in backup if not b["available"]]
            + [f"stage 3 {e['host']}" for e in execution if not e["available"]]
            + (["functional_tests"] if evidence.get("functional_tests") is None else [])))
    evaluation = {
        "planned_downtime_minutes": cr.get("expected_downtime_minutes"),
        "planned_downtime_from_plan_minutes": plan_minutes,
        "actual_downtime_minutes": round(sum(host_downtime) / 60, 2) if host_downtime else None,
        "actual_downtime_basis": "stage3/<host>.json downtime_seconds" if host_downtime else None,
        "stage3_duration_minutes": round(stage3_seconds / 60, 2) if stage3_seconds is not None else None,
        "window_minutes": window_minutes,
        "actual_duration_minutes": round(_seconds(first, last) / 60, 2) if first and last else None,
        "stage_runs": len(runs), "stage_runs_succeeded": len(succeeded),
        "problems": problems, "followups": followups,
    }

    # --- compliance mapping
    def present(key: str) -> bool:
        if key == "change_request":
            return True
        if key == "rollback_plan":
            return bool((cr.get("rollback") or {}).get("plan"))
        if key == "approvals":
            return bool(approvals)
        if key == "stage_runs":
            return bool(runs)
        if key == "backup":
            return bool(backup) and all(b["available"] for b in backup)
        if key == "execution":
            return bool(execution) and all(e["available"] for e in execution)
        if key == "audit_logs":
            return bool(logs)
        if key == "archive":
            return False  # filled in by the archive (it contains this report)
        return evidence.get(key) is not None
    compliance = []
    for c in CONTROLS:
        items = [{"evidence": k, "sop_step": EVIDENCE_SOURCES[k][0], "source": EVIDENCE_SOURCES[k][1],
                  "available": present(k)} for k in c["evidence"]]
        compliance.append(dict(c, items=items))

    return {
        "report_version": 1, "generated_at": utc_now(), "generator": f"sopctl {__version__}",
        "controller": socket.gethostname(),
        "change": {"id": change_id, "title": change["title"], "type": cr.get("type"), "risk": cr.get("risk"),
                   "requester": change["requester"], "description": cr.get("description"),
                   "reason": cr.get("reason"), "state": change["state"], "created": change["created"],
                   "updated": change["updated"], "window": {"start": change["window_start"],
                                                            "end": change["window_end"]},
                   "targets": change["targets"], "cr_digest": change["cr_digest"],
                   "dpia_required": cr.get("dpia_required"), "rollback_plan": (cr.get("rollback") or {}).get("plan"),
                   "packages": (cr.get("items") or {}).get("packages") or [],
                   "expected_downtime_minutes": cr.get("expected_downtime_minutes")},
        "stage_runs": runs, "timeline": timeline, "hosts": host_rows, "failed_tasks": failed_tasks,
        "approvals": approvals, "refusals": refusals, "incident_records": incident_records,
        "evidence": evidence, "evidence_problems": problems_reading, "audit_logs": logs,
        "evaluation": evaluation, "compliance": compliance,
    }


# ---------------------------------------------------------------------------------------- render


def _environment(fmt: str):
    import jinja2

    # every {{ expression }} passes through textsafe's finalize: control, bidi and invisible format
    # characters of the change's text are shown as visible markers (HTML: a newline is kept, the
    # markers are escaped by autoescaping; Markdown: one line per field)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",),
                                                                 default_for_string=False, default=False),
                             undefined=jinja2.StrictUndefined,
                             finalize=textsafe.jinja_finalize(multiline=fmt == "html", markdown=fmt == "md"),
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)

    def md(value: Any) -> str:  # one Markdown table cell
        # the finalize makes ``|`` a character reference; here only the lines are joined
        return "" if value is None else str(value).replace("\r\n", " ").replace("\n", " ")

    env.filters["md"] = md
    env.filters["fence"] = textsafe.markdown_fence
    env.filters["fenced"] = textsafe.FencedText
    env.filters["short"] = _short
    return env


def render(data: dict[str, Any], fmt: str, lang: str) -> str:
    if fmt == "json":
        # ensure_ascii: control, bidi and format characters are \u-escaped (exact, and inert on a terminal)
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True, default=str) + "\n"
    if fmt not in FORMATS:
        raise SopctlError(f"unknown format {fmt} (one of {', '.join(FORMATS)})")
    template = _environment(fmt).get_template(f"report.{fmt}.j2")
    words = labels(lang)

    def tr(word: Any) -> Any:
        return report_i18n.term(word, lang)

    return template.render(d=data, L=words, tr=tr, lang=lang,
                           chart=lambda points: report_chart.svg(points, words),
                           stages_chart=lambda runs: report_chart.stages_svg(runs, words, tr))


def report_files(engine: Any, change_id: str, out_dir: Path, data: dict[str, Any] | None = None) -> list[Path]:
    """Write the report in every format and language into ``out_dir`` (0600 files); return the paths."""
    from .errors import naming
    from .store import atomic_write

    data = data or collect(engine, change_id)
    paths = []
    for name, fmt, lang in [("report.json", "json", "en")] + [(f"report.{lang}.{fmt}", fmt, lang)
                                                              for lang in LANGS for fmt in ("html", "md")]:
        path = out_dir / name
        try:
            atomic_write(path, render(data, fmt, lang))  # each file whole or not at all
        except OSError as exc:
            raise naming(exc, path) from exc
        paths.append(path)
    return paths
