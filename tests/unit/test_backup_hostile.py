"""Hostile input for the backup modules (issue 15): every refusal names what is wrong and writes nothing.

Classes: a restore writing outside its root (2), forged snapshot records (3), verify and restore
disagreeing on an archive (8), names that are not UTF-8 and sparse files in results (9), store files
that are not regular files or too large.  Archives here are written byte by byte, so headers can be
combined the way an attacker would (GNU long names next to pax paths, two pax headers, bad checksums).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.itsop.change.plugins.module_utils import backup as b
from ansible_collections.itsop.change.plugins.module_utils import backup_names as bn
from ansible_collections.itsop.change.plugins.module_utils import backup_tarscan as ts
from tests.helpers import COLLECTIONS

pytestmark = pytest.mark.skipif(b.gnu_tar() is None, reason="GNU tar is not installed")

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
    lines = [{"format": b.FORMAT_MANIFEST, "snapshot_id": SID, "paths": paths or ["/x"]}, *entries,
             {"end": True, "totals": {}}]
    manifest.write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in lines))
    record = {"format": b.FORMAT_RECORD, "snapshot_id": SID, "label": "EVIL", "created_epoch": 0,
              "compression": "none", "paths": paths or ["/x"],
              "archive": {"name": "archive.tar", "sha256": hashlib.sha256(archive).hexdigest(), "size": len(archive)},
              "manifest": {"name": "manifest.jsonl", "sha256": hashlib.sha256(manifest.read_bytes()).hexdigest()},
              "packages": None, "totals": {"entries": len(entries), "files": len(entries), "bytes": 0}}
    if key:
        b.sign_record(record, b.record_key_bytes(key))
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
    with pytest.raises(b.BackupError) as info:
        b.restore_snapshot(str(snap), root=str(root), **kw)
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
        changed, _result = b.restore_snapshot(str(snap), root=str(root), force=True)
        assert changed and (root / "x" / "ok").read_text() == "pwned\n"
        assert list(outside.iterdir()) == []
        return
    for force in (False, True):
        restore_refused(snap, root, expect, force=force)
        assert list(outside.iterdir()) == [], "written outside the root"
        assert tree_files(root) == ["evil"], "a refused restore wrote something"
    # verify reads the archive with the same member check and fails on it too
    _changed, verdict = b.verify_snapshot(str(snap), tmpdir=str(tmp_path), record_result=False)
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
    _changed, verdict = b.verify_snapshot(str(snap), tmpdir=str(tmp_path), record_result=False)
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
    _changed, verdict = b.verify_snapshot(str(snap), tmpdir=str(tmp_path), record_result=False)
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
    _changed, verdict = b.verify_snapshot(str(snap), tmpdir=str(tmp_path), record_result=False)
    msg = restore_refused(snap, tmp_path / "root", expect)
    assert verdict["verdict"] == "failed" and msg in verdict["failures"], verdict["failures"]


def test_a_real_snapshot_passes_both(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f").write_text("x\n")
    os.symlink("f", tree / "d" / "l")
    os.link(tree / "d" / "f", tree / "d" / "h")
    _c, snap = b.create_snapshot([str(tree)], str(tmp_path / "store"), "OK", compression="gzip", packages=False,
                                 do_fsync=False)
    _c, verdict = b.verify_snapshot(snap["snapshot_dir"], tmpdir=str(tmp_path), record_result=False)
    assert verdict["verdict"] == "passed" and verdict["members_checked"] == snap["entry_count"] == 5
    changed, result = b.restore_snapshot(snap["snapshot_dir"], root=str(tmp_path / "alt"))
    assert changed and result["members_checked"] == 5
    assert (tmp_path / "alt" / str(tree).lstrip("/") / "d" / "h").read_text() == "x\n"


# --------------------------------------------------------------------------- class 3: forged records

@pytest.fixture
def signed(tmp_path: Path) -> dict:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "conf").write_text("listen = 8080\n")
    _c, snap = b.create_snapshot([str(tree)], str(tmp_path / "store"), "SIG", compression="gzip", packages=False,
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
    _c, verdict = b.verify_snapshot(signed["snapshot_dir"], tmpdir=str(tmp_path), record_key=KEY)
    assert verdict["verdict"] == "passed" and verdict["record_authenticated"] is True
    changed, result = b.restore_snapshot(signed["snapshot_dir"], root=str(tmp_path / "alt"), record_key=KEY)
    assert changed and result["record_authenticated"] is True


def test_rewritten_snapshot_is_detected_by_verify_and_restore(tmp_path: Path, signed: dict) -> None:
    """Issue 15 (3): archive, manifest and record rewritten consistently; only the key tells."""
    _rewrite_consistently(signed, b"listen = 6666\n")
    _c, unkeyed = b.verify_snapshot(signed["snapshot_dir"], tmpdir=str(tmp_path), record_result=False)
    assert unkeyed["verdict"] == "passed"  # without the key the forgery is self-consistent
    with pytest.raises(b.BackupError, match="fails its HMAC check"):
        b.verify_snapshot(signed["snapshot_dir"], tmpdir=str(tmp_path), record_key=KEY)
    root = tmp_path / "alt"
    with pytest.raises(b.BackupError, match="fails its HMAC check"):
        b.restore_snapshot(signed["snapshot_dir"], root=str(root), record_key=KEY)
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
        b.sign_record(record, b"x" * 40)
        expect = "it names key"
    elif tamper == "edit-one-field":
        record["paths"] = ["/etc"]
    else:
        other = dict(record, snapshot_id="20990101T000000Z-ffffffff")
        record["signature"] = b.sign_record(other, b.record_key_bytes(KEY))["signature"]
    path.write_text(json.dumps(record))
    with pytest.raises(b.BackupError, match=expect):
        b.restore_snapshot(signed["snapshot_dir"], root=str(tmp_path / "alt"), record_key=KEY)
    with pytest.raises(b.BackupError, match=expect):
        b.verify_snapshot(signed["snapshot_dir"], tmpdir=str(tmp_path), record_key=KEY)
    assert not (tmp_path / "alt").exists()


def test_signed_record_moved_to_another_snapshot_directory_is_refused(tmp_path: Path, signed: dict) -> None:
    snap_dir = Path(signed["snapshot_dir"])
    moved = snap_dir.parent / "20990101T000000Z-ffffffff"
    shutil.copytree(snap_dir, moved)
    with pytest.raises(b.BackupError, match="belongs to snapshot"):
        b.restore_snapshot(str(moved), root=str(tmp_path / "alt"), record_key=KEY)


def test_reuse_existing_refuses_a_forged_record_and_skips_an_unsigned_one(tmp_path: Path, signed: dict) -> None:
    tree = str(tmp_path / "tree")
    args = {"compression": "gzip", "packages": False, "do_fsync": False, "reuse_existing": True, "record_key": KEY}
    changed, again = b.create_snapshot([tree], str(tmp_path / "store"), "SIG", **args)
    assert changed is False and again["snapshot_id"] == signed["snapshot_id"] and again["record_authenticated"]
    _rewrite_consistently(signed, b"listen = 6666\n")
    with pytest.raises(b.BackupError, match="fails its HMAC check"):
        b.create_snapshot([tree], str(tmp_path / "store"), "SIG", **args)
    shutil.rmtree(signed["snapshot_dir"])
    _c, plain = b.create_snapshot([tree], str(tmp_path / "store"), "SIG", compression="gzip", packages=False,
                                  do_fsync=False)
    changed, fresh = b.create_snapshot([tree], str(tmp_path / "store"), "SIG", **args)
    assert changed is True and fresh["snapshot_id"] != plain["snapshot_id"]
    assert any("not signed" in w for w in fresh["warnings"])


@pytest.mark.parametrize("key", ["short", " " * 40, "k" * 31])
def test_short_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(b.BackupError, match="record_key is too short"):
        b.create_snapshot([str(tmp_path)], str(tmp_path / "store"), "K", packages=False, record_key=key)
    assert not (tmp_path / "store").exists()


MODULES = "ansible_collections.itsop.change.plugins.modules."


def run_module(name: str, args: dict, tmp_path: Path, timeout: int = 120) -> tuple[dict, str]:
    args_file = tmp_path / f"args-{name}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc = subprocess.run([sys.executable, "-m", MODULES + name, str(args_file)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)), cwd="/", check=False,
                          timeout=timeout)
    args_file.unlink()
    return json.loads(proc.stdout), proc.stdout + proc.stderr


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
    out = bn.safe_result({"msg": "cannot read %s" % bad, bad: [bad, {"path": bad}], "n": 1})
    _strict_utf8(out)
    assert out["msg"] == "cannot read /etc/\\xff" and out["/etc/\\xff"][1] == {"path": "/etc/\\xff"}
    assert {p["escaped"] for p in out["escaped_names"]} == {"/etc/\\xff", "cannot read /etc/\\xff"}
    assert bn.safe_result({"ok": "é"}) == {"ok": "é"}  # nothing to escape: no escaped_names


def test_sparse_files_are_reported_and_restored_sparse(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    with open(tree / "holes.img", "wb") as handle:
        handle.truncate(8 * 1024 * 1024)
        handle.write(b"head")
    if os.stat(tree / "holes.img").st_blocks * 512 >= 8 * 1024 * 1024:
        pytest.skip("this filesystem does not keep holes")
    (tree / "dense").write_bytes(os.urandom(64 * 1024))
    _c, snap = b.create_snapshot([str(tree)], str(tmp_path / "store"), "SP", compression="gzip", packages=False,
                                 do_fsync=False)
    assert snap["sparse_files"] == 1
    assert any("sparse" in w and "holes.img" in w for w in snap["warnings"]), snap["warnings"]
    _c, plan = b.restore_snapshot(snap["snapshot_dir"], root=str(tmp_path / "alt"), check_mode=True)
    assert plan["sparse_files"] == 1 and "1 of those would be restored" in plan["notes"][0]
    source = os.stat(tree / "holes.img")
    changed, result = b.restore_snapshot(snap["snapshot_dir"], root=str(tmp_path / "alt"))
    assert changed and result["sparse_files"] == 1 and result["sparse_restored"] == 1, result
    assert "1 restored with their holes punched again" in result["notes"][0]
    restored = tmp_path / "alt" / str(tree).lstrip("/") / "holes.img"
    st_r = restored.stat()
    assert st_r.st_size == 8 * 1024 * 1024 and restored.read_bytes()[:4] == b"head"
    assert st_r.st_blocks * 512 < 1024 * 1024, "the restored file is not sparse"
    assert int(st_r.st_mtime) == int(source.st_mtime)
    _c, verdict = b.verify_snapshot(snap["snapshot_dir"], tmpdir=str(tmp_path), record_result=False)
    assert verdict["verdict"] == "passed"


# --------------------------------------------------------------------------- store files: regular, bounded

@pytest.mark.parametrize("which", ["snapshot.json", "manifest.jsonl", "archive.tar"])
def test_a_fifo_in_the_store_is_refused_without_blocking(tmp_path: Path, which: str) -> None:
    snap = forge(tmp_path, reg(b"x/a") + END, [entry("/x/a")])
    (snap / which).unlink()
    os.mkfifo(snap / which)
    outcome = {}

    def attempt() -> None:
        try:
            b.restore_snapshot(str(snap), root=str(tmp_path / "root"))
        except b.BackupError as exc:
            outcome["msg"] = exc.msg
        try:
            _c, verdict = b.verify_snapshot(str(snap), tmpdir=str(tmp_path), record_result=False)
            outcome["verify"] = "; ".join(verdict["failures"])
        except b.BackupError as exc:
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
    with pytest.raises(b.BackupError, match="duplicate key"):
        b.verify_snapshot(str(snap))
    with open(snap / "snapshot.json", "wb") as handle:
        handle.truncate(b.RECORD_LIMIT + 1)
    with pytest.raises(b.BackupError, match="larger than the limit"):
        b.restore_snapshot(str(snap), root=str(tmp_path / "root"))


def test_a_record_copied_under_another_label_is_not_taken_for_it(tmp_path: Path, signed: dict) -> None:
    store = tmp_path / "store"
    shutil.copytree(signed["snapshot_dir"], store / "OTHER" / signed["snapshot_id"])
    with pytest.raises(b.BackupError, match="records the label 'SIG'"):
        b.find_snapshot(str(store), "OTHER", signed["snapshot_id"])
    with pytest.raises(b.BackupError, match="no complete snapshot for label OTHER"):
        b.find_snapshot(str(store), "OTHER")


def test_a_truncated_compressed_stream_is_reported_as_such(tmp_path: Path, signed: dict) -> None:
    """A damaged gzip archive whose recorded hash was forged: the decompressor's error is the reason given."""
    archive = Path(signed["archive_path"])
    archive.write_bytes(archive.read_bytes()[:-40])
    record = json.loads(Path(signed["record_path"]).read_text())
    record["archive"]["sha256"] = hashlib.sha256(archive.read_bytes()).hexdigest()
    Path(signed["record_path"]).write_text(json.dumps(record))
    with pytest.raises(b.BackupError, match=r"decompressing .* failed"):
        b.restore_snapshot(signed["snapshot_dir"], root=str(tmp_path / "alt"))
    _c, verdict = b.verify_snapshot(signed["snapshot_dir"], tmpdir=str(tmp_path), record_result=False)
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
    with pytest.raises(b.BackupError, match=re.escape(expect)):
        b.restore_snapshot(str(snap), root=str(root))
    try:
        _c, verdict = b.verify_snapshot(str(snap), tmpdir=str(tmp_path), record_result=False)
    except b.BackupError as exc:
        assert expect in exc.msg
    else:
        assert verdict["verdict"] == "failed" and any(expect in f for f in verdict["failures"]), verdict
    assert (root / "x" / "a").read_text() == "other\n"


def test_a_refusal_early_in_a_compressed_stream_is_reported_as_the_refusal(tmp_path: Path, monkeypatch) -> None:
    """The scan stops at the bad member and closes the decompressor's pipe: its SIGPIPE is not the reason."""
    import gzip
    import time

    real_stop = b._stop

    def late_stop(*procs) -> None:  # let the decompressor hit the closed pipe first (the race, made certain)
        time.sleep(0.3)
        real_stop(*procs)

    monkeypatch.setattr(b, "_stop", late_stop)

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
        _c, verdict = b.verify_snapshot(str(snap), tmpdir=str(tmp_path), record_result=False)
        assert verdict["failures"] and "contains '..'" in verdict["failures"][0], verdict["failures"]
    assert not (tmp_path / "root").exists()
