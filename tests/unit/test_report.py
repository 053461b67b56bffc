"""Unit tests of sopctl.report: labels, the compliance map, and a report of a change that has no
evidence yet (a real submitted change: every section must say 'not available', nothing invented)."""

from __future__ import annotations

import json
import re

import pytest

from sopctl import report as rp
from sopctl.errors import SopctlError
from tests.fixtures.sopctl.world import World
from tests.unit.test_archive import approved  # noqa: F401 - the fixture


def test_labels_complete_in_both_languages():
    for key, value in rp.LABELS.items():
        assert set(value) == {"id", "en"} and all(value.values()), key
    assert rp.labels("id")["na"] == "tidak tersedia" and rp.labels("en")["na"] == "not available"
    with pytest.raises(SopctlError):
        rp.labels("fr")


def test_compliance_map_covers_the_issue_controls():
    text = " ".join(c["control"] for c in rp.CONTROLS)
    for control in ("A.8.32", "A.8.13", "A.8.19", "A.5.3", "CM-3", "CM-4", "SI-7", "CP-9", "AU-9", "PP 71/2019"):
        assert control in text, control
    for c in rp.CONTROLS:
        assert c["evidence"] and all(k in rp.EVIDENCE_SOURCES for k in c["evidence"])


def collected(tmp_path, monkeypatch, change_id, **cr):
    """The report data of a change just submitted in a fresh world (no evidence yet)."""
    world = World(tmp_path)
    proc = world.sopctl("budi", "submit", str(world.cr(change_id, **cr)))
    assert proc.returncode == 0, proc.stderr
    monkeypatch.setenv("SOPCTL_HOME", str(world.home))
    from sopctl.engine import Engine

    return rp.collect(Engine(), change_id)


def test_report_of_a_change_without_evidence(tmp_path, monkeypatch):
    data = collected(tmp_path, monkeypatch, "CHG-2026-9701")
    json.dumps(data)
    assert data["stage_runs"] == [] and data["approvals"] == [] and data["hosts"] == []
    ev = data["evidence"]
    assert ev["plan"] is None and ev["artifacts"] is None and ev["monitoring"] is None
    assert [b["available"] for b in ev["backup"]] == [False, False]
    assert data["evaluation"]["planned_downtime_minutes"] == 5
    assert data["evaluation"]["actual_downtime_minutes"] is None
    for lang, na in (("id", "tidak tersedia"), ("en", "not available")):
        html = rp.render(data, "html", lang)
        md = rp.render(data, "md", lang)
        assert html.count('data-missing="1"') >= 8
        assert md.count(f"_{na}_") >= 8
        assert not re.search(r"https?://", html)
    with pytest.raises(SopctlError):
        rp.render(data, "pdf", "en")


def test_html_escapes_text_from_the_change(tmp_path, monkeypatch):
    data = collected(tmp_path, monkeypatch, "CHG-2026-9702", title="<script>alert(1)</script> patch")
    html = rp.render(data, "html", "en")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_report_names_an_approver_removed_from_the_roster_apart_from_a_tampered_one(approved):  # noqa: F811
    """Issue 15, class 16: the report says 'no longer in the roster', not 'fails signature verification'."""
    import os

    from sopctl.engine import Engine
    from sopctl.store import Store

    from tests.unit.test_archive import CID16, _remove_sari

    _remove_sari(approved)
    eng = Engine(Store(), out=open(os.devnull, "w"))
    eng.store.db.execute("UPDATE approvals SET comment='risk none' WHERE person='agus'")
    data = rp.collect(eng, CID16)
    by = {a["person"]: a for a in data["approvals"]}
    assert by["sari"]["signature_status"] == "not_in_roster" and not by["sari"]["signature_valid"]
    assert by["agus"]["signature_status"] == "invalid" and by["dewi"]["signature_status"] == "valid"
    problems = {p["kind"]: p["text"] for p in data["evaluation"]["problems"]}
    assert "sari" in problems["unverified_approval_not_in_roster"]
    assert "removed from the roster after signing" in problems["unverified_approval_not_in_roster"]
    assert "agus" in problems["tampered_approval"] and "sari" not in problems["tampered_approval"]
    for lang in rp.LANGS:
        label = rp.labels(lang)["sig_not_in_roster"]
        md, html = rp.render(data, "md", lang), rp.render(data, "html", lang)
        sari_row = next(ln for ln in md.splitlines() if ln.startswith("| plan | sari |"))
        assert label in sari_row and rp.labels(lang)["invalid"] + "**" not in sari_row
        assert f'data-sig="not_in_roster">{label}<' in html


