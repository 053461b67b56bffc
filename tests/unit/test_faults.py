"""Issue 15, class 15: every fault ends in its documented exit code with one line, never a traceback.

A full disk (injected ENOSPC at the write call, and a real tiny tmpfs when the tests run as root)
while writing a report, an archive or the state store; a refused write (EACCES, a read-only file
system); the collection not found; the reader of the output gone (broken pipe) while a
verification prints; Ctrl-C; a bug. Nothing partial may be left in place of a good file, and a
verification never reports success because its reader went away.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
from sopctl import archive, cli, collection, textsafe
from sopctl import commands as sopctl_commands
from sopctl.errors import (
    EXIT_CODES,
    EXIT_INSTALL,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_IO,
    EXIT_OUTPUT_CLOSED,
)
from sopctl.engine import Engine
from sopctl.store import Store

from tests.fixtures.sopctl.world import SOPCTL, World

CID = "CHG-2026-9821"
ENOSPC_TEXT = os.strerror(errno.ENOSPC)


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = World(tmp_path)
    w.submit_in_process(monkeypatch, CID)
    archive.controller_key(w.home)  # the key exists before a fault is injected
    return w


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, command: str) -> str:
    """The error output is exactly one line, from sopctl, without a traceback."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"sopctl {command}: "), err
    return lines[0]


