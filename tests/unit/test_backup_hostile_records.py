"""Hostile backup stores (issue 15): forged snapshot records (class 3) and store files that are not regular
files, too large, truncated or malformed.  Every refusal names what is wrong and writes nothing.

The byte-by-byte archive helpers come from test_backup_hostile.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from ansible_collections.itsop.change.plugins.module_utils._backup import extract as extract_step
from ansible_collections.itsop.change.plugins.module_utils._backup import pipes
from ansible_collections.itsop.change.plugins.module_utils._backup import restore as restore_step
from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import RECORD_LIMIT
from ansible_collections.itsop.change.plugins.module_utils._backup.record import record_key_bytes, sign_record
from ansible_collections.itsop.change.plugins.module_utils._backup.restore import restore_snapshot
from ansible_collections.itsop.change.plugins.module_utils._backup.selector import find_snapshot
from ansible_collections.itsop.change.plugins.module_utils._backup.snapshot import create_snapshot
from ansible_collections.itsop.change.plugins.module_utils._backup.tools import HostTar
from ansible_collections.itsop.change.plugins.module_utils._backup.verify import verify_snapshot
from tests.unit.test_backup_hostile import END, KEY, entry, forge, reg, restore_refused, run_module

pytestmark = pytest.mark.skipif(HostTar().gnu() is None, reason="GNU tar is not installed")


# --------------------------------------------------------------------------- class 3: forged records

@pytest.fixture
def signed(tmp_path: Path) -> dict:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "conf").write_text("listen = 8080\n")
    _c, snap = create_snapshot([str(tree)], str(tmp_path / "store"), "SIG", compression="gzip", packages=False,
                               do_fsync=False, record_key=KEY)
    return snap


def _rewrite_consistently(snap: dict, new_conf: bytes) -> None:
    """What whoever can write the store can do without the key: new archive, new manifest, matching hashes."""
    import gzip
    import io
    import tarfile

    snap_dir = Path(snap["snapshot_dir"])
    record = json.loads((snap_dir / "snapshot.json").read_text())
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        lines = (snap_dir / "manifest.jsonl").read_text().splitlines()
        for line in lines[1:3]:
            item = json.loads(line)
            info = tarfile.TarInfo(item["path"].lstrip("/"))
            info.mode, info.uid, info.gid, info.mtime = int(item["mode"], 8), item["uid"], item["gid"], item["mtime"]
            if item["type"] == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(new_conf)
                tar.addfile(info, io.BytesIO(new_conf))
    archive = gzip.compress(raw.getvalue())
    (snap_dir / "archive.tar.gz").write_bytes(archive)
    lines = (snap_dir / "manifest.jsonl").read_text().splitlines()
    conf = json.loads(lines[2])
    conf.update(size=len(new_conf), sha256=hashlib.sha256(new_conf).hexdigest())
    lines[2] = json.dumps(conf)
    (snap_dir / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    record["archive"]["sha256"] = hashlib.sha256(archive).hexdigest()
    record["archive"]["size"] = len(archive)
    record["manifest"]["sha256"] = hashlib.sha256((snap_dir / "manifest.jsonl").read_bytes()).hexdigest()
    (snap_dir / "snapshot.json").write_text(json.dumps(record))


def test_signed_snapshot_verifies_and_restores_with_the_key(tmp_path: Path, signed: dict) -> None:
    record = json.loads(Path(signed["record_path"]).read_text())
    assert record["signature"]["alg"] == "HMAC-SHA256" and signed["record_authenticated"] is True
    _c, verdict = verify_snapshot(signed["snapshot_dir"], tmpdir=str(tmp_path), record_key=KEY)
    assert verdict["verdict"] == "passed" and verdict["record_authenticated"] is True
    changed, result = restore_snapshot(signed["snapshot_dir"], root=str(tmp_path / "alt"), record_key=KEY)
    assert changed and result["record_authenticated"] is True


def test_rewritten_snapshot_is_detected_by_verify_and_restore(tmp_path: Path, signed: dict) -> None:
    """Issue 15 (3): archive, manifest and record rewritten consistently; only the key tells."""
    _rewrite_consistently(signed, b"listen = 6666\n")
    _c, unkeyed = verify_snapshot(signed["snapshot_dir"], tmpdir=str(tmp_path), record_result=False)
    assert unkeyed["verdict"] == "passed"  # without the key the forgery is self-consistent
    with pytest.raises(BackupError, match="fails its HMAC check"):
        verify_snapshot(signed["snapshot_dir"], tmpdir=str(tmp_path), record_key=KEY)
    root = tmp_path / "alt"
    with pytest.raises(BackupError, match="fails its HMAC check"):
        restore_snapshot(signed["snapshot_dir"], root=str(root), record_key=KEY)
    assert not root.exists()


@pytest.mark.parametrize("tamper", ["drop-signature", "other-key", "edit-one-field", "mac-of-another-record"])
def test_tampered_record_is_refused_with_a_key(tmp_path: Path, signed: dict, tamper: str) -> None:
    path = Path(signed["record_path"])
    record = json.loads(path.read_text())
    expect = "fails its HMAC check"
    if tamper == "drop-signature":
        del record["signature"]
        expect = "is not signed"
    elif tamper == "other-key":
        sign_record(record, b"x" * 40)
        expect = "it names key"
    elif tamper == "edit-one-field":
        record["paths"] = ["/etc"]
    else:
        other = dict(record, snapshot_id="20990101T000000Z-ffffffff")
        record["signature"] = sign_record(other, record_key_bytes(KEY))["signature"]
    path.write_text(json.dumps(record))
    with pytest.raises(BackupError, match=expect):
        restore_snapshot(signed["snapshot_dir"], root=str(tmp_path / "alt"), record_key=KEY)
    with pytest.raises(BackupError, match=expect):
        verify_snapshot(signed["snapshot_dir"], tmpdir=str(tmp_path), record_key=KEY)
    assert not (tmp_path / "alt").exists()


def test_signed_record_moved_to_another_snapshot_directory_is_refused(tmp_path: Path, signed: dict) -> None:
    snap_dir = Path(signed["snapshot_dir"])
    moved = snap_dir.parent / "20990101T000000Z-ffffffff"
    shutil.copytree(snap_dir, moved)
    with pytest.raises(BackupError, match="belongs to snapshot"):
        restore_snapshot(str(moved), root=str(tmp_path / "alt"), record_key=KEY)


def test_reuse_existing_refuses_a_forged_record_and_skips_an_unsigned_one(tmp_path: Path, signed: dict) -> None:
    tree = str(tmp_path / "tree")
    args = {"compression": "gzip", "packages": False, "do_fsync": False, "reuse_existing": True, "record_key": KEY}
    changed, again = create_snapshot([tree], str(tmp_path / "store"), "SIG", **args)
    assert changed is False and again["snapshot_id"] == signed["snapshot_id"] and again["record_authenticated"]
    _rewrite_consistently(signed, b"listen = 6666\n")
    with pytest.raises(BackupError, match="fails its HMAC check"):
        create_snapshot([tree], str(tmp_path / "store"), "SIG", **args)
    shutil.rmtree(signed["snapshot_dir"])
    _c, plain = create_snapshot([tree], str(tmp_path / "store"), "SIG", compression="gzip", packages=False,
                                do_fsync=False)
    changed, fresh = create_snapshot([tree], str(tmp_path / "store"), "SIG", **args)
    assert changed is True and fresh["snapshot_id"] != plain["snapshot_id"]
    assert any("not signed" in w for w in fresh["warnings"])


@pytest.mark.parametrize("key", ["short", " " * 40, "k" * 31])
def test_short_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(BackupError, match="record_key is too short"):
        create_snapshot([str(tmp_path)], str(tmp_path / "store"), "K", packages=False, record_key=key)
    assert not (tmp_path / "store").exists()


def test_the_key_is_never_written_to_a_result_the_record_or_the_archive(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_text("x\n")
    store = tmp_path / "store"
    snap, out1 = run_module("backup_snapshot", {"paths": [str(tree)], "dest": str(store), "label": "K",
                                                "package_state": False, "record_key": KEY, "compression": "gzip"},
                            tmp_path)
    assert snap["changed"] and snap["record_authenticated"], snap
    verify, out2 = run_module("backup_verify", {"snapshot_path": snap["snapshot_dir"], "record_key": KEY}, tmp_path)
    restore, out3 = run_module("backup_restore", {"snapshot_path": snap["snapshot_dir"], "record_key": KEY,
                                                  "root": str(tmp_path / "alt")}, tmp_path)
    assert verify["verdict"] == "passed" and restore["record_authenticated"] is True, (verify, restore)
    for text in (out1, out2, out3):
        assert KEY not in text
    import gzip

    files = [p for p in store.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"archive.tar.gz", "manifest.jsonl", "snapshot.json", "verify.json"}
    for path in files:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        assert KEY.encode() not in data, path
    assert snap["invocation"]["module_args"]["record_key"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


# --------------------------------------------------------------------------- store files: regular, bounded

@pytest.mark.parametrize("which", ["snapshot.json", "manifest.jsonl", "archive.tar"])
def test_a_fifo_in_the_store_is_refused_without_blocking(tmp_path: Path, which: str) -> None:
    snap = forge(tmp_path, reg(b"x/a") + END, [entry("/x/a")])
    (snap / which).unlink()
    os.mkfifo(snap / which)
    outcome = {}

    def attempt() -> None:
        try:
            restore_snapshot(str(snap), root=str(tmp_path / "root"))
        except BackupError as exc:
            outcome["msg"] = exc.msg
        try:
            _c, verdict = verify_snapshot(str(snap), tmpdir=str(tmp_path), record_result=False)
            outcome["verify"] = "; ".join(verdict["failures"])
        except BackupError as exc:
            outcome["verify"] = exc.msg

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "reading a FIFO from the store blocked"
    for msg in (outcome["msg"], outcome["verify"]):
        assert "not a regular file" in msg and which in msg, msg
    assert not (tmp_path / "root").exists()


def test_oversized_or_duplicate_key_record_is_refused(tmp_path: Path) -> None:
    snap = forge(tmp_path, reg(b"x/a") + END, [entry("/x/a")])
    text = (snap / "snapshot.json").read_text()
    (snap / "snapshot.json").write_text(text[:-1] + ', "label": "OTHER"}')
    with pytest.raises(BackupError, match="duplicate key"):
        verify_snapshot(str(snap))
    with open(snap / "snapshot.json", "wb") as handle:
        handle.truncate(RECORD_LIMIT + 1)
    with pytest.raises(BackupError, match="larger than the limit"):
        restore_snapshot(str(snap), root=str(tmp_path / "root"))


def test_a_record_copied_under_another_label_is_not_taken_for_it(tmp_path: Path, signed: dict) -> None:
    store = tmp_path / "store"
    shutil.copytree(signed["snapshot_dir"], store / "OTHER" / signed["snapshot_id"])
    with pytest.raises(BackupError, match="records the label 'SIG'"):
        find_snapshot(str(store), "OTHER", signed["snapshot_id"])
    with pytest.raises(BackupError, match="no complete snapshot for label OTHER"):
        find_snapshot(str(store), "OTHER")


def test_a_truncated_compressed_stream_is_reported_as_such(tmp_path: Path, signed: dict) -> None:
    """A damaged gzip archive whose recorded hash was forged: the decompressor's error is the reason given."""
    archive = Path(signed["archive_path"])
    archive.write_bytes(archive.read_bytes()[:-40])
    record = json.loads(Path(signed["record_path"]).read_text())
    record["archive"]["sha256"] = hashlib.sha256(archive.read_bytes()).hexdigest()
    Path(signed["record_path"]).write_text(json.dumps(record))
    with pytest.raises(BackupError, match=r"decompressing .* failed"):
        restore_snapshot(signed["snapshot_dir"], root=str(tmp_path / "alt"))
    _c, verdict = verify_snapshot(signed["snapshot_dir"], tmpdir=str(tmp_path), record_result=False)
    assert verdict["verdict"] == "failed" and "decompressing" in verdict["failures"][0], verdict["failures"]


