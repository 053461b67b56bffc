"""Unit tests of the backup backend's pure parts (tar headers, ordering, exclusion, labels, manifest)."""

from __future__ import annotations

import io
import os
import json
import tarfile

import pytest

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.gnutar import GnuTarWriter, tar_messages
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import FORMAT_MANIFEST, validate_label
from ansible_collections.itsop.change.plugins.module_utils._backup.manifest import iter_manifest
from ansible_collections.itsop.change.plugins.module_utils._backup.ostee import kernel_tee
from ansible_collections.itsop.change.plugins.module_utils._backup.restore import unsafe_name
from ansible_collections.itsop.change.plugins.module_utils._backup.snapshot import create_snapshot
from ansible_collections.itsop.change.plugins.module_utils._backup.tarwriter import PythonTarWriter, tar_header
from ansible_collections.itsop.change.plugins.module_utils._backup.teeparse import TarTee
from ansible_collections.itsop.change.plugins.module_utils._backup.threads import FollowHash
from ansible_collections.itsop.change.plugins.module_utils._backup.tools import HostTar, which
from ansible_collections.itsop.change.plugins.module_utils._backup.verify import verify_snapshot
from ansible_collections.itsop.change.plugins.module_utils._backup.walk import Excluder, normalise_roots, path_key, walk

GNU_TAR = HostTar().gnu()


@pytest.mark.parametrize("name", [b"etc/hosts", b"a/" + b"x" * 150 + b"/" + b"y" * 99, b"z" * 200])
def test_tar_header_is_read_back_by_tarfile(name: bytes) -> None:
    header = tar_header(name, 0o104755, 1234, 2345, 5, 1_600_000_000, tarfile.REGTYPE, b"", "alice", "staff")
    stream = io.BytesIO(header + b"hello" + b"\0" * (512 - 5) + b"\0" * 1024)
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        info = next(iter(tar))
        assert info.name == name.decode()
        assert (info.mode, info.uid, info.gid, info.size, info.mtime) == (0o4755, 1234, 2345, 5, 1_600_000_000)
        assert (info.uname, info.gname) == ("alice", "staff")
        assert tar.extractfile(info).read() == b"hello"


def test_tar_header_falls_back_to_pax_for_xattrs_and_big_ids() -> None:
    header = tar_header(b"f", 0o644, 2 ** 30, 0, 0, 0, tarfile.REGTYPE, xattrs={"user.k": b"v"})
    with tarfile.open(fileobj=io.BytesIO(header + b"\0" * 1024), mode="r|") as tar:
        info = next(iter(tar))
        assert info.uid == 2 ** 30 and info.pax_headers["SCHILY.xattr.user.k"] == "v"


def test_roots_are_normalised_and_nested_roots_dropped() -> None:
    assert normalise_roots(["/etc/ssh", "/etc/", "/var//www", "/etc2"]) == ["/etc", "/etc2", "/var/www"]


def test_path_key_orders_like_a_sorted_depth_first_walk() -> None:
    paths = ["/a", "/a/b", "/a/b/c", "/a-b", "/a.b", "/ab"]
    assert sorted(reversed(paths), key=path_key) == ["/a", "/a/b", "/a/b/c", "/a-b", "/a.b", "/ab"]


def test_excluder_name_and_path_patterns() -> None:
    ex = Excluder(["*.swp", "/srv/app/cache"])
    assert ex("/etc/x.swp", "x.swp")
    assert ex("/srv/app/cache", "cache") and ex("/srv/app/cache/f", "f")
    assert not ex("/srv/app/cached", "cached")


@pytest.mark.parametrize("label", ["", ".hidden", "-x", "a/b", "a b", "x" * 129, "ok\n"])
def test_bad_labels_are_refused(label: str) -> None:
    with pytest.raises(BackupError):
        validate_label(label)


def test_good_label() -> None:
    validate_label("CHG-2025-001_a.b")


