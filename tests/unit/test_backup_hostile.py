"""Hostile archives and names for the backup modules (issue 15): every refusal names what is wrong and writes nothing.

Classes: a restore writing outside its root (2), verify and restore disagreeing on an archive (8), names
that are not UTF-8 and sparse files in results (9).  Archives here are written byte by byte, so headers can
be combined the way an attacker would (GNU long names next to pax paths, two pax headers, bad checksums).
Forged records and store files that are not regular files: test_backup_hostile_records.py (it imports the
archive helpers from here).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.itsop.change.plugins.module_utils import backup_tarscan as ts
from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import FORMAT_MANIFEST, FORMAT_RECORD
from ansible_collections.itsop.change.plugins.module_utils._backup.names import safe_result
from ansible_collections.itsop.change.plugins.module_utils._backup.record import record_key_bytes, sign_record
from ansible_collections.itsop.change.plugins.module_utils._backup.restore import restore_snapshot
from ansible_collections.itsop.change.plugins.module_utils._backup.snapshot import create_snapshot
from ansible_collections.itsop.change.plugins.module_utils._backup.tools import HostTar
from ansible_collections.itsop.change.plugins.module_utils._backup.verify import verify_snapshot
from tests.helpers import COLLECTIONS

pytestmark = pytest.mark.skipif(HostTar().gnu() is None, reason="GNU tar is not installed")

KEY = "k" * 16 + "0123456789abcdef0123456789abcdef"
SID = "20250101T000000Z-00000000"


# --------------------------------------------------------------------------- raw tar writing

def hdr(name: bytes, flag: bytes, size: int = 0, link: bytes = b"", *, magic: bytes = b"ustar\x0000",
        prefix: bytes = b"", size_field: bytes | None = None, bad_checksum: bool = False) -> bytes:
    buf = bytearray(512)
    buf[0:len(name[:100])] = name[:100]
    buf[100:108] = b"0000644\0"
    buf[108:116] = b"0000000\0"
    buf[116:124] = b"0000000\0"
    buf[124:136] = size_field if size_field is not None else b"%011o\0" % size
    buf[136:148] = b"00000000000\0"
    buf[156:157] = flag
    buf[157:157 + len(link[:100])] = link[:100]
    buf[257:265] = magic
    buf[345:345 + len(prefix[:155])] = prefix[:155]
    buf[148:156] = b"        "
    buf[148:156] = b"%06o\0 " % (sum(buf) + (1 if bad_checksum else 0))
    return bytes(buf)


def pad(data: bytes) -> bytes:
    return data + b"\0" * ((-len(data)) % 512)


def rec(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(b"%d" % n) + len(body) != n:
        n += 1
    return b"%d" % n + body


def pax(*records: tuple[bytes, bytes], flag: bytes = b"x") -> bytes:
    data = b"".join(rec(k, v) for k, v in records)
    return hdr(b"PaxHeaders/x", flag, len(data)) + pad(data)


def gnu_long(name: bytes, flag: bytes = b"L") -> bytes:
    return hdr(b"././@LongLink", flag, len(name) + 1, magic=b"ustar  \0") + pad(name + b"\0")


def reg(name: bytes, data: bytes = b"pwned\n", **kw) -> bytes:
    return hdr(name, b"0", len(data), **kw) + pad(data)


def dirm(name: bytes) -> bytes:
    return hdr(name, b"5")


def sym(name: bytes, target: bytes) -> bytes:
    return hdr(name, b"2", link=target)


def hard(name: bytes, target: bytes) -> bytes:
    return hdr(name, b"1", link=target)


END = b"\0" * 1024


def entry(path: str, kind: str = "file", **extra) -> dict:
    out = {"path": path, "type": kind, "mode": "0644", "uid": 0, "gid": 0, "owner": "root", "group": "root",
           "mtime": 0}
    if kind == "file":
        out.setdefault("size", len(b"pwned\n"))
        out.setdefault("sha256", hashlib.sha256(b"pwned\n").hexdigest())
    out.update(extra)
    return out


def forge(tmp_path: Path, archive: bytes, entries: list[dict], *, key: str | None = None,
          paths: list[str] | None = None) -> Path:
    """A snapshot directory with a crafted archive whose record hashes are consistent (what a store writer can do)."""
    snap = tmp_path / "store" / "EVIL" / SID
    snap.mkdir(parents=True)
    (snap / "archive.tar").write_bytes(archive)
    manifest = snap / "manifest.jsonl"
    lines = [{"format": FORMAT_MANIFEST, "snapshot_id": SID, "paths": paths or ["/x"]}, *entries,
             {"end": True, "totals": {}}]
    manifest.write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in lines))
    record = {"format": FORMAT_RECORD, "snapshot_id": SID, "label": "EVIL", "created_epoch": 0,
              "compression": "none", "paths": paths or ["/x"],
              "archive": {"name": "archive.tar", "sha256": hashlib.sha256(archive).hexdigest(), "size": len(archive)},
              "manifest": {"name": "manifest.jsonl", "sha256": hashlib.sha256(manifest.read_bytes()).hexdigest()},
              "packages": None, "totals": {"entries": len(entries), "files": len(entries), "bytes": 0}}
    if key:
        sign_record(record, record_key_bytes(key))
    (snap / "snapshot.json").write_text(json.dumps(record))
    return snap


def tree_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside every restore root; nothing may ever appear in it."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


def restore_refused(snap: Path, root: Path, expect: str, **kw) -> str:
    with pytest.raises(BackupError) as info:
        restore_snapshot(str(snap), root=str(root), **kw)
    assert expect in info.value.msg, info.value.msg
    return info.value.msg


# --------------------------------------------------------------------------- class 2: outside the root

def test_hard_link_target_through_a_symlink_already_in_the_root_is_refused(tmp_path: Path, outside: Path) -> None:
    """Issue 15 (2a): root holds etc -> /elsewhere, member h links to etc/secret."""
    (outside / "secret").write_text("outside the root\n")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(str(outside), root / "etc")
    snap = forge(tmp_path, hard(b"h", b"etc/secret") + END,
                 [entry("/h", "hardlink", link="/etc/secret", size=17,
                        sha256=hashlib.sha256(b"outside the root\n").hexdigest())])
    msg = restore_refused(snap, root, "leading outside")
    assert "'h' -> 'etc/secret'" in msg
    assert not (root / "h").exists() and os.stat(outside / "secret").st_nlink == 1
    assert tree_files(root) == ["etc"]


def test_hard_link_to_a_symlink_in_the_root_leading_out_is_refused(tmp_path: Path, outside: Path) -> None:
    (outside / "secret").write_text("x\n")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(str(outside / "secret"), root / "s")
    snap = forge(tmp_path, hard(b"h", b"s") + END, [entry("/h", "hardlink", link="/s", size=2)])
    restore_refused(snap, root, "leading outside")
    assert not (root / "h").exists()


def test_directory_member_over_a_symlink_leading_out_is_refused(tmp_path: Path, outside: Path) -> None:
    """GNU tar would keep the symlink as the directory and set the directory's mode and owner through it."""
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(str(outside), root / "d")
    before = os.stat(outside).st_mode
    snap = forge(tmp_path, dirm(b"d/") + END, [entry("/d", "dir", mode="0777")])
    restore_refused(snap, root, "leading outside")
    assert os.stat(outside).st_mode == before