@pytest.mark.parametrize("damage,expect", [
    (lambda r, m: r.pop("totals"), "totals must hold the integers"),
    (lambda r, m: r.update(totals={"entries": "1", "files": 1, "bytes": 0}), "totals must hold the integers"),
    (lambda r, m: r["archive"].pop("sha256"), "archive.sha256 is missing"),
    (lambda r, m: r.update(label=["x"]), "label is missing or not a string"),
    (lambda r, m: r.update(archive="archive.tar"), "archive is not an object"),
    (lambda r, m: m[1].update(size="6"), "manifest says '6'"),
    (lambda r, m: m[1].pop("uid"), "the entry for '/x/a' is malformed"),
    (lambda r, m: m[1].update(path=["/x/a"]), "no path or type"),
])
def test_malformed_record_or_manifest_gives_a_clear_error(tmp_path: Path, damage, expect: str) -> None:
    snap = forge(tmp_path, reg(b"x/a") + END, [entry("/x/a")])
    record = json.loads((snap / "snapshot.json").read_text())
    lines = [json.loads(x) for x in (snap / "manifest.jsonl").read_text().splitlines()]
    damage(record, lines)
    (snap / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if isinstance(record.get("manifest"), dict):
        record["manifest"]["sha256"] = hashlib.sha256((snap / "manifest.jsonl").read_bytes()).hexdigest()
    (snap / "snapshot.json").write_text(json.dumps(record))
    root = tmp_path / "root"
    root.mkdir()
    (root / "x").mkdir()
    (root / "x" / "a").write_text("other\n")  # a target to compare with
    with pytest.raises(BackupError, match=re.escape(expect)):
        restore_snapshot(str(snap), root=str(root))
    try:
        _c, verdict = verify_snapshot(str(snap), tmpdir=str(tmp_path), record_result=False)
    except BackupError as exc:
        assert expect in exc.msg
    else:
        assert verdict["verdict"] == "failed" and any(expect in f for f in verdict["failures"]), verdict
    assert (root / "x" / "a").read_text() == "other\n"


def test_a_refusal_early_in_a_compressed_stream_is_reported_as_the_refusal(tmp_path: Path, monkeypatch) -> None:
    """The scan stops at the bad member and closes the decompressor's pipe: its SIGPIPE is not the reason."""
    import gzip
    import time

    real_stop = pipes.stop

    def late_stop(*procs) -> None:  # let the decompressor hit the closed pipe first (the race, made certain)
        time.sleep(0.3)
        real_stop(*procs)

    monkeypatch.setattr(restore_step, "stop", late_stop)  # the scan before a restore
    monkeypatch.setattr(extract_step, "stop", late_stop)  # the extraction of verify

    archive = reg(b"x/../../evil") + reg(b"x/big", os.urandom(6 * 1024 * 1024)) + END
    snap = forge(tmp_path, archive, [entry("/x/a"), entry("/x/big")])
    packed = gzip.compress(archive, compresslevel=1)
    (snap / "archive.tar").unlink()
    (snap / "archive.tar.gz").write_bytes(packed)
    record = json.loads((snap / "snapshot.json").read_text())
    record["compression"] = "gzip"
    record["archive"] = {"name": "archive.tar.gz", "sha256": hashlib.sha256(packed).hexdigest(), "size": len(packed)}
    (snap / "snapshot.json").write_text(json.dumps(record))
    for _ in range(2):
        restore_refused(snap, tmp_path / "root", "contains '..'")
        _c, verdict = verify_snapshot(str(snap), tmpdir=str(tmp_path), record_result=False)
        assert verdict["failures"] and "contains '..'" in verdict["failures"][0], verdict["failures"]
    assert not (tmp_path / "root").exists()