def test_iter_manifest_requires_header_and_end(tmp_path) -> None:
    path = tmp_path / "m.jsonl"
    header = json.dumps({"format": FORMAT_MANIFEST})
    path.write_text(header + "\n" + json.dumps({"path": "/x", "type": "file"}) + "\n")
    with pytest.raises(BackupError, match="truncated"):
        list(iter_manifest(path))
    path.write_text(path.read_text() + json.dumps({"end": True}) + "\n")
    assert [e.get("path") for e in iter_manifest(path)] == [None, "/x"]
    path.write_text(path.read_text() + "{}\n")
    with pytest.raises(BackupError, match="after its end marker"):
        list(iter_manifest(path))


@pytest.mark.parametrize("name,bad", [("/etc/x", True), ("a/../../x", True), ("..", True), ("a/b", False),
                                      ("a/..b", False)])
def test_unsafe_member_names(name: str, bad: bool) -> None:
    assert bool(unsafe_name(name)) is bad


def _gnu_tar_tree(root) -> list:
    """A small tree with every kind of entry GNU tar writes differently (long names, links, fifo)."""
    import os

    long_dir = root / ("d" * 120) / ("e" * 120)
    long_dir.mkdir(parents=True)
    (long_dir / ("f" * 200)).write_bytes(b"long name\n" * 100)
    (root / "empty").write_bytes(b"")
    (root / "exact").write_bytes(b"x" * 1024)
    (root / "odd").write_bytes(bytes(range(256)) * 7 + b"tail")
    os.link(root / "odd", root / "odd-link")
    os.symlink("odd" + "/x" * 60, root / "long-symlink")
    os.mkfifo(root / "pipe")
    # names the manifest line writer must escape exactly like the JSON encoder
    (root / 'q"uote\\back\tslash \u00e9\u4e2d').write_bytes(b"odd name\n")
    (root.joinpath(os.fsdecode(b"latin1-\xe9"))).write_bytes(b"not utf-8\n")
    excluder = Excluder([])
    return [path for path, _st in walk([str(root)], excluder)]


@pytest.mark.skipif(GNU_TAR is None, reason="GNU tar is not installed")
@pytest.mark.parametrize("chunk", [1, 511, 513, 4096, 1 << 20])
def test_tar_tee_manifest_matches_the_stream_whatever_the_chunking(tmp_path, chunk: int) -> None:
    import hashlib
    import subprocess

    paths = _gnu_tar_tree(tmp_path / "tree")
    names = tmp_path / "names"
    names.write_bytes(b"".join(os.fsencode(p.lstrip("/")) + b"\0" for p in paths))
    stream = subprocess.run(HostTar().create_cmd(str(names)), stdout=subprocess.PIPE, check=True).stdout
    entries = []
    encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode

    def collect(obj) -> None:
        if isinstance(obj, str):  # a pre-formatted file line: byte for byte what the encoder writes
            parsed = json.loads(obj)
            assert obj == encode(parsed) + "\n"
            obj = parsed
        entries.append(obj)

    tee = TarTee(collect, {str(tmp_path / "tree" / "odd")})
    view = memoryview(stream)
    for start in range(0, len(view), chunk):
        tee.feed(view[start:start + chunk])
    assert tee.ended
    assert [e["path"] for e in entries] == paths
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r|") as tar:
        for entry, member in zip(entries, tar, strict=True):
            assert "/" + member.name == entry["path"]
            if member.isreg():
                assert entry["type"] == "file" and entry["size"] == member.size
                assert entry["sha256"] == hashlib.sha256(tar.extractfile(member).read()).hexdigest()
            elif member.islnk():
                assert entry["type"] == "hardlink" and entry["link"] == "/" + member.linkname
                assert entry["sha256"] == next(e["sha256"] for e in entries if e["path"] == entry["link"])
            elif member.issym():
                assert entry["type"] == "symlink" and entry["target"] == member.linkname
            assert entry["mode"] == "%04o" % member.mode and entry["mtime"] == int(member.mtime)
    assert tee.totals["hardlinks"] == 1 and tee.totals["special"] == 1 and tee.totals["entries"] == len(paths)