# Header combinations on which two tar readers disagree (found with Python's tarfile and GNU tar 1.34:
# "L then x" -> tarfile takes the GNU name, GNU tar the pax path; two x or two L -> first vs last).
# The manifest lists the name a lenient reader would see; GNU tar would write evil/pwned through the
# symlink "evil" that already sits in the root and points outside.
DISAGREE = {
    "gnu-longname-then-pax-path": (gnu_long(b"x/ok") + pax((b"path", b"evil/pwned")) + reg(b"x/ok"), "type b'L'"),
    "pax-path-then-gnu-longname": (pax((b"path", b"evil/pwned")) + gnu_long(b"x/ok") + reg(b"x/ok"), "type b'L'"),
    "two-pax-headers": (pax((b"path", b"x/ok")) + pax((b"path", b"evil/pwned")) + reg(b"x/ok"),
                        "two pax extended headers"),
    "two-gnu-longnames": (gnu_long(b"x/ok") + gnu_long(b"evil/pwned") + reg(b"x/ok"), "type b'L'"),
    "pax-key-twice": (pax((b"path", b"x/ok"), (b"path", b"evil/pwned")) + reg(b"x/ok"), "appears twice"),
    "global-pax-header": (pax((b"path", b"evil/pwned"), flag=b"g") + reg(b"x/ok"), "type b'g'"),
    "gnu-longlink-vs-pax-linkpath": (gnu_long(b"ok", b"K") + pax((b"linkpath", b"/tmp")) + sym(b"x/ok", b"ok"),
                                     "type b'K'"),
    "bad-checksum-in-the-middle": (reg(b"x/ok") + reg(b"evil/pwned", bad_checksum=True), "bad checksum"),
    "lone-zero-block": (reg(b"x/ok") + b"\0" * 512 + reg(b"evil/pwned"), "lone zero block"),
    "size-with-underscore": (hdr(b"x/ok", b"0", size_field=b"0000000_006\0") + pad(b"pwned\n"), "not plain octal"),
    "size-with-sign": (hdr(b"x/ok", b"0", size_field=b"+0000000006\0") + pad(b"pwned\n"), "not plain octal"),
    "size-with-digit-8": (hdr(b"x/ok", b"0", size_field=b"00000000008\0") + pad(b"pwned\n"), "not plain octal"),
    "data-after-a-directory": (hdr(b"x/ok/", b"5", 512) + reg(b"evil/pwned", b"x" * 6)[:512] + b"\0" * 512,
                               "bytes of data on a member of type dir"),
    "file-name-with-trailing-slash": (reg(b"x/ok/"), "is not a directory"),
    "gnu-magic": (reg(b"x/ok", magic=b"ustar  \0"), "not a POSIX ustar header"),
    "ustar-prefix-vs-pax-path": (pax((b"path", b"x/ok")) + reg(b"pwned", prefix=b"evil"), None),
    "nul-in-pax-path": (pax((b"path", b"x/ok\0/../../evil/pwned")) + reg(b"x/ok"), "NUL byte"),
    "unknown-pax-key": (pax((b"path", b"x/ok"), (b"GNU.sparse.name", b"evil/pwned")) + reg(b"x/ok"),
                        "is not accepted"),
    "non-canonical-name": (reg(b"x//ok"), "not canonical"),
    "dot-component": (reg(b"x/./ok"), "not canonical"),
    "truncated": (reg(b"x/ok")[:700], "ends inside a member"),
}