class _FullDisk:
    """A file object whose ``write`` stores half of the data, then fails with ENOSPC."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        raise OSError(errno.ENOSPC, ENOSPC_TEXT)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def inject_enospc(monkeypatch):
    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _FullDisk(real(fd, *a, **k)))


# ------------------------------------------------------------------------------ injected faults
def test_report_on_a_full_disk_keeps_the_earlier_file(world, capsys, monkeypatch, tmp_path):
    out_dir = tmp_path / "reports"
    out_dir.mkdir()
    target = out_dir / "laporan.md"
    target.write_text("GOOD REPORT\n")
    inject_enospc(monkeypatch)
    code, _, err = run_cli(capsys, "report", CID, "--output", str(target))
    assert code == EXIT_IO == 4
    line = one_line_error(err, "report")
    assert str(target) in line and ENOSPC_TEXT in line and "ENOSPC" in line
    assert target.read_text() == "GOOD REPORT\n"  # the good file is still in place
    assert sorted(p.name for p in out_dir.iterdir()) == ["laporan.md"]  # no partial temporary file


def test_archive_on_a_full_disk_leaves_nothing_and_records_nothing(world, capsys, monkeypatch, tmp_path):
    out_dir = tmp_path / "archives"
    inject_enospc(monkeypatch)
    code, _, err = run_cli(capsys, "archive", CID, "--output", str(out_dir))
    assert code == EXIT_IO
    line = one_line_error(err, "archive")
    assert f"{out_dir}/{CID}-" in line and ".tar.gz" in line and ENOSPC_TEXT in line
    assert list(out_dir.iterdir()) == []
    assert "archive_written" not in [r["type"] for r in world.audit_records(CID)]


def test_stage6_reports_on_a_full_disk_name_the_file(world, monkeypatch, tmp_path):
    from sopctl import report as rp

    inject_enospc(monkeypatch)
    with pytest.raises(OSError) as info:
        rp.report_files(Engine(), CID, tmp_path / "reports")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "reports" / "report.json")
    assert list((tmp_path / "reports").iterdir()) == []


def test_refused_write_names_the_path(world, capsys, monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(kwargs.get("dir")))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code, _, err = run_cli(capsys, "report", CID, "--output", str(tmp_path / "r.md"))
    assert code == EXIT_IO
    line = one_line_error(err, "report")
    assert str(tmp_path) in line and "Permission denied (EACCES)" in line


def test_state_store_fault_is_one_line(world, capsys, monkeypatch):
    def broken(self):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "list_changes", broken)
    code, _, err = run_cli(capsys, "list")
    assert code == EXIT_IO
    line = one_line_error(err, "list")
    assert str(world.home / "sopctl.db") in line and "database or disk is full" in line


def test_collection_not_found_is_exit_5_in_one_line(world, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(collection, "_candidates", lambda: [tmp_path / "nowhere"])
    code, _, err = run_cli(capsys, "validate", str(world.cr("CHG-2026-9822")))
    assert code == EXIT_INSTALL == 5
    assert "collection itsop.change not found" in one_line_error(err, "validate")
    code, _, err = run_cli(capsys, "audit", "verify", str(tmp_path))
    assert code == EXIT_INSTALL
    assert "SOPCTL_COLLECTIONS_PATH" in one_line_error(err, "audit verify")


def test_interrupt_is_130_and_a_bug_is_70_in_one_line(world, capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    def buggy(args):
        raise ValueError("unexpected\nsecond line \x1b[2K")

    monkeypatch.setattr(sopctl_commands, "cmd_list", interrupted)
    code, _, err = run_cli(capsys, "list")
    assert code == EXIT_INTERRUPTED == 130 and one_line_error(err, "list") == "sopctl list: interrupted"
    monkeypatch.setattr(sopctl_commands, "cmd_list", buggy)
    code, _, err = run_cli(capsys, "list", "--json")
    assert code == EXIT_INTERNAL == 70
    line = one_line_error(err, "list")
    assert "internal error: ValueError: unexpected\\nsecond line \\x1b[2K" in line and "SOPCTL_DEBUG=1" in line
    monkeypatch.setenv("SOPCTL_DEBUG", "1")
    code, out, err = run_cli(capsys, "list", "--json")
    assert code == EXIT_INTERNAL and "Traceback" in err and 'raise ValueError("unexpected' in err
    assert json.loads(out)["exit_code"] == EXIT_INTERNAL  # --json callers get the error object too


def test_every_exit_code_is_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "sopctl.md").read_text()
    table = doc[doc.index("## Exit codes"):]
    for code in EXIT_CODES:
        assert f"\n| {code} |" in table, code


# ------------------------------------------------------------------------------ broken pipe
def _log_dir(tmp_path: Path, count: int, tamper: bool) -> Path:
    ac = archive.chain()
    logs = tmp_path / ("tampered" if tamper else "intact")
    logs.mkdir()
    for i in range(count):
        w = ac.AuditWriter(str(logs / f"run-{i:03}.jsonl"), run_id=f"r{i}", stamp={"change_id": CID})
        w.append({"type": "result", "host": f"h{i}", "status": "ok", "changed": False, "task": {"name": "t"}})
        w.close(reason="end")
    if tamper:
        last = logs / f"run-{count - 1:03}.jsonl"
        last.write_text(last.read_text().replace('"h', '"H', 1))
    return logs


def _closed_stdout(world: World, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run sopctl with stdout a pipe nobody reads any more (``| head`` that has exited)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([*SOPCTL, *args], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              env=dict(world.env, **(env or {})), cwd=world.tmp, timeout=300, check=False)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_verification_with_its_reader_gone_keeps_its_result(world, tmp_path, unbuffered):
    env = {"PYTHONUNBUFFERED": "1"} if unbuffered else {}
    tampered = _log_dir(tmp_path, 60, tamper=True)  # > 8 KiB of output: the pipe breaks while printing
    proc = _closed_stdout(world, "audit", "verify", str(tampered), env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr == ""
    proc = _closed_stdout(world, "audit", "verify", str(tampered), "--json", env=env)
    assert proc.returncode == 1, proc.stderr
    intact = _log_dir(tmp_path, 60, tamper=False)
    proc = _closed_stdout(world, "audit", "verify", str(intact), env=env)
    assert proc.returncode == 0, proc.stderr


def test_archive_verification_with_its_reader_gone_keeps_its_result(world, tmp_path):
    res = archive.build_archive(Engine(), CID, tmp_path / "out")
    forged = tmp_path / "forged.tar.gz"
    with tarfile.open(res["path"]) as src, tarfile.open(forged, "w:gz") as dst:
        for info in src:
            data = src.extractfile(info).read()
            if info.name.endswith("/change.json"):
                data = data.replace(b"submitted", b"closed\x20\x20\x20")
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    pub = str(world.home / "keys" / "controller.pub")
    for env in ({}, {"PYTHONUNBUFFERED": "1"}):
        proc = _closed_stdout(world, "audit", "verify", str(forged), "--public-key", pub, env=env)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        proc = _closed_stdout(world, "audit", "verify", res["path"], "--public-key", pub, env=env)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr


def test_output_closed_before_a_result_is_a_distinct_failure(world):
    proc = _closed_stdout(world, "report", CID, "--format", "html", env={"PYTHONUNBUFFERED": "1"})
    assert proc.returncode == EXIT_OUTPUT_CLOSED == 141
    assert "output closed before the command finished (broken pipe)" in one_line_error(proc.stderr, "report")
    proc = _closed_stdout(world, "status", CID, env={"PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0 and proc.stderr == ""  # status had its result before printing it
    for args in (("--help",), ("audit", "verify", "--help")):
        proc = _closed_stdout(world, *args)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr  # no "Exception ignored ..." at exit


# ------------------------------------------------------------------------------ a real full disk (root)
@pytest.fixture
def tmpfs(tmp_path):
    """Mount tiny tmpfs file systems (root only); unmounted afterwards."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def mount(name: str, options: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_real_full_disk_report_and_archive(world, tmpfs):
    disk = tmpfs("disk", "size=8k,mode=0700")  # two pages: the good file takes one
    good = disk / "laporan.html"
    good.write_text("GOOD REPORT\n")
    proc = world.sopctl(None, "report", CID, "--format", "html", "--output", str(good))
    assert proc.returncode == EXIT_IO, proc.stderr
    line = one_line_error(proc.stderr, "report")
    assert str(good) in line and "ENOSPC" in line
    assert good.read_text() == "GOOD REPORT\n" and sorted(p.name for p in disk.iterdir()) == ["laporan.html"]
    proc = world.sopctl(None, "archive", CID, "--output", str(disk / "archive"))
    assert proc.returncode == EXIT_IO, proc.stderr
    assert ".tar.gz" in one_line_error(proc.stderr, "archive") and "ENOSPC" in proc.stderr
    assert list((disk / "archive").iterdir()) == []
    assert "archive_written" not in [r["type"] for r in world.audit_records(CID)]


