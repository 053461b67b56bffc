"""Issue 15, class 7: checksum-file name tricks and files that are not regular files.

The FIFO and device cases run verify_artifacts in a child Python with a memory limit and a
timeout, so a verifier that blocks on a FIFO or reads /dev/zero until memory runs out fails the
test instead of hanging or exhausting the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.itsop.change.plugins.module_utils._artifact import checksums as CS
from ansible_collections.itsop.change.plugins.module_utils._artifact import digest as H
from ansible_collections.itsop.change.plugins.module_utils._artifact import gpg as G
from ansible_collections.itsop.change.plugins.module_utils._artifact import verdict as V
from ansible_collections.itsop.change.plugins.module_utils import artifact as A
from ansible_collections.itsop.change.plugins.module_utils import safe_input as SI
from tests.helpers import COLLECTIONS

DATA = b"release payload\n" * 64
GOOD = hashlib.sha256(DATA).hexdigest()
GOOD512 = hashlib.sha512(DATA).hexdigest()
WRONG = hashlib.sha256(b"something else").hexdigest()


def verify_with_sums(tmp_path, sums_text, name="a.bin", newline=""):
    art = tmp_path / "a.bin"
    art.write_bytes(DATA)
    sums = tmp_path / "SHA256SUMS"
    sums.write_bytes(sums_text.encode("utf-8"))
    ev = A.verify_artifacts([{"path": str(art), "name": name, "checksum_file": str(sums)}])
    return ev["artifacts"][0]["checks"]["checksum_file"]


# ------------------------------------------------------------------ names and conflicting entries

@pytest.mark.parametrize("wrong_line", [
    f"{WRONG}  ./a.bin",          # the case
    f"{WRONG} *./a.bin",
    f"{WRONG}  .//a.bin",
    f"{WRONG}  *a.bin",           # '*' after two spaces: binary marker written twice
    f"{WRONG}  ././a.bin",
    f"SHA256 (./a.bin) = {WRONG}",
    f"SHA256(a.bin)= {WRONG}",    # OpenSSL style
    f"{WRONG}   a.bin",           # a third space: ' a.bin' to coreutils, 'a.bin' to a stripping tool
    f"{WRONG}  a.bin \t",         # trailing white space
    f"SHA256 ( a.bin ) = {WRONG}",
])
@pytest.mark.parametrize("order", ["good-first", "wrong-first"])
def test_conflicting_entries_for_one_name_fail(tmp_path, wrong_line, order):
    lines = [f"{GOOD}  a.bin", wrong_line]
    if order == "wrong-first":
        lines.reverse()
    check = verify_with_sums(tmp_path, "\n".join(lines) + "\n")
    assert check["verdict"] == "fail", check
    assert "conflicting sha256 digests" in check["reason"]
    assert "line 1" in check["reason"] and "line 2" in check["reason"]


def test_same_digest_listed_twice_is_accepted_and_reported(tmp_path):
    check = verify_with_sums(tmp_path, f"{GOOD}  a.bin\n{GOOD} *./a.bin\nSHA256 (a.bin) = {GOOD}\n")
    assert check["verdict"] == "pass", check
    assert check["duplicate_entries"] == 2 and check["entry_lines"] == [1, 2, 3]
    assert check["entry_match"] == "exact"


def test_sha256_and_sha512_entries_must_both_match(tmp_path):
    ok = verify_with_sums(tmp_path, f"{GOOD}  a.bin\nSHA512 (a.bin) = {GOOD512}\n")
    assert ok["verdict"] == "pass" and ok["algorithms"] == ["sha256", "sha512"], ok
    bad = verify_with_sums(tmp_path, f"{GOOD}  a.bin\nSHA512 (a.bin) = {'0' * 128}\n")
    assert bad["verdict"] == "fail" and "sha512 of a.bin does not match" in bad["reason"]


def test_base_name_match_is_refused_when_ambiguous(tmp_path):
    text = f"{GOOD}  amd64/a.bin\n{WRONG}  arm64/a.bin\n"
    ambiguous = verify_with_sums(tmp_path, text)
    assert ambiguous["verdict"] == "fail" and "conflicting" in ambiguous["reason"]
    # naming the artifact with its path selects one entry
    chosen = verify_with_sums(tmp_path, text, name="amd64/a.bin")
    assert chosen["verdict"] == "pass" and chosen["entry_match"] == "exact", chosen
    # an exact entry wins over entries of the same base name in other directories
    exact = verify_with_sums(tmp_path, f"{WRONG}  other/a.bin\n{GOOD}  ./a.bin\n")
    assert exact["verdict"] == "pass" and exact["entry_lines"] == [2], exact


@pytest.mark.parametrize("bad_line, message", [
    (f"{GOOD[:-1]}  a.bin", "63 hex digits"),
    (f"SHA256 (a.bin) = {GOOD}00", "66 hex digits"),
    (f"\\{GOOD}  a\\qb.bin", "invalid escape"),
    (f"{GOOD}  *", "without a file name"),
])
def test_unreadable_entry_lines_fail_the_file(tmp_path, bad_line, message):
    check = verify_with_sums(tmp_path, f"{GOOD}  a.bin\n{bad_line}\n")
    assert check["verdict"] == "fail" and message in check["reason"], check
    assert "line 2" in check["reason"]


def test_formats_crlf_bom_escapes_and_ignored_algorithms(tmp_path):
    md5 = hashlib.md5(b"x").hexdigest()  # noqa: S324 - an untrusted algorithm, ignored
    text = "\ufeff" + f"# comment\r\n{md5}  a.bin\r\nMD5 (a.bin) = {md5}\r\n{GOOD} *a.bin\r\n"
    assert verify_with_sums(tmp_path, text)["verdict"] == "pass"
    only_md5 = verify_with_sums(tmp_path, f"{md5}  a.bin\n")
    assert only_md5["verdict"] == "fail" and "no entry" in only_md5["reason"]
    entries = CS.parse_checksum_entries(f"\\{GOOD}  dir\\\\new\\nline.bin\n")
    assert entries[0]["name"] == "dir\\new\nline.bin"


def test_names_are_normalised_once():
    for written in ("a.bin", "./a.bin", "*a.bin", ".//a.bin", "./././a.bin", " a.bin\t", "* ./a.bin"):
        assert CS.normalize_checksum_name(written) == "a.bin"
    assert CS.normalize_checksum_name("dist//x/./a.bin") == "dist/x/a.bin"
    assert CS.normalize_checksum_name("/srv//a.bin") == "/srv/a.bin"
    assert CS.normalize_checksum_name("../a.bin") == "../a.bin"


def test_lookup_api_refuses_conflicts():
    entries = CS.parse_checksum_text(f"{GOOD}  a.bin\n{WRONG}  ./a.bin\n")
    with pytest.raises(V.VerifyError, match="conflicting"):
        CS.lookup_checksum(entries, "a.bin")


def test_control_characters_in_names_are_escaped_in_reasons(tmp_path):
    text = f"{GOOD}  a.bin\n{WRONG}  ./a.bin\n"
    check = verify_with_sums(tmp_path, text, name="a.bin")
    assert "\x1b" not in check["reason"]
    evil = verify_with_sums(tmp_path, f"{GOOD}  x\u202e.bin\n{WRONG}  ./x\u202e.bin\n", name="x\u202e.bin")
    assert evil["verdict"] == "fail" and "\u202e" not in evil["reason"] and "\\u202e" in evil["reason"]


# ------------------------------------------------------------------ FIFOs, devices, huge files

def run_isolated(specs: list[dict], timeout: float = 20, **kwargs) -> dict:
    """verify_artifacts in a child process with 1 GiB of address space and a timeout."""
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(COLLECTIONS)!r})
        from ansible_collections.itsop.change.plugins.module_utils.artifact import verify_artifacts
        specs, kwargs = json.loads(sys.stdin.read())
        print(json.dumps(verify_artifacts(specs, **kwargs)))
    """)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1024 ** 3, 1024 ** 3))

    try:
        proc = subprocess.run([sys.executable, "-c", code], input=json.dumps([specs, kwargs]),
                              capture_output=True, text=True, timeout=timeout, preexec_fn=limit,
                              check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"verification did not finish within {timeout} s (blocked on a FIFO or device?)")
    assert proc.returncode == 0, f"verifier crashed: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def artifact(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(DATA)
    return path