def test_tar_messages_split_errors_from_warnings() -> None:
    errors, warnings = tar_messages(
        b"/usr/bin/tar: etc/shadow: Cannot open: Permission denied\n"
        b"tar: etc/passwd: file changed as we read it\n"
        b"/usr/bin/tar: Exiting with failure status due to previous errors\n")
    assert errors == ["/etc/shadow: Cannot open: Permission denied"]
    assert warnings == ["/etc/passwd: file changed as we read it"]


@pytest.mark.skipif(GNU_TAR is None, reason="GNU tar is not installed")
def test_gnu_tar_and_python_writers_describe_the_same_tree(tmp_path) -> None:
    """The fallback writer (hosts without GNU tar) and the GNU tar path give the same manifest entries."""
    _gnu_tar_tree(tmp_path / "tree")
    manifests = {}
    writers = {"gnu": lambda: GnuTarWriter(HostTar()), "python": PythonTarWriter}
    for engine in ("gnu", "python"):
        _changed, result = create_snapshot([str(tmp_path / "tree")], str(tmp_path / engine), "CHG-U1",
                                           compression="gzip", packages=False, do_fsync=False,
                                           writer=writers[engine]())
        lines = (tmp_path / engine / "CHG-U1" / result["snapshot_id"] / "manifest.jsonl").read_text().splitlines()
        manifests[engine] = [json.loads(line) for line in lines[1:]]
        _changed, verdict = verify_snapshot(result["snapshot_dir"], record_result=False)
        assert verdict["verdict"] == "passed", verdict["failures"]
    assert manifests["gnu"] == manifests["python"]


def test_follow_hash_covers_every_byte_a_slow_writer_appends(tmp_path) -> None:
    """The archive hash is taken while the compressor writes; it must equal the finished file's hash."""
    import hashlib
    import subprocess
    import sys

    target = tmp_path / "growing.bin"
    target.write_bytes(b"")
    writer = subprocess.Popen([sys.executable, "-c", (
        "import os, sys, time\n"
        "with open(sys.argv[1], 'ab', buffering=0) as f:\n"
        "    for i in range(40):\n"
        "        f.write(os.urandom(70_001 + i))\n"
        "        time.sleep(0.01 if i % 7 else 0.08)\n"), str(target)])
    follower = FollowHash(str(target))
    assert writer.wait(timeout=60) == 0
    follower.finish()
    data = target.read_bytes()
    assert len(data) == sum(70_001 + i for i in range(40))
    assert follower.result() == hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(GNU_TAR is None or which("zstd") is None, reason="needs GNU tar and zstd")
@pytest.mark.parametrize("tee_case", ["used", "missing", "refused"])
def test_snapshot_stream_with_and_without_kernel_tee(tmp_path, tee_case: str) -> None:
    """tar's stream reaches zstd by tee(2) where it works, else by write(); each way gives a verified snapshot."""
    calls = []
    real = kernel_tee() if tee_case == "used" else None
    if tee_case == "used" and real is None:
        pytest.skip("tee(2) is not available here")

    def copy(src, dst):  # tee(2) counted ("used"), or a kernel that refuses it (e.g. a seccomp filter)
        calls.append(1)
        return real(src, dst) if tee_case == "used" else None

    def load():
        return None if tee_case == "missing" else copy

    paths = _gnu_tar_tree(tmp_path / "tree")
    (tmp_path / "tree" / "big").write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several pipe-fulls
    _changed, snap = create_snapshot([str(tmp_path / "tree")], str(tmp_path / "store"), "TEE", compression="zstd",
                                     writer=GnuTarWriter(HostTar(), load_tee=load))
    if tee_case == "used":
        assert len(calls) > 3  # once per chunk
    else:
        assert len(calls) == {"missing": 0, "refused": 1}[tee_case]  # refused once, then plain writes
    _changed, verify = verify_snapshot(snap["snapshot_dir"], tmpdir=str(tmp_path))
    assert verify["verdict"] == "passed", verify["failures"]
    assert verify["entries_compared"] == len(paths) + 1 == snap["entry_count"]
