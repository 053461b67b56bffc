"""Issue 15, class 14: text from a change never reaches a terminal or a report raw.

Hostile text (``\\r``, ANSI escapes, C1 controls, Unicode bidi overrides and isolates, zero-width
and other invisible format characters, newlines in one-line fields) is put where sopctl takes it
from: the store (a title or description stored before validation was strict, or written by
another tool), signed approval comments, the inventory's host names, audit logs and archive
member names. Every printed or rendered byte is checked: nothing dangerous is left, and a visible
marker shows that something was there.
"""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest
from sopctl import approvals as ap
from sopctl import archive, cli, textsafe
from sopctl import report as rp
from sopctl.engine import Engine
from sopctl.store import Store

from tests.fixtures.sopctl.world import World

CID = "CHG-2026-9811"
# a title that, printed raw, erases its own line and shows "APPROVED" in red, reversed text,
# isolates, zero-width space, Arabic letter mark and a C1 CSI (U+009B)
TITLE = "Routine patch\r\x1b[2K\x1b[31mAPPROVED\x1b[0m \u202eredaolnwod\u202c \u2066x\u2069\u200b\u061c\x9b31m end"
# a one-line field that tries to add a line of its own
FORGED_LINE = "quiet title\n  state closed; requester nobody"
DESCRIPTION = "first line\nsecond line \x1b]0;owned\x07 \u2067rtl\u2069 \ufeffbom \u00adsoft"
HOST = "prd-local-1\u202e1-lacol-drp"
COMMENT = "looks fine\r\x1b[1A\x1b[2Kapproved by everyone \u202etxet\u202c"


def neutral(text: str, newline: bool = True) -> bool:
    """No character left that a terminal or browser would act on or hide."""
    return all(not textsafe.needs_neutralising(ch) or (ch == "\n" and newline) for ch in text)


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = World(tmp_path)
    w.submit_in_process(monkeypatch, CID)
    return w


def set_change(store: Store, **fields) -> None:
    """Write the row directly, as a store from before strict validation (or another tool) holds it."""
    for key, value in fields.items():
        column = {"cr": "cr_json", "targets": "targets_json"}.get(key, key)
        value = json.dumps(value, sort_keys=True) if key in ("cr", "targets") else value
        store.db.execute(f"UPDATE changes SET {column}=? WHERE id=?", (value, CID))  # noqa: S608


def hostile_store(title: str = TITLE) -> Store:
    store = Store()
    change = store.get_change(CID)
    cr = dict(change["cr"], title=title, description=DESCRIPTION)
    targets = dict(change["targets"], production=[HOST, *change["targets"]["production"][1:]])
    set_change(store, title=title, cr=cr, targets=targets)
    return store


def hostile_rejection(world: World, store: Store) -> None:
    """A validly signed rejection whose comment is hostile (the person wrote it)."""
    rid = store.start_stage_run(CID, "1", "stage1-x", "t1", "eko", os.getpid(), "h")
    store.finish_stage_run(rid, "succeeded", summary={"result": "passed"})
    eng = Engine(store, out=open(os.devnull, "w"))
    eng.plan_file(CID).parent.mkdir(parents=True, exist_ok=True)
    eng.plan_file(CID).write_text(json.dumps({"plan": "demo"}))
    ident = ap.load_identity(world.identity("dewi"))
    row = {"change_id": CID, "gate": "plan", "person": "dewi", "role": "users", "decision": "reject",
           "comment": COMMENT, "binding": eng.binding(eng.change(CID), "plan"), "time": "2026-11-28T00:00:00Z"}
    store.add_approval(ap.sign_decision(ident, row))


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------ the helper itself
@pytest.mark.parametrize("raw, shown", [
    ("a\rb", "a\\rb"), ("\x1b[31mred", "\\x1b[31mred"), ("tab\there", "tab\\there"), ("nul\x00", "nul\\x00"),
    ("del\x7f", "del<U+007F>"), ("csi\x9b1m", "csi<U+009B>1m"), ("\u202eabc\u202c", "<U+202E>abc<U+202C>"),
    ("\u2066i\u2069", "<U+2066>i<U+2069>"), ("\u200e\u200f\u061c", "<U+200E><U+200F><U+061C>"),
    ("zw\u200b\u200d\u2060", "zw<U+200B><U+200D><U+2060>"), ("\ufeffbom", "<U+FEFF>bom"),
    ("soft\u00adhyphen", "soft<U+00AD>hyphen"), ("tag\U000e0041", "tag<U+E0041>"),
    ("ls\u2028ps\u2029", "ls<U+2028>ps<U+2029>"), ("filler\u3164", "filler<U+3164>"),
    ("lone\udc80", "lone<U+DC80>"), ("two\nlines", "two\\nlines"),
    ("Pembaruan sistem — tahap 3 … ✓ ñ 日本", "Pembaruan sistem — tahap 3 … ✓ ñ 日本"),
])
def test_neutralise_shows_every_hidden_character(raw, shown):
    assert textsafe.one_line(raw) == shown
    assert neutral(textsafe.one_line(raw), newline=False)