@pytest.mark.parametrize("source", ["fifo", "/dev/zero", "directory", "symlink-to-dev-zero"])
def test_checksum_file_must_be_a_regular_file(tmp_path, artifact, fifo, source):
    path = {"fifo": str(fifo), "/dev/zero": "/dev/zero", "directory": str(tmp_path)}.get(source)
    if source == "symlink-to-dev-zero":
        path = str(tmp_path / "sums-link")
        os.symlink("/dev/zero", path)
    ev = run_isolated([{"path": str(artifact), "checksum_file": path}])
    check = ev["artifacts"][0]["checks"]["checksum_file"]
    assert check["verdict"] == "fail", check
    assert "not a regular file" in check["reason"] and "checksum file" in check["reason"]
    assert path in check["reason"]
    # the artifact's other checks still ran and are reported
    assert ev["artifacts"][0]["digests"]["sha256"] == GOOD


@pytest.mark.parametrize("source", ["fifo", "/dev/zero", "/dev/null"])
def test_artifact_must_be_a_regular_file(tmp_path, fifo, source):
    path = str(fifo) if source == "fifo" else source
    ev = run_isolated([{"path": path, "name": "x.bin", "digest": "sha256:" + GOOD}])
    check = ev["artifacts"][0]["checks"]["exists"]
    assert check["verdict"] == "fail" and "not a regular file" in check["reason"], check
    assert ev["passed"] is False