def test_real_read_only_file_system(world, tmpfs):
    ro = tmpfs("ro", "ro,size=16k")
    proc = world.sopctl(None, "report", CID, "--output", str(ro / "r.md"))
    assert proc.returncode == EXIT_IO
    line = one_line_error(proc.stderr, "report")
    assert str(ro) in line and "EROFS" in line


def test_real_full_disk_under_the_state_store_loses_nothing(world, tmpfs):
    home = tmpfs("fullhome", "size=2m,mode=0700")
    shutil.copy(world.home / "config.yml", home / "config.yml")
    world.env["SOPCTL_HOME"] = str(home)
    assert world.sopctl("budi", "submit", str(world.cr(CID))).returncode == 0
    filler = _fill(home)
    for args in (("cancel", CID, "--reason", "no longer needed"), ("submit", str(world.cr("CHG-2026-9823")))):
        proc = world.sopctl("budi", *args)
        assert proc.returncode == EXIT_IO, proc.stderr
        line = one_line_error(proc.stderr, args[0])
        assert str(home) in line
    filler.unlink()
    assert world.status(CID)["state"] == "submitted"  # the failed cancel changed nothing
    db = sqlite3.connect(home / "sopctl.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [r[0] for r in db.execute("SELECT id FROM changes")] == [CID]
    db.close()
    proc = world.sopctl(None, "audit", "verify", str(home / "changes" / CID / "audit"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert world.sopctl("budi", "cancel", CID, "--reason", "no longer needed").returncode == 0


def test_a_refusal_quoting_a_comment_stays_one_line(world, capsys, monkeypatch):
    from sopctl.errors import Refusal

    def refused(args):
        raise Refusal("GATE-3", "gate plan was rejected by dewi (users): no\nsopctl run: done \x1b[32mOK")

    monkeypatch.setattr(sopctl_commands, "cmd_run", refused)
    code, _, err = run_cli(capsys, "run", CID)
    assert code == 3
    assert one_line_error(err, "run").endswith("no\\nsopctl run: done \\x1b[32mOK)")


def test_an_invalid_change_request_lists_each_field_on_its_own_line(world, capsys):
    bad = world.tmp / "bad.yml"
    bad.write_text(world.cr("CHG-2026-9824").read_text().replace("title: ", "title: \"x\\ny: \\e[2K\"\nxtitle: ", 1))
    for command, prefix in (("submit", "sopctl submit: "), ("validate", "")):
        code, _, err = run_cli(capsys, command, str(bad))
        assert code == 2 and "Traceback" not in err
        lines = err.splitlines()
        assert lines[0] == f"{prefix}{bad}: invalid change request (CR-1):"
        assert len(lines) >= 2 and all(ln.startswith("  - ") for ln in lines[1:]), lines
        assert all(textsafe.is_clean(ln) for ln in lines)


def test_atomic_write_on_a_full_disk_keeps_the_earlier_file_and_names_it(monkeypatch, tmp_path):
    from sopctl.store import atomic_write

    target = tmp_path / "change_request.json"
    atomic_write(target, "GOOD\n")
    inject_enospc(monkeypatch)
    with pytest.raises(OSError) as info:
        atomic_write(target, "NEW CONTENT " * 1000)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert target.read_text() == "GOOD\n" and [p.name for p in tmp_path.iterdir()] == ["change_request.json"]
    monkeypatch.undo()
    atomic_write(target, "NEW\n", 0o640)
    assert target.read_text() == "NEW\n" and target.stat().st_mode & 0o777 == 0o640