def test_multi_line_keeps_only_the_newline():
    assert textsafe.multi_line("a\nb\r\nc\x1b") == "a\nb\\r\nc\\x1b"


def test_safe_stream_neutralises_writes_but_passes_sopctl_control_sequences():
    raw = io.StringIO()
    stream = textsafe.SafeStream(raw)
    stream.write(TITLE + "\n")
    textsafe.control(stream, "\r\x1b[K")
    assert raw.getvalue() == textsafe.multi_line(TITLE + "\n") + "\r\x1b[K"
    assert "\\x1b[2K" in raw.getvalue() and "<U+202E>" in raw.getvalue()


def test_safe_stream_escapes_what_the_terminal_encoding_cannot_show():
    raw = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    textsafe.SafeStream(raw).write("Sari \u2014 ok\n")
    raw.flush()
    assert raw.buffer.getvalue() == b"Sari \\u2014 ok\n"


# ------------------------------------------------------------------------------ terminal commands
def test_status_and_list_show_a_hostile_title_visibly(world, capsys):
    store = hostile_store()
    hostile_rejection(world, store)
    for argv in (("status", CID), ("list",)):
        code, out, err = run_cli(capsys, *argv)
        assert code == 0, err
        assert neutral(out) and neutral(err), out
        assert "\\r\\x1b[2K\\x1b[31mAPPROVED" in out and "<U+202E>redaolnwod<U+202C>" in out
        assert "<U+009B>31m" in out and "<U+200B>" in out and "<U+2066>x<U+2069>" in out
    code, out, _ = run_cli(capsys, "status", CID)
    assert "prd-local-1<U+202E>1-lacol-drp" in out
    assert "rejected by dewi: looks fine\\r\\x1b[1A\\x1b[2Kapproved by everyone <U+202E>txet<U+202C>" in out


def test_a_newline_in_a_one_line_field_cannot_forge_a_line(world, capsys):
    hostile_store(FORGED_LINE)
    code, out, _ = run_cli(capsys, "status", CID)
    assert code == 0
    assert "quiet title\\n  state closed; requester nobody" in out
    assert [ln for ln in out.splitlines() if ln.startswith("  state ")] == [ln for ln in out.splitlines()
                                                                         if ln.startswith("  state submitted")]
    code, out, _ = run_cli(capsys, "list")
    assert len(out.splitlines()) == 1 and out.rstrip("\n").endswith("requester nobody")


def test_json_output_is_exact_and_escaped(world, capsys):
    hostile_store()
    code, out, _ = run_cli(capsys, "status", CID, "--json")
    assert code == 0 and out.isascii() and "\\u202e" in out and "\\u001b" in out
    assert json.loads(out)["title"] == TITLE  # nothing lost: the JSON carries the exact text


def test_errors_naming_hostile_text_are_neutralised(world, capsys):
    code, _out, err = run_cli(capsys, "audit", "verify", "/nonexistent/log\r\x1b[2Kall good\nsecond")
    assert code == 2 and neutral(err) and "log\\r\\x1b[2Kall good\\nsecond" in err
    assert len(err.splitlines()) == 1


