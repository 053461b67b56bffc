"""Unit tests for plugins/module_utils/artifact.py: hashing, digest notation, checksum files,
gpg status judging and ClamAV output parsing (pure functions, no external tools)."""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.itsop.change.plugins.module_utils._artifact import checksums as CS
from ansible_collections.itsop.change.plugins.module_utils._artifact import clamav as AV
from ansible_collections.itsop.change.plugins.module_utils._artifact import digest as H
from ansible_collections.itsop.change.plugins.module_utils._artifact import gpg as G
from ansible_collections.itsop.change.plugins.module_utils._artifact import verdict as V


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096 + 17])
def test_hash_file_matches_hashlib(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    got = H.hash_file(str(path), ("sha256", "sha512"), buffer_size=4096)
    assert got["size"] == size
    assert got["digests"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert got["digests"]["sha512"] == hashlib.sha512(data).hexdigest()
    single = H.hash_file(str(path), ("sha256",), buffer_size=4096)
    assert single["digests"] == {"sha256": hashlib.sha256(data).hexdigest()}


def test_parse_digest_notations():
    hex256 = "AB" * 32
    assert H.parse_digest("sha256:" + hex256) == ("sha256", hex256.lower())
    assert H.parse_digest(hex256) == ("sha256", hex256.lower())
    assert H.parse_digest("ab" * 64) == ("sha512", "ab" * 64)
    assert H.parse_digest("SHA-512:" + "cd" * 64) == ("sha512", "cd" * 64)
    for bad in ("md5:" + "ab" * 16, "sha256:" + "ab" * 31, "zz" * 32, "", "sha256:" + "ab" * 64):
        with pytest.raises(V.VerifyError):
            H.parse_digest(bad)


def test_checksum_file_formats():
    a, b, c = "a" * 64, "b" * 64, "c" * 128
    text = (f"# comment\n{a}  app-1.0.tar.gz\n{b} *bin/agent.deb\n"
            f"SHA512 (notes.txt) = {c}\nSHA256 (app-1.0.tar.gz) = {a}\ngarbage line\n")
    entries = CS.parse_checksum_text(text)
    # listed twice (GNU and BSD lines) with the same digest: one digest, accepted
    assert CS.lookup_checksum(entries, "app-1.0.tar.gz") == [("sha256", a)]
    assert CS.lookup_checksum(entries, "agent.deb") == [("sha256", b)]
    assert CS.lookup_checksum(entries, "notes.txt") == [("sha512", c)]
    assert CS.lookup_checksum(entries, "missing.bin") == []


def test_fingerprint_normalisation():
    fpr = "053C 09AB 8223 2C61 E966  A6F9 457F B060 FED7 12C5"
    assert G.normalize_fingerprint(fpr) == "053C09AB82232C61E966A6F9457FB060FED712C5"
    with pytest.raises(V.VerifyError):
        G.normalize_fingerprint("457FB060FED712C5")  # a key ID is not a pin


PRIMARY = "053C09AB82232C61E966A6F9457FB060FED712C5"
SUBKEY = "1111111111111111111111111111111111111111"


def status(*lines: str) -> str:
    return "\n".join("[GNUPG:] " + line for line in lines) + "\n"


SIG_TIME = 1767225600  # 2026-01-01T00:00:00Z
GOOD = status("NEWSIG", f"KEY_CONSIDERED {PRIMARY} 0", f"SIG_ID x 2026-01-01 {SIG_TIME}",
              "GOODSIG 457FB060FED712C5 Signer <s@example.test>",
              f"VALIDSIG {SUBKEY} 2026-01-01 {SIG_TIME} 0 4 0 22 8 00 {PRIMARY}")
# the primary key and its signing subkey, both created in 2025, never expiring
KEYS = {PRIMARY: {"primary": PRIMARY, "created": SIG_TIME - 86400 * 300, "expires": None,
                  "revoked": False, "validity": "-", "subkey": False},
        SUBKEY: {"primary": PRIMARY, "created": SIG_TIME - 86400 * 200, "expires": None,
                 "revoked": False, "validity": "-", "subkey": True}}
NOW = SIG_TIME + 86400


def judge(text, pins, keys=KEYS, **kw):
    return G.judge_gpg_status(text, pins, keys, now=kw.pop("now", NOW), **kw)


def test_gpg_good_signature_by_pinned_primary_or_subkey():
    assert judge(GOOD, [PRIMARY])["verdict"] == "pass"
    assert judge(GOOD, [SUBKEY])["verdict"] == "pass"
    res = judge(GOOD, [PRIMARY])
    assert res["signer_fingerprint"] == SUBKEY and res["primary_fingerprint"] == PRIMARY
    assert res["signature_created"] == "2026-01-01T00:00:00Z"


def test_gpg_without_key_validity_fails_closed():
    res = G.judge_gpg_status(GOOD, [PRIMARY])
    assert res["verdict"] == "fail" and "validity" in res["reason"]


def test_gpg_good_signature_by_unpinned_key_fails():
    res = judge(GOOD, ["2" * 40])
    assert res["verdict"] == "fail" and "not a pinned" in res["reason"]


@pytest.mark.parametrize("keyword", ["EXPKEYSIG", "REVKEYSIG", "EXPSIG", "BADSIG"])
def test_gpg_failing_keyword_beats_validsig(keyword):
    text = GOOD.replace("GOODSIG", keyword)
    res = judge(text, [PRIMARY])
    assert res["verdict"] == "fail" and keyword in res["reason"]


def test_gpg_missing_key_and_no_data():
    res = judge(status("NEWSIG", f"ERRSIG 457FB060FED712C5 22 8 00 1 9 {PRIMARY}",
                                    "NO_PUBKEY 457FB060FED712C5"), [PRIMARY])
    assert res["verdict"] == "fail" and "NO_PUBKEY" in res["reason"]
    assert judge(status("NODATA 1"), [PRIMARY])["verdict"] == "fail"
    assert judge("", [PRIMARY])["verdict"] == "fail"


def test_gpg_one_good_one_bad_signature_fails():
    text = GOOD + status("NEWSIG", "BADSIG 457FB060FED712C5 Signer")
    assert judge(text, [PRIMARY])["verdict"] == "fail"
    two_news_one_good = status("NEWSIG") + GOOD
    assert judge(two_news_one_good, [PRIMARY])["verdict"] == "fail"


def test_clamav_output_parsing_and_verdicts():
    paths = ["/q/a.bin", "/q/a.bin.zip", "/q/big"]
    out = ("/q/a.bin: OK\n/q/a.bin.zip: Eicar-Test-Custom.UNOFFICIAL FOUND\n"
           "/q/big: Heuristics.Limits.Exceeded.MaxFileSize FOUND\n")
    parsed = AV.parse_clamav_output(out, paths)
    assert AV.judge_clamav_line(parsed["/q/a.bin"])[0] == "pass"
    verdict, reason, sig = AV.judge_clamav_line(parsed["/q/a.bin.zip"])
    assert verdict == "fail" and "malware" in reason and sig == "Eicar-Test-Custom.UNOFFICIAL"
    verdict, reason, _ = AV.judge_clamav_line(parsed["/q/big"])
    assert verdict == "fail" and "exceeds scan limits" in reason
    assert AV.judge_clamav_line(None)[0] == "fail"
    assert AV.judge_clamav_line(["Access denied. ERROR"])[0] == "fail"


def test_parse_size():
    assert AV.parse_size("100M") == 100 * 1024**2
    assert AV.parse_size("2g") == 2 * 1024**3
    assert AV.parse_size("512") == 512
    with pytest.raises(V.VerifyError):
        AV.parse_size("lots")


def test_cvd_header_parsed(tmp_path):
    cvd = tmp_path / "daily.cvd"
    header = "ClamAV-VDB:06 Jan 2025 04-12 -0500:27500:2071000:90:md5:dsig:builder:1736154720"
    cvd.write_bytes(header.ljust(512).encode() + b"\x1f\x8b")
    info = AV.database_info(str(tmp_path))
    assert info["version"] == "daily:27500"
    assert info["files"][0]["signatures"] == "2071000"


def test_missing_scanner_fails_closed(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    scanner = AV.ClamavScanner(binary=str(tmp_path / "no-such-clamscan"))
    results, _ = scanner.scan([str(f)])
    assert results[str(f)]["verdict"] == "fail" and "not found" in results[str(f)]["reason"]