@pytest.mark.parametrize("case", sorted(DISAGREE))
def test_headers_two_readers_could_read_differently_are_refused(tmp_path: Path, outside: Path, case: str) -> None:
    archive, expect = DISAGREE[case]
    if case != "truncated":
        archive += END
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(str(outside), root / "evil")
    snap = forge(tmp_path, archive, [entry("/x/ok")], paths=["/x"])
    if expect is None:  # both readers take the pax path here: accepted, and written where it was checked
        changed, _result = restore_snapshot(str(snap), root=str(root), force=True)
        assert changed and (root / "x" / "ok").read_text() == "pwned\n"
        assert list(outside.iterdir()) == []
        return
    for force in (False, True):
        restore_refused(snap, root, expect, force=force)
        assert list(outside.iterdir()) == [], "written outside the root"
        assert tree_files(root) == ["evil"], "a refused restore wrote something"
    # verify reads the archive with the same member check and fails on it too
    _changed, verdict = verify_snapshot(str(snap), tmpdir=str(tmp_path), record_result=False)
    assert verdict["verdict"] == "failed" and any(expect in f for f in verdict["failures"]), verdict["failures"]


@pytest.mark.parametrize("archive,entries,expect", [
    (sym(b"x/l", b"/tmp") + reg(b"x/l/f"), [entry("/x/l", "symlink", target="/tmp"), entry("/x/l/f")],
     "below the symlink member"),
    (sym(b"x/l", b"..") + hard(b"x/h", b"x/l/passwd"),
     [entry("/x/l", "symlink", target=".."), entry("/x/h", "hardlink", link="/x/l/passwd", size=0)],
     "goes through the symlink member"),
    (sym(b"x/l", b"/etc/passwd") + hard(b"x/h", b"x/l"),
     [entry("/x/l", "symlink", target="/etc/passwd"), entry("/x/h", "hardlink", link="/x/l", size=0)],
     "goes through the symlink member"),
    (hard(b"x/h", b"/etc/passwd"), [entry("/x/h", "hardlink", link="/etc/passwd", size=0)], "absolute"),
    (hard(b"x/h", b"x/../../etc/passwd"), [entry("/x/h", "hardlink", link="/etc/passwd", size=0)], "'..'"),
    (hdr(b"x/c", b"3"), [entry("/x/c", "chardev", rdev=[0, 0])], "device"),
])
def test_archive_members_leading_out_are_refused(tmp_path: Path, archive: bytes, entries: list, expect: str) -> None:
    root = tmp_path / "root"
    snap = forge(tmp_path, archive + END, entries)
    restore_refused(snap, root, expect)
    assert not root.exists(), "a refused restore must not even create its root"