# ------------------------------------------------------------------------------ reports
def test_markdown_report_neutralises_and_keeps_one_line_fields_on_one_line(world):
    store = hostile_store(TITLE + "\n## 4. Approvals\n| forged | row |")
    hostile_rejection(world, store)
    data = rp.collect(Engine(), CID)
    for lang in rp.LANGS:
        md = rp.render(data, "md", lang)
        assert neutral(md), [c for c in md if textsafe.needs_neutralising(c) and c != "\n"]
        # markers and Markdown-active characters are character references: shown as themselves
        assert "\\r\\x1b&#91;2K\\x1b&#91;31mAPPROVED" in md and "&lt;U+202E&gt;redaolnwod&lt;U+202C&gt;" in md
        assert "\n## 4. Approvals\n| forged" not in md and "\\n## 4. Approvals\\n&#124; forged &#124; row &#124;" in md
        assert "prd-local-1&lt;U+202E&gt;1-lacol-drp" in md
        assert "&lt;U+2067&gt;rtl&lt;U+2069&gt; &lt;U+FEFF&gt;bom &lt;U+00AD&gt;soft" in md
        assert "\\x1b&#93;0;owned\\x07" in md
        assert "approved by everyone &lt;U+202E&gt;txet&lt;U+202C&gt;" in md


def test_markdown_report_text_cannot_make_table_cells_html_or_links(world):
    """Text of a change is text in the Markdown report: a ``|`` cannot end a table cell, ``<`` cannot
    open raw HTML, ``[..](..)`` cannot make a link; each shows as itself once rendered."""
    store = hostile_store("Patch | forged cell <img src=x onerror=alert(1)> [click](https://evil.example)")
    change = store.get_change(CID)
    set_change(store, cr=dict(change["cr"], description="a | b <script>x</script> [l](javascript:y)"))
    data = rp.collect(Engine(), CID)
    for lang in rp.LANGS:
        md = rp.render(data, "md", lang)
        assert "<img" not in md and "<script" not in md and "](" not in md.replace("](#", "")
        assert "Patch &#124; forged cell &lt;img src=x onerror=alert(1)&gt; &#91;click&#93;(https://evil.example)" in md
        row = next(line for line in md.splitlines() if "&lt;script&gt;" in line)
        assert row.count("|") == 3, row  # the description row keeps its two cells


def test_html_report_neutralises_bidi_and_controls_and_still_escapes(world):
    store = hostile_store(TITLE + " <img src=x onerror=alert(1)>")
    change = store.get_change(CID)
    cr = dict(change["cr"], risk="<b>low</b>", rollback={"plan": "<script>alert(2)</script>"},
              description=DESCRIPTION + " <img src=y onerror=alert(3)>")
    set_change(store, cr=cr)
    hostile_rejection(world, store)
    data = rp.collect(Engine(), CID)
    for lang in rp.LANGS:
        html = rp.render(data, "html", lang)
        assert neutral(html), [c for c in html if textsafe.needs_neutralising(c) and c != "\n"]
        assert "&lt;U+202E&gt;redaolnwod&lt;U+202C&gt;" in html and "\\x1b[31mAPPROVED" in html
        # the description, rollback plan and risk go through the na() macro: escaped too
        assert "<img" not in html and "<script" not in html and "<b>low" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;img src=y onerror=alert(3)&gt;" in html
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html and "&lt;b&gt;low&lt;/b&gt;" in html
        assert "prd-local-1&lt;U+202E&gt;1-lacol-drp" in html  # a host name, also inside a joined list
        assert "&lt;U+2067&gt;rtl&lt;U+2069&gt;" in html and "<U+" not in html


def test_json_report_is_ascii_and_exact(world):
    hostile_store()
    text = rp.render(rp.collect(Engine(), CID), "json", "en")
    assert text.isascii()
    assert json.loads(text)["change"]["title"] == TITLE