def test_signature_and_key_files_must_be_regular_files(tmp_path, artifact, fifo):
    key = tmp_path / "key.asc"
    key.write_text("not a key\n")
    ev = run_isolated([{"path": str(artifact), "signature": str(fifo)}],
                      gpg_keys=[], gpg_fingerprints=["A" * 40])
    sig = ev["artifacts"][0]["checks"]["signature"]
    assert sig["verdict"] == "fail" and "signature file" in sig["reason"] and "FIFO" in sig["reason"], sig
    ev = run_isolated([{"path": str(artifact), "signature": str(key)}],
                      gpg_keys=["/dev/zero"], gpg_fingerprints=["A" * 40])
    sig = ev["artifacts"][0]["checks"]["signature"]
    assert sig["verdict"] == "fail" and "key file /dev/zero" in sig["reason"], sig


def test_size_limits_of_small_files_and_of_the_artifact(tmp_path, artifact):
    huge_sums = tmp_path / "SHA256SUMS"
    with open(huge_sums, "wb") as out:
        out.truncate(A.CHECKSUM_FILE_LIMIT + 1)  # sparse: no disk used
    huge_sig = tmp_path / "a.bin.sig"
    with open(huge_sig, "wb") as out:
        out.truncate(G.SIGNATURE_FILE_LIMIT + 1)
    ev = run_isolated([{"path": str(artifact), "checksum_file": str(huge_sums), "signature": str(huge_sig)}],
                      gpg_fingerprints=["A" * 40])
    checks = ev["artifacts"][0]["checks"]
    assert "larger than the limit" in checks["checksum_file"]["reason"]
    assert "larger than the limit" in checks["signature"]["reason"]
    small = A.verify_artifacts([{"path": str(artifact)}], max_artifact_size=len(DATA) - 1)
    exists = small["artifacts"][0]["checks"]["exists"]
    assert exists["verdict"] == "fail" and "larger than the limit" in exists["reason"]
    assert A.verify_artifacts([{"path": str(artifact)}], max_artifact_size=len(DATA))["passed"]


def test_hash_file_refuses_fifo_without_blocking(fifo):
    with pytest.raises(SI.InputError, match="FIFO"):
        H.hash_file(str(fifo))


def test_artifact_replaced_during_verification_fails(tmp_path, artifact):
    """The file checked is the file read: a swap between hashing and the end is detected."""

    def swapping_runner(args, data=None, env=None, timeout=None, stdin=None):
        other = tmp_path / "other"
        other.write_bytes(DATA)
        os.replace(other, artifact)
        return 0, "", ""

    ev = A.verify_artifacts([{"path": str(artifact), "digest": GOOD}],
                            clamav={"binary": "/bin/true"}, runner=swapping_runner)
    exists = ev["artifacts"][0]["checks"]["exists"]
    assert exists["verdict"] == "fail" and "replaced or modified" in exists["reason"], exists
    assert ev["passed"] is False


def test_artifact_modified_in_place_with_mtime_reset_fails(tmp_path, artifact):
    """Same inode, same size, modification time put back: the change time still gives it away."""
    before = artifact.stat()

    def rewriting_runner(args, data=None, env=None, timeout=None, stdin=None):
        with open(artifact, "r+b") as handle:
            handle.write(b"X")
        os.utime(artifact, ns=(before.st_atime_ns, before.st_mtime_ns))
        return 0, "", ""

    ev = A.verify_artifacts([{"path": str(artifact), "digest": GOOD}],
                            clamav={"binary": "/bin/true"}, runner=rewriting_runner)
    exists = ev["artifacts"][0]["checks"]["exists"]
    assert artifact.stat().st_mtime_ns == before.st_mtime_ns and artifact.stat().st_ino == before.st_ino
    assert exists["verdict"] == "fail" and "replaced or modified" in exists["reason"], exists


def test_clamav_database_entry_that_is_a_fifo_fails_without_blocking(tmp_path, artifact):
    """clamscan opens every database file in the directory: a FIFO there would block the scan."""
    if not shutil.which("clamscan"):
        pytest.skip("needs clamscan")
    db = tmp_path / "db"
    db.mkdir()
    (db / "test.ndb").write_text("Eicar-Test-Custom:0:*:" + "58" * 8 + "\n")
    os.mkfifo(db / "extra.hdb")
    ev = run_isolated([{"path": str(artifact)}], clamav={"database": str(db)}, timeout=60)
    check = ev["artifacts"][0]["checks"]["malware_scan"]
    assert check["verdict"] == "fail", check
    assert f"{db / 'extra.hdb'} is not a regular file" in check["reason"]


def test_names_differing_only_in_case_with_different_digests_fail(tmp_path):
    """One file on a case-insensitive file system (a Windows or macOS target)."""
    check = verify_with_sums(tmp_path, f"{GOOD}  a.bin\n{WRONG}  A.BIN\n")
    assert check["verdict"] == "fail" and "differ only in letter case" in check["reason"], check
    same = verify_with_sums(tmp_path, f"{GOOD}  a.bin\n{GOOD}  A.bin\n")
    assert same["verdict"] == "pass", same