def test_refused_member_never_reaches_gnu_tar_during_verify(tmp_path: Path) -> None:
    """Verify checks each chunk before tar gets it: a member below a symlink member is never extracted."""
    canary = tmp_path / "canary-dir"
    canary.mkdir()
    archive = sym(b"x/l", str(canary).encode()) + reg(b"x/l/pwned") + END
    snap = forge(tmp_path, archive, [entry("/x/l", "symlink", target=str(canary)), entry("/x/l/pwned")])
    _changed, verdict = verify_snapshot(str(snap), tmpdir=str(tmp_path), record_result=False)
    assert verdict["verdict"] == "failed" and "below the symlink member" in verdict["failures"][0]
    assert list(canary.iterdir()) == []


# Property: whatever header soup an attacker writes, an archive the strict reader accepts is extracted
# by GNU tar to exactly the names the reader reported (and their parent directories), nothing else.
NAME = st.lists(st.sampled_from([b"a", b"a", b"b", b"b", b"evil", b"\xff", b"\xc3\xa9", b"c" * 60, b"..", b".", b""]),
                min_size=1, max_size=4).map(lambda parts: b"/".join(parts))
PIECE = st.one_of(
    st.tuples(st.just("file"), NAME, st.sampled_from(["ustar", "pax", "gnu", "pax+gnu", "pax+pax"]), NAME),
    st.tuples(st.just("dir"), NAME, st.sampled_from(["ustar", "pax"]), NAME),
    st.tuples(st.just("symlink"), NAME, st.sampled_from(["ustar", "pax", "gnuK"]), NAME),
    st.tuples(st.just("hardlink"), NAME, st.sampled_from(["ustar", "pax"]), NAME),
    st.tuples(st.just("junk"), st.sampled_from([b"\0" * 512, b"global", b"badsum"]), st.just(""), st.just(b"")),
)


def _render(piece: tuple) -> bytes:
    kind, name, how, other = piece
    if kind == "junk":
        if name == b"global":
            return pax((b"path", b"evil/g"), flag=b"g")
        if name == b"badsum":
            return reg(b"evil/badsum", bad_checksum=True)
        return name
    flag = {"file": b"0", "dir": b"5", "symlink": b"2", "hardlink": b"1"}[kind]
    field = other if how in ("pax", "pax+gnu", "pax+pax") else name
    link = other if kind in ("symlink", "hardlink") else b""
    head = b""
    if how == "pax":
        head = pax((b"path", name))
    elif how == "gnu":
        head, field = gnu_long(name), b"short"
    elif how == "pax+gnu":
        head = gnu_long(other) + pax((b"path", name))
    elif how == "pax+pax":
        head = pax((b"path", other)) + pax((b"path", name))
    elif how == "gnuK":
        head = gnu_long(other, b"K")
    data = b"data\n" if kind == "file" else b""
    return head + hdr(field, flag, len(data), link) + pad(data)


class _Echo:
    """Manifest entries that match whatever member comes: the property is about names, not the manifest."""

    member = None

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        m = self.member
        text = m.name.decode("utf-8", "surrogateescape")
        out = {"path": "/" if text == "." else "/" + text, "type": m.type, "size": m.size}
        if m.type == "symlink":
            out["target"] = m.link.decode("utf-8", "surrogateescape")
        elif m.type == "hardlink":
            out["link"] = "/" + m.link.decode("utf-8", "surrogateescape")
        return out


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(PIECE, min_size=1, max_size=5))
def test_property_accepted_names_are_the_names_gnu_tar_writes(tmp_path_factory, pieces: list) -> None:
    """The restore pre-scan (strict reader + member check): what it accepts, GNU tar writes under those names."""
    work = tmp_path_factory.mktemp("prop")
    archive = b"".join(_render(p) for p in pieces) + END
    seen = []
    echo = _Echo()
    check = ts.MemberCheck(echo, allow_devices=False)

    def on_member(member) -> None:
        echo.member = member
        check(member)
        seen.append((member.name, member.type))

    reader = ts.TarReader(on_member)
    try:
        reader.feed(memoryview(archive))
        reader.close()
    except ts.ArchiveRefused as exc:
        assert exc.msg  # refused, with a reason: nothing more to check
        return
    out = work / "out"
    out.mkdir()
    proc = subprocess.run(["tar", "-x", "-f", "-", "-C", str(out), "--no-same-owner"], input=archive,
                          capture_output=True, env=dict(os.environ, LC_ALL="C"), check=False)
    written = set()
    for dirpath, dirnames, filenames in os.walk(os.fsencode(out)):
        for name in dirnames + filenames:
            written.add(os.path.relpath(os.path.join(dirpath, name), os.fsencode(out)))
    allowed = set()
    for name, _kind in seen:
        parts = name.split(b"/")
        for i in range(1, len(parts) + 1):
            allowed.add(b"/".join(parts[:i]))
    assert written <= allowed, (written - allowed, seen, proc.stderr)
    # and every file member the reader reported is where it said (unless a later member replaced it)
    files = [n for n, k in seen if k == "file"]
    if proc.returncode == 0 and files:
        assert any(os.path.lexists(os.path.join(os.fsencode(out), n)) for n in files)
    shutil.rmtree(work)