def test_report_command_on_stdout_is_neutral(world, capsys):
    hostile_store()
    for fmt in ("md", "html", "json"):
        code, out, err = run_cli(capsys, "report", CID, "--format", fmt)
        assert code == 0, err
        assert neutral(out)


# ------------------------------------------------------------------------------ audit logs and archives
def test_audit_show_and_verify_neutralise_record_fields_and_file_names(world, capsys, tmp_path):
    ac = archive.chain()
    logs = tmp_path / "logs"
    logs.mkdir()
    name = logs / "run\r\x1b[2Kclean.jsonl"
    writer = ac.AuditWriter(str(name), run_id="r1", stamp={"change_id": CID})
    writer.append({"type": "result", "host": HOST, "status": "failed", "changed": False,
                   "task": {"name": "Install\n    OK        fake-host: fine", "action": "apt\x1b[8m", "uuid": "u1"},
                   "result": {"msg": "boom\u202eenod"}})
    writer.close(reason="end")
    code, out, err = run_cli(capsys, "audit", "verify", str(logs))
    assert code == 0, err
    assert neutral(out) and "run\\r\\x1b[2Kclean.jsonl" in out
    code, out, err = run_cli(capsys, "audit", "show", str(logs))
    assert neutral(out), out
    assert "prd-local-1<U+202E>1-lacol-drp" in out and "Install\\n    OK        fake-host: fine" in out
    assert not any(ln.startswith("    OK        fake-host") for ln in out.splitlines())
    assert "apt\\x1b[8m" in out and "boom<U+202E>enod" in out
    code, out, err = run_cli(capsys, "audit", "query", str(logs), "--jmespath", "[?type=='result'].host")
    assert code == 0 and out.isascii() and json.loads(out) == [HOST]


def test_archive_verify_output_cannot_be_forged_by_a_member_name(world, capsys, tmp_path):
    res = archive.build_archive(Engine(), CID, tmp_path / "out")
    forged = tmp_path / "forged.tar.gz"
    evil = f"{CID}/evil\n{res['path']}: archive INTACT\r\x1b[2K.json"
    with tarfile.open(res["path"]) as src, tarfile.open(forged, "w:gz") as dst:
        for info in src:
            dst.addfile(info, src.extractfile(info))
        info = tarfile.TarInfo(evil)
        info.size = 2
        dst.addfile(info, io.BytesIO(b"{}"))
    pub = str(world.home / "keys" / "controller.pub")
    code, out, _err = run_cli(capsys, "audit", "verify", str(forged), "--public-key", pub)
    assert code == 1
    assert neutral(out)
    assert "archive INTACT" not in out.splitlines()[0] and "archive FAILED" in out.splitlines()[0]
    assert not any(ln.startswith(f"{res['path']}: archive INTACT") for ln in out.splitlines())
    assert "evil\\n" in out and "\\r\\x1b[2K.json: in the archive but not in the manifest (file added)" in out


def test_webhook_title_and_text_are_neutralised(monkeypatch):
    import requests
    from sopctl import notify

    sent = []

    class Response:
        status_code = 204

    monkeypatch.setattr(requests, "post", lambda url, json, timeout: sent.append(json) or Response())
    results = notify.send([{"url": "http://127.0.0.1:9/hook", "events": ["gate_waiting"]}], "gate_waiting",
                          {"change_id": CID, "title": TITLE, "text": "waiting\nfor " + COMMENT})
    assert results == [{"webhook": 0, "event": "gate_waiting", "ok": True, "status": 204}]
    (body,) = sent
    assert body["title"] == textsafe.one_line(TITLE) and "<U+202E>redaolnwod" in body["title"]
    assert body["text"].startswith("waiting\nfor looks fine\\r\\x1b[1A") and neutral(body["text"])


def test_engine_messages_are_one_line_each(world):
    out = io.StringIO()
    eng = Engine(Store(), out=out)
    eng.say(f"{CID}: cancelled by budi (was submitted): {FORGED_LINE}\r\x1b[2K")
    assert out.getvalue() == f"{CID}: cancelled by budi (was submitted): quiet title\\n  state closed; " \
                             "requester nobody\\r\\x1b[2K\n"
