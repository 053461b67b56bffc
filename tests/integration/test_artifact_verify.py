"""artifact_verify backend with the REAL clamscan and gpg (no mocks).

EICAR is written at test time and detected through a custom .ndb database; GPG keys and
signatures are generated at test time.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest

from ansible_collections.itsop.change.plugins.module_utils.artifact import verify_artifacts
from tests.fixtures.artifact_fixtures import (
    EICAR,
    build_gpg_world,
    write_eicar,
    write_ndb,
    write_targz,
    write_zip,
    zip_bytes,
)

pytestmark = pytest.mark.skipif(not (shutil.which("clamscan") and shutil.which("gpg")),
                                reason="needs clamscan and gpg")


@pytest.fixture(scope="module")
def gpg_world(tmp_path_factory):
    return build_gpg_world(tmp_path_factory.mktemp("gpg"))


@pytest.fixture
def db(tmp_path):
    dbdir = tmp_path / "db"
    write_ndb(dbdir)
    return dbdir


def scan(paths, **clamav):
    return verify_artifacts([{"path": str(p)} for p in paths], clamav=clamav)


def by_name(evidence):
    return {a["name"]: a for a in evidence["artifacts"]}


# ------------------------------------------------------------------------------------- ClamAV

def test_eicar_plain_zip_and_zip_in_targz_detected_clean_passes(tmp_path, db):
    q = tmp_path / "q"
    q.mkdir()
    plain = write_eicar(q / "eicar.com")
    zipped = write_zip(q / "eicar.zip", {"docs/readme.txt": b"hello\n", "eicar.com": EICAR})
    nested = write_targz(q / "bundle.tar.gz", {"inner/payload.zip": zip_bytes({"eicar.com": EICAR}),
                                               "inner/notes.txt": b"notes\n"})
    clean = q / "clean.tar.gz"
    write_targz(clean, {"a.txt": b"just text\n" * 1000})
    ev = scan([plain, zipped, nested, clean], database=str(db))
    res = by_name(ev)
    for name in ("eicar.com", "eicar.zip", "bundle.tar.gz"):
        check = res[name]["checks"]["malware_scan"]
        assert check["verdict"] == "fail", name
        assert "Eicar-Test-Custom" in check["signature"], name
        assert "malware found" in check["reason"]
    assert res["clean.tar.gz"]["checks"]["malware_scan"]["verdict"] == "pass"
    assert res["clean.tar.gz"]["passed"] is True
    assert ev["passed"] is False
    assert sorted(ev["failed_artifacts"]) == ["bundle.tar.gz", "eicar.com", "eicar.zip"]
    # evidence: scanner name/version and database identity
    assert ev["scanner"]["name"] == "clamscan"
    assert ev["scanner"]["version"].startswith("ClamAV ")
    assert ev["scanner"]["database"]["version"].startswith("custom-sha256:")
    assert ev["scanner"]["database"]["files"][0]["name"] == "test.ndb"
    assert ev["scanner"]["run"]["known_signatures"] == 1
    assert ev["scanner"]["run"]["rc"] == 1


def test_empty_database_directory_fails(tmp_path):
    empty = tmp_path / "emptydb"
    empty.mkdir()
    f = tmp_path / "clean.txt"
    f.write_text("clean\n")
    ev = scan([f], database=str(empty))
    check = ev["artifacts"][0]["checks"]["malware_scan"]
    assert check["verdict"] == "fail" and "no database files" in check["reason"]
    assert ev["passed"] is False


def test_unusable_database_is_scanner_error_exit_2(tmp_path):
    """A database directory whose only file is not a database: clamscan exits 2 -> fail."""
    bad = tmp_path / "baddb"
    bad.mkdir()
    (bad / "broken.ndb").write_text("this is not a signature\n")
    f = tmp_path / "clean.txt"
    f.write_text("clean\n")
    ev = scan([f], database=str(bad))
    check = ev["artifacts"][0]["checks"]["malware_scan"]
    assert ev["scanner"]["run"]["rc"] == 2
    assert check["verdict"] == "fail" and "exit 2" in check["reason"]


def test_oversize_plain_file_and_oversize_archive_member_fail(tmp_path, db):
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (2 * 1024 * 1024))
    # 3 MiB of zeros compress to a few KiB: the archive is small, its member is over the limit,
    # so only clamscan's --alert-exceeds-max can catch it.
    bomb = write_zip(tmp_path / "small.zip", {"zeros.bin": b"\0" * (3 * 1024 * 1024)})
    assert bomb.stat().st_size < 1024 * 1024
    ev = scan([big, bomb], database=str(db), max_filesize="1M", max_scansize="1M")
    res = by_name(ev)
    assert res["big.bin"]["checks"]["malware_scan"]["verdict"] == "fail"
    assert "exceeds the scan limit" in res["big.bin"]["checks"]["malware_scan"]["reason"]
    zcheck = res["small.zip"]["checks"]["malware_scan"]
    assert zcheck["verdict"] == "fail", zcheck
    assert "Heuristics.Limits.Exceeded" in zcheck["signature"]
    assert "exceeds scan limits" in zcheck["reason"]


def test_missing_scanner_binary_fails(tmp_path, db):
    f = tmp_path / "clean.txt"
    f.write_text("clean\n")
    ev = verify_artifacts([{"path": str(f)}], clamav={"scanner": "clamdscan",
                                                      "binary": str(tmp_path / "clamdscan"),
                                                      "clamd_socket": str(tmp_path / "clamd.sock")})
    check = ev["artifacts"][0]["checks"]["malware_scan"]
    assert check["verdict"] == "fail" and "not found" in check["reason"]


# ------------------------------------------------------------------- digests and checksum files

def test_wrong_digest_truncated_file_and_good_file(tmp_path):
    data = b"release payload\n" * 4096
    good = tmp_path / "good.bin"
    good.write_bytes(data)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(data[:-100])
    sha256 = hashlib.sha256(data).hexdigest()
    sha512 = hashlib.sha512(data).hexdigest()
    ev = verify_artifacts([
        {"path": str(good), "size": len(data), "digest": "sha256:" + sha256},
        {"path": str(good), "name": "good-512", "digest": sha512},
        {"path": str(good), "name": "wrong", "digest": "sha256:" + "0" * 64},
        {"path": str(truncated), "size": len(data), "digest": "sha256:" + sha256},
    ])
    res = by_name(ev)
    assert res["good.bin"]["passed"] and res["good.bin"]["digests"]["sha256"] == sha256
    assert res["good-512"]["passed"] and res["good-512"]["digests"]["sha512"] == sha512
    assert res["wrong"]["checks"]["digest"]["verdict"] == "fail"
    assert res["wrong"]["checks"]["digest"]["actual"] == sha256
    tr = res["truncated.bin"]
    assert tr["checks"]["size"]["verdict"] == "fail" and tr["checks"]["digest"]["verdict"] == "fail"
    assert tr["size"] == len(data) - 100
    assert ev["failed_artifacts"] == ["wrong", "truncated.bin"]


def test_swapped_names_against_checksum_file(tmp_path):
    a, b = tmp_path / "a.deb", tmp_path / "b.deb"
    a.write_bytes(b"package A\n")
    b.write_bytes(b"package B\n")
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{hashlib.sha256(b'package A').hexdigest()}  unrelated\n"
                    f"{hashlib.sha256(a.read_bytes()).hexdigest()}  a.deb\n"
                    f"{hashlib.sha256(b.read_bytes()).hexdigest()} *b.deb\n")
    ok = verify_artifacts([{"path": str(a), "checksum_file": str(sums)},
                           {"path": str(b), "checksum_file": str(sums)}])
    assert ok["passed"], ok["failed_artifacts"]
    # swap the two files' names: each now carries the other's content
    a.rename(tmp_path / "tmp")
    b.rename(a)
    (tmp_path / "tmp").rename(b)
    swapped = verify_artifacts([{"path": str(a), "checksum_file": str(sums)},
                                {"path": str(b), "checksum_file": str(sums)},
                                {"path": str(a), "name": "c.deb", "checksum_file": str(sums)}])
    res = by_name(swapped)
    for name in ("a.deb", "b.deb"):
        assert res[name]["checks"]["checksum_file"]["verdict"] == "fail"
        assert "swapped" in res[name]["checks"]["checksum_file"]["reason"]
    assert "no entry" in res["c.deb"]["checks"]["checksum_file"]["reason"]
    assert res["a.deb"]["checks"]["checksum_file"]["file_sha256"] == hashlib.sha256(
        sums.read_bytes()).hexdigest()


def test_bsd_and_sha512_checksum_file(tmp_path):
    f = tmp_path / "tool.tar.xz"
    f.write_bytes(b"tool\n")
    sums = tmp_path / "CHECKSUMS"
    sums.write_text(f"SHA512 (tool.tar.xz) = {hashlib.sha512(b'tool' + bytes([10])).hexdigest()}\n")
    ev = verify_artifacts([{"path": str(f), "checksum_file": str(sums)}])
    assert ev["passed"]
    assert ev["artifacts"][0]["checks"]["checksum_file"]["algorithm"] == "sha512"


# -------------------------------------------------------------------------------------- GPG

def gpg_case(world, sig_key, pins, artifact=None):
    return verify_artifacts(
        [{"path": str(artifact or world["artifact"]), "signature": str(world[sig_key])}],
        gpg_keys=[str(k) for k in world["keys"]], gpg_fingerprints=pins)["artifacts"][0]


def test_gpg_good_signature_by_pinned_key_passes(gpg_world):
    res = gpg_case(gpg_world, "sig_good", [gpg_world["good"]])
    sig = res["checks"]["signature"]
    assert sig["verdict"] == "pass", sig
    assert sig["primary_fingerprint"] == gpg_world["good"]
    assert any(line.startswith("[GNUPG:] VALIDSIG") for line in sig["status"])
    assert res["passed"]


def test_gpg_good_signature_by_unpinned_key_in_keyring_fails(gpg_world):
    sig = gpg_case(gpg_world, "sig_other", [gpg_world["good"]])["checks"]["signature"]
    assert sig["verdict"] == "fail" and "not a pinned fingerprint" in sig["reason"]
    assert sig["gpg_rc"] == 0  # gpg itself is happy: only the pin check catches it


def test_gpg_bad_signature_on_modified_file_fails(gpg_world, tmp_path):
    modified = tmp_path / gpg_world["artifact"].name
    data = bytearray(gpg_world["artifact"].read_bytes())
    data[100] ^= 0x01
    modified.write_bytes(bytes(data))
    sig = gpg_case(gpg_world, "sig_good", [gpg_world["good"]], artifact=modified)["checks"]["signature"]
    assert sig["verdict"] == "fail" and "BADSIG" in sig["reason"]


def test_gpg_expired_key_fails_even_though_gpg_exits_0(gpg_world):
    sig = gpg_case(gpg_world, "sig_expired", [gpg_world["expired"]])["checks"]["signature"]
    assert sig["verdict"] == "fail" and "EXPKEYSIG" in sig["reason"], sig
    assert any(line.startswith("[GNUPG:] VALIDSIG") for line in sig["status"])


def test_gpg_revoked_key_fails(gpg_world):
    sig = gpg_case(gpg_world, "sig_revoked", [gpg_world["revoked"]])["checks"]["signature"]
    assert sig["verdict"] == "fail" and "REVKEYSIG" in sig["reason"], sig


def test_gpg_missing_public_key_fails(gpg_world):
    sig = gpg_case(gpg_world, "sig_unknown", [gpg_world["unknown"]])["checks"]["signature"]
    assert sig["verdict"] == "fail" and "NO_PUBKEY" in sig["reason"], sig


def test_gpg_no_pins_fails(gpg_world):
    sig = gpg_case(gpg_world, "sig_good", [])["checks"]["signature"]
    assert sig["verdict"] == "fail" and "no pinned" in sig["reason"]


def test_gpg_home_is_isolated_and_removed(gpg_world, tmp_path, monkeypatch):
    """The user's own GNUPGHOME is never read: a key only there does not verify anything."""
    monkeypatch.setenv("GNUPGHOME", str(tmp_path / "nonexistent-home"))
    res = verify_artifacts([{"path": str(gpg_world["artifact"]), "signature": str(gpg_world["sig_good"])}],
                           gpg_keys=[], gpg_fingerprints=[gpg_world["good"]])
    assert res["artifacts"][0]["checks"]["signature"]["verdict"] == "fail"
    assert res["gpg"]["imported_keys"] == []