def test_a_device_configuration_diff_is_shown_escaped_in_both_formats(tmp_path, monkeypatch):
    data = collected(tmp_path, monkeypatch, "CHG-2026-9703")
    diff = "--- before\n+++ after\n@@ -1 +1,2 @@\n hostname r1\n+ neighbor 10.0.0.2 password <redacted>\n"
    data["evidence"]["execution"] = [{"host": "r1", "available": True, "verdict": "passed", "reasons": [],
                                      "versions": "{'sent': [...]}", "config_diff": diff, "downtime_seconds": 0}]
    html = rp.render(data, "html", "en")
    assert "Configuration before/after: r1" in html
    assert "+ neighbor 10.0.0.2 password &lt;redacted&gt;" in html and "<redacted>" not in html
    md = rp.render(data, "md", "id")
    assert "#### Konfigurasi sebelum/sesudah: r1" in md and "~~~~diff\n" + diff + "~~~~" in md
    # a line of the configuration cannot close the code block early, nor a control character hide in it
    data["evidence"]["execution"][0]["config_diff"] = diff + "+banner ~~~~~~\n+ description a\u202eb\n"
    md = rp.render(data, "md", "en")
    assert "~~~~~~~diff\n" in md and "+banner ~~~~~~\n" in md and "\u202e" not in md


def test_words_from_the_records_are_translated():
    from sopctl import report_i18n as i18n

    for word, entry in i18n.TERMS.items():
        assert set(entry) == {"id", "en"} and all(entry.values()), word
    assert i18n.term("succeeded", "id") == "berhasil" and i18n.term("succeeded", "en") == "succeeded"
    assert i18n.term("change_submitted", "id") == "perubahan diajukan"
    assert i18n.term("stage3_done", "id") == "tahap 3 selesai"
    assert i18n.term("waiting_gate_signoff", "en") == "waiting for gate signoff"
    assert i18n.term("rollback_failed", "id") == "rollback gagal"
    assert i18n.term("free text, not a word", "id") == "free text, not a word" and i18n.term(3, "id") == 3
    rec = {"type": "stage_result", "stage": 3, "status": "succeeded", "duration": 63.5}
    assert i18n.timeline_detail(rec, rp._short) == {"id": "tahap 3: berhasil (63.5 s)",
                                                     "en": "stage 3: succeeded (63.5 s)"}
    rec = {"type": "gate_waiting", "gate": "plan", "missing": {"qa": 1}}
    assert i18n.timeline_detail(rec, rp._short)["id"] == 'gerbang plan; kurang {"qa": 1}'


def test_a_verifier_verdict_is_shown_and_anything_else_stays_redacted():
    assert rp._verdict_word("pass") == "pass" and rp._verdict_word("not_requested") == "not_requested"
    assert rp._verdict_word(None) is None and rp._verdict_word(True) is True
    for value in ("-----BEGIN PGP SIGNATURE-----", "pass; token=x", {"k": "v"}, "a" * 40):
        assert rp._verdict_word(value) == "VALUE_REDACTED", value


def test_monitoring_chart_from_server_and_network_samples():
    from sopctl import report_chart

    server = [{"t": "2026-11-28T10:00:00Z", "http_ok": True, "service_active": True, "latency_ms": 50.0},
              {"t": "2026-11-28T10:00:03Z", "http_ok": False, "service_active": True, "latency_ms": None},
              {"t": "2026-11-28T10:00:06Z", "http_ok": True, "service_active": True, "latency_ms": 90.0},
              {"t": "not a time"}, "not a sample"]
    points = report_chart.series(server)
    assert [p["t"] for p in points] == [0.0, 3.0, 6.0]
    assert [p["up"] for p in points] == [True, False, True]
    assert [p["availability_pct"] for p in points] == [100.0, 50.0, 66.67]
    assert [p["p95_latency_ms"] for p in points] == [50.0, 50.0, 90.0]
    drawn = str(report_chart.svg(points, rp.labels("id")))
    assert drawn.startswith("<svg") and drawn.count("<polyline") == 3 and drawn.count('class="down"') == 1
    assert "latensi p95 (ms)" in drawn
    network = [{"at": "2026-11-28T10:00:00Z", "passed": True, "failed": []},
               {"at": "2026-11-28T10:00:02Z", "passed": False, "failed": ["x"]}]
    drawn = str(report_chart.svg(report_chart.series(network), rp.labels("en")))
    assert drawn.count("<polyline") == 1 and "p95" not in drawn and "failed sample" in drawn
    assert str(report_chart.svg([], rp.labels("en"))) == "" and report_chart.series(None) == []


def test_stage_timeline_chart():
    from sopctl import report_chart, report_i18n

    runs = [{"stage": 1, "ident": "stage1-a", "status": "succeeded",
             "started": "2026-11-28T10:00:00Z", "ended": "2026-11-28T10:00:10Z"},
            {"stage": 2, "ident": "stage2-a", "status": "failed",
             "started": "2026-11-28T10:00:20Z", "ended": "2026-11-28T10:01:00Z"},
            {"stage": 2, "ident": "stage2-b<x>", "status": "running", "started": "2026-11-28T10:01:10Z", "ended": None}]
    drawn = str(report_chart.stages_svg(runs, rp.labels("id"), lambda w: report_i18n.term(w, "id")))
    assert drawn.count('class="run-ok"') == 1 and drawn.count('class="run-bad"') == 1
    assert drawn.count('class="run-open"') == 1 and "berhasil" in drawn and "gagal" in drawn
    assert "stage2-b&lt;x&gt;" in drawn and "<x>" not in drawn and "70 s" in drawn
    assert str(report_chart.stages_svg([], rp.labels("en"), str)) == ""
