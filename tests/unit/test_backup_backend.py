"""Unit tests of the backup backend's pure parts (tar headers, ordering, exclusion, labels, manifest)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from ansible_collections.itsop.change.plugins.module_utils import backup as b


@pytest.mark.parametrize("name", [b"etc/hosts", b"a/" + b"x" * 150 + b"/" + b"y" * 99, b"z" * 200])
def test_tar_header_is_read_back_by_tarfile(name: bytes) -> None:
    header = b.tar_header(name, 0o104755, 1234, 2345, 5, 1_600_000_000, tarfile.REGTYPE, b"", "alice", "staff")
    stream = io.BytesIO(header + b"hello" + b"\0" * (512 - 5) + b"\0" * 1024)
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        info = next(iter(tar))
        assert info.name == name.decode()
        assert (info.mode, info.uid, info.gid, info.size, info.mtime) == (0o4755, 1234, 2345, 5, 1_600_000_000)
        assert (info.uname, info.gname) == ("alice", "staff")
        assert tar.extractfile(info).read() == b"hello"


def test_tar_header_falls_back_to_pax_for_xattrs_and_big_ids() -> None:
    header = b.tar_header(b"f", 0o644, 2 ** 30, 0, 0, 0, tarfile.REGTYPE, xattrs={"user.k": b"v"})
    with tarfile.open(fileobj=io.BytesIO(header + b"\0" * 1024), mode="r|") as tar:
        info = next(iter(tar))
        assert info.uid == 2 ** 30 and info.pax_headers["SCHILY.xattr.user.k"] == "v"


def test_roots_are_normalised_and_nested_roots_dropped() -> None:
    assert b.normalise_roots(["/etc/ssh", "/etc/", "/var//www", "/etc2"]) == ["/etc", "/etc2", "/var/www"]


def test_path_key_orders_like_a_sorted_depth_first_walk() -> None:
    paths = ["/a", "/a/b", "/a/b/c", "/a-b", "/a.b", "/ab"]
    assert sorted(reversed(paths), key=b.path_key) == ["/a", "/a/b", "/a/b/c", "/a-b", "/a.b", "/ab"]


def test_excluder_name_and_path_patterns() -> None:
    ex = b.Excluder(["*.swp", "/srv/app/cache"])
    assert ex("/etc/x.swp", "x.swp")
    assert ex("/srv/app/cache", "cache") and ex("/srv/app/cache/f", "f")
    assert not ex("/srv/app/cached", "cached")


@pytest.mark.parametrize("label", ["", ".hidden", "-x", "a/b", "a b", "x" * 129, "ok\n"])
def test_bad_labels_are_refused(label: str) -> None:
    with pytest.raises(b.BackupError):
        b.validate_label(label)


def test_good_label() -> None:
    b.validate_label("CHG-2025-001_a.b")


def test_iter_manifest_requires_header_and_end(tmp_path) -> None:
    path = tmp_path / "m.jsonl"
    header = json.dumps({"format": b.FORMAT_MANIFEST})
    path.write_text(header + "\n" + json.dumps({"path": "/x", "type": "file"}) + "\n")
    with pytest.raises(b.BackupError, match="truncated"):
        list(b.iter_manifest(path))
    path.write_text(path.read_text() + json.dumps({"end": True}) + "\n")
    assert [e.get("path") for e in b.iter_manifest(path)] == [None, "/x"]
    path.write_text(path.read_text() + "{}\n")
    with pytest.raises(b.BackupError, match="after its end marker"):
        list(b.iter_manifest(path))


@pytest.mark.parametrize("name,bad", [("/etc/x", True), ("a/../../x", True), ("..", True), ("a/b", False),
                                      ("a/..b", False)])
def test_unsafe_member_names(name: str, bad: bool) -> None:
    assert bool(b._unsafe_name(name)) is bad