# --------------------------------------------------------------------------- class 8: verify == restore

def test_verify_fails_an_archive_with_an_ancestor_member_the_manifest_lacks(tmp_path: Path) -> None:
    """Issue 15 (8): an extra member for an ancestor of the backed-up path made verify pass and restore refuse."""
    archive = dirm(b"x/") + dirm(b"x/y/") + reg(b"x/y/f") + END
    snap = forge(tmp_path, archive, [entry("/x/y", "dir"), entry("/x/y/f")], paths=["/x/y"])
    _changed, verdict = verify_snapshot(str(snap), tmpdir=str(tmp_path), record_result=False)
    restore_msg = restore_refused(snap, tmp_path / "root", "does not match the manifest")
    assert verdict["verdict"] == "failed", verdict
    assert restore_msg in verdict["failures"], (restore_msg, verdict["failures"])
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("archive,entries,expect", [
    (reg(b"x/b") + reg(b"x/a"), [entry("/x/a"), entry("/x/b")], "does not match the manifest (expected '/x/a')"),
    (sym(b"x/a", b"t"), [entry("/x/a")], "type symlink, manifest says file"),
    (sym(b"x/a", b"t"), [entry("/x/a", "symlink", target="other")], "symlink target differs"),
    (reg(b"x/a"), [entry("/x/a"), entry("/x/b")], "fewer members than the manifest"),
    (reg(b"x/a") + reg(b"x/b"), [entry("/x/a")], "the archive has more members"),
    (reg(b"x/a", b"longer data\n"), [entry("/x/a")], "manifest says 6"),
])
def test_verify_and_restore_give_the_same_verdict_member_for_member(tmp_path: Path, archive: bytes, entries: list,
                                                                    expect: str) -> None:
    snap = forge(tmp_path, archive + END, entries)
    _changed, verdict = verify_snapshot(str(snap), tmpdir=str(tmp_path), record_result=False)
    msg = restore_refused(snap, tmp_path / "root", expect)
    assert verdict["verdict"] == "failed" and msg in verdict["failures"], verdict["failures"]


def test_a_real_snapshot_passes_both(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f").write_text("x\n")
    os.symlink("f", tree / "d" / "l")
    os.link(tree / "d" / "f", tree / "d" / "h")
    _c, snap = create_snapshot([str(tree)], str(tmp_path / "store"), "OK", compression="gzip", packages=False,
                               do_fsync=False)
    _c, verdict = verify_snapshot(snap["snapshot_dir"], tmpdir=str(tmp_path), record_result=False)
    assert verdict["verdict"] == "passed" and verdict["members_checked"] == snap["entry_count"] == 5
    changed, result = restore_snapshot(snap["snapshot_dir"], root=str(tmp_path / "alt"))
    assert changed and result["members_checked"] == 5
    assert (tmp_path / "alt" / str(tree).lstrip("/") / "d" / "h").read_text() == "x\n"


MODULES = "ansible_collections.itsop.change.plugins.modules."


def run_module(name: str, args: dict, tmp_path: Path, timeout: int = 120) -> tuple[dict, str]:
    args_file = tmp_path / f"args-{name}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc = subprocess.run([sys.executable, "-m", MODULES + name, str(args_file)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)), cwd="/", check=False,
                          timeout=timeout)
    args_file.unlink()
    return json.loads(proc.stdout), proc.stdout + proc.stderr


# --------------------------------------------------------------------------- class 9: names and sparse files

