"""Unit tests of sopctl.archive: retention setting, controller key, and verify_archive's handling of
archives that are not what they claim (no key, not a tar, unsafe members)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from sopctl import archive
from sopctl.config import load_config
from sopctl.errors import SopctlError


@pytest.mark.parametrize("value, text, days", [
    ("10y", "10y", 3650), ("3650d", "10y", 3650), ("90d", "90d", 90), (400, "400d", 400),
    ({"years": 7}, "7y", 2555), ({"years": 1, "days": 10}, "375d", 375)])
def test_parse_retention(value, text, days):
    assert archive.parse_retention(value) == (text, days)


@pytest.mark.parametrize("value", ["forever", "0d", "-1y", True, None, {"months": 3}, "10"])
def test_parse_retention_refuses(value):
    with pytest.raises(SopctlError, match="retention"):
        archive.parse_retention(value)


def test_retention_setting_from_config_and_default(tmp_path):
    assert archive.retention_setting(tmp_path) == ("10y", 3650, "default")
    (tmp_path / "config.yml").write_text("retention: 5y\n")
    text, days, source = archive.retention_setting(tmp_path)
    assert (text, days) == ("5y", 1825) and source.endswith("(retention)")
    load_config(tmp_path)  # the config loader accepts the key


def test_controller_key_created_private_and_reused(tmp_path):
    key, pub = archive.controller_key(tmp_path)
    key_path = tmp_path / "keys" / "controller.key"
    assert key_path.stat().st_mode & 0o777 == 0o600 and pub.exists()
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    again, _ = archive.controller_key(tmp_path)
    assert again.public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
    key_path.chmod(0o644)
    with pytest.raises(SopctlError, match="readable by others"):
        archive.controller_key(tmp_path)


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if kind != "sym" else None)
    return path


def test_verify_needs_a_public_key_and_a_readable_archive(tmp_path):
    _, pub = archive.controller_key(tmp_path)
    a = _tar(tmp_path / "a.tar.gz", [("CHG-2026-0001/x", b"x", "file")])
    res = archive.verify_archive(a, [])
    assert res.exit_code == 2 and "--public-key" in res.problems[0]
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    assert not archive.is_archive(bad)
    res = archive.verify_archive(bad, [str(pub)])
    assert res.exit_code == 2 and "unreadable archive" in res.problems[0]
    log = tmp_path / "x.jsonl"
    log.write_text("{}\n")
    assert not archive.is_archive(log) and archive.is_archive(a)


def test_unsafe_members_and_missing_manifest(tmp_path):
    _, pub = archive.controller_key(tmp_path)
    a = _tar(tmp_path / "a.tar.gz", [("CHG-2026-0001/../../etc/x", b"x", "file"),
                                     ("CHG-2026-0001/link", b"", "sym"),
                                     ("CHG-2026-0001/ok.json", json.dumps({}).encode(), "file")])
    res = archive.verify_archive(a, [str(pub)])
    assert res.exit_code == 1
    text = "\n".join(res.problems)
    assert "unsafe or unexpected path" in text and "not a regular file" in text and "MANIFEST.json is missing" in text