def _strict_utf8(value) -> None:
    """What the controller checks before it accepts a module result (MODULE_STRICT_UTF8_RESPONSE)."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for k, v in value.items():
            _strict_utf8(k)
            _strict_utf8(v)
    elif isinstance(value, list):
        for v in value:
            _strict_utf8(v)


def test_names_that_are_not_utf8_are_returned_escaped_and_lossless(tmp_path: Path) -> None:
    """Issue 15 (9): restore restored everything and then reported a failure on a Latin-1 file name."""
    tree = tmp_path / "tree"
    tree.mkdir()
    raw = os.fsencode(tree) + b"/caf\xe9-\\x41.conf"
    with open(raw, "wb") as handle:
        handle.write(b"x\n")
    snap, _ = run_module("backup_snapshot", {"paths": [str(tree)], "dest": str(tmp_path / "store"), "label": "N",
                                             "package_state": False}, tmp_path)
    _strict_utf8(snap)
    alt = tmp_path / "alt"
    restore, _ = run_module("backup_restore", {"snapshot_path": snap["snapshot_dir"], "root": str(alt)}, tmp_path)
    _strict_utf8(restore)
    assert restore["changed"] is True and not restore.get("failed"), restore
    shown = str(tree) + "/caf\\xe9-\\x41.conf"
    assert shown in restore["created"]
    pairs = {p["escaped"]: base64.b64decode(p["base64"]) for p in restore["escaped_names"]}
    assert pairs[shown] == raw  # the escaped form is ambiguous (a real "\x41"); the base64 is not
    assert os.path.exists(os.fsencode(alt) + raw)
    # a modified non-UTF-8 name in verify's mismatch list: escaped too
    with open(raw, "wb") as handle:
        handle.write(b"changed\n")
    back, _ = run_module("backup_restore", {"snapshot_path": snap["snapshot_dir"], "_ansible_check_mode": True,
                                            "_ansible_diff": True}, tmp_path)
    _strict_utf8(back)
    assert [m["path"] for m in back["modified"]] == [shown] and shown in back["diff"]["before"]


def test_safe_result_escapes_keys_values_and_messages() -> None:
    bad = os.fsdecode(b"/etc/\xff")
    out = safe_result({"msg": "cannot read %s" % bad, bad: [bad, {"path": bad}], "n": 1})
    _strict_utf8(out)
    assert out["msg"] == "cannot read /etc/\\xff" and out["/etc/\\xff"][1] == {"path": "/etc/\\xff"}
    assert {p["escaped"] for p in out["escaped_names"]} == {"/etc/\\xff", "cannot read /etc/\\xff"}
    assert safe_result({"ok": "é"}) == {"ok": "é"}  # nothing to escape: no escaped_names


def test_sparse_files_are_reported_and_restored_sparse(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    with open(tree / "holes.img", "wb") as handle:
        handle.truncate(8 * 1024 * 1024)
        handle.write(b"head")
    if os.stat(tree / "holes.img").st_blocks * 512 >= 8 * 1024 * 1024:
        pytest.skip("this filesystem does not keep holes")
    (tree / "dense").write_bytes(os.urandom(64 * 1024))
    _c, snap = create_snapshot([str(tree)], str(tmp_path / "store"), "SP", compression="gzip", packages=False,
                               do_fsync=False)
    assert snap["sparse_files"] == 1
    assert any("sparse" in w and "holes.img" in w for w in snap["warnings"]), snap["warnings"]
    _c, plan = restore_snapshot(snap["snapshot_dir"], root=str(tmp_path / "alt"), check_mode=True)
    assert plan["sparse_files"] == 1 and "1 of those would be restored" in plan["notes"][0]
    source = os.stat(tree / "holes.img")
    changed, result = restore_snapshot(snap["snapshot_dir"], root=str(tmp_path / "alt"))
    assert changed and result["sparse_files"] == 1 and result["sparse_restored"] == 1, result
    assert "1 restored with their holes punched again" in result["notes"][0]
    restored = tmp_path / "alt" / str(tree).lstrip("/") / "holes.img"
    st_r = restored.stat()
    assert st_r.st_size == 8 * 1024 * 1024 and restored.read_bytes()[:4] == b"head"
    assert st_r.st_blocks * 512 < 1024 * 1024, "the restored file is not sparse"
    assert int(st_r.st_mtime) == int(source.st_mtime)
    _c, verdict = verify_snapshot(snap["snapshot_dir"], tmpdir=str(tmp_path), record_result=False)
    assert verdict["verdict"] == "passed"
