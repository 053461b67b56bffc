"""Unit tests of sopctl.archive: retention setting, controller key, and verify_archive's handling of
archives that are not what they claim (no key, not a tar, unsafe members)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from sopctl import approvals as decisions
from sopctl import archive, keys
from sopctl.config import load_config
from sopctl.errors import SopctlError


@pytest.mark.parametrize("value, text, days", [
    ("10y", "10y", 3650), ("3650d", "10y", 3650), ("90d", "90d", 90), (400, "400d", 400),
    ({"years": 7}, "7y", 2555), ({"years": 1, "days": 10}, "375d", 375)])
def test_parse_retention(value, text, days):
    assert keys.parse_retention(value) == (text, days)


@pytest.mark.parametrize("value", ["forever", "0d", "-1y", True, None, {"months": 3}, "10"])
def test_parse_retention_refuses(value):
    with pytest.raises(SopctlError, match="retention"):
        keys.parse_retention(value)


def test_retention_setting_from_config_and_default(tmp_path):
    assert keys.retention_setting(tmp_path) == ("10y", 3650, "default")
    (tmp_path / "config.yml").write_text("retention: 5y\n")
    text, days, source = keys.retention_setting(tmp_path)
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
    a = _tar(tmp_path / "a.tar.gz", [("CHG-2026-0001/link", b"", "sym"),
                                     ("CHG-2026-0001/ok.json", json.dumps({}).encode(), "file")])
    res = archive.verify_archive(a, [str(pub)])
    assert res.exit_code == 1
    text = "\n".join(res.problems)
    assert "not a regular file" in text and "MANIFEST.json is missing" in text


def test_a_member_name_leaving_the_archive_is_refused_before_anything_is_read(tmp_path):
    _, pub = archive.controller_key(tmp_path)
    a = _tar(tmp_path / "a.tar.gz", [("CHG-2026-0001/../../etc/x", b"x", "file"),
                                     ("CHG-2026-0001/ok.json", json.dumps({}).encode(), "file")])
    res = archive.verify_archive(a, [str(pub)])
    assert res.exit_code == 1 and not res.unreadable  # altered, not merely unreadable
    assert len(res.problems) == 1 and res.problems[0].startswith("archive refused: ")
    assert "../../etc/x" in res.problems[0]


def _gnu_long_name_with_pax_path(path: Path, shown_name: str, real_name: str, data: bytes) -> None:
    """One member whose GNU long-name header and pax ``path`` disagree (GNU tar and Python's tarfile
    pick different ones), followed by a valid end of archive."""
    import tarfile as tf

    buf = io.BytesIO()
    with tf.open(fileobj=buf, mode="w", format=tf.GNU_FORMAT) as tar:
        info = tf.TarInfo(real_name + "/" + "x" * 120)  # long: GNU writes an L header
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    pax = tf.TarInfo("././@PaxHeader")
    record = f"path={shown_name}\n".encode()
    length = len(record) + 1
    while len(str(length)) + len(record) + 1 != length:
        length = len(str(length)) + len(record) + 1
    body = f"{length} ".encode() + record
    pax.size = len(body)
    pax.type = tf.XHDTYPE
    header = pax.tobuf(tf.USTAR_FORMAT) + body + bytes(-len(body) % 512)
    path.write_bytes(gzip.compress(header + raw))


def test_headers_two_tar_readers_read_differently_are_refused(tmp_path):
    """Issue 15, class 2 in the archive verifier: the names verified must be the names an auditor's
    ``tar -x`` writes; an archive whose headers two readers read differently is refused."""
    _, pub = archive.controller_key(tmp_path)
    a = tmp_path / "two-names.tar.gz"
    _gnu_long_name_with_pax_path(a, "CHG-2026-0001/audit/ok.jsonl", "CHG-2026-0001/../../tmp/evil", b"x")
    res = archive.verify_archive(a, [str(pub)])
    assert res.exit_code == 1
    assert res.problems and res.problems[0].startswith("archive refused: ")


def test_archive_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path):
    import os

    _, pub = archive.controller_key(tmp_path)
    fifo = tmp_path / "archive.tar.gz"
    os.mkfifo(fifo)
    res = archive.verify_archive(fifo, [str(pub)])  # would block forever if it were opened
    assert res.exit_code == 2 and "not a regular file (a FIFO)" in res.problems[0]
    res = archive.verify_archive("/dev/zero", [str(pub)])
    assert res.exit_code == 2 and "not a regular file" in res.problems[0]


def test_oversized_member_is_not_read_into_memory(tmp_path, monkeypatch):
    _, pub = archive.controller_key(tmp_path)
    monkeypatch.setattr(archive, "ARCHIVE_MEMBER_LIMIT", 1000)
    a = _tar(tmp_path / "big.tar.gz", [("CHG-2026-0001/audit/big.jsonl", b"0" * 5000, "file")])
    res = archive.verify_archive(a, [str(pub)])
    assert res.exit_code == 2 and "5000 bytes" in res.problems[-1]


# ------------------------------------------------------------------------------ issue 15, class 16
# An approver taken out of the roster after approving is not a tampered decision: every place that
# checks approvals (archive verification, status, the report) says what it is, and it still does
# not count.
CID16 = "CHG-2026-9831"


@pytest.fixture
def approved(tmp_path, monkeypatch):
    """A change whose plan gate was approved by sari (it_manager), dewi (users) and agus (security)."""
    import os

    from sopctl.engine import Engine
    from sopctl.store import Store

    from tests.fixtures.sopctl.world import World

    world = World(tmp_path)
    eng = world.submit_in_process(monkeypatch, CID16)
    rid = eng.store.start_stage_run(CID16, "1", "stage1-x", "t1", "eko", os.getpid(), "h")
    eng.store.finish_stage_run(rid, "succeeded", summary={"result": "passed"})
    eng.plan_file(CID16).parent.mkdir(parents=True, exist_ok=True)
    eng.plan_file(CID16).write_text(json.dumps({"plan": "demo"}))
    for person, comment in (("sari", ""), ("dewi", ""), ("agus", "risk low")):
        monkeypatch.setenv("SOPCTL_IDENTITY", str(world.identity(person)))
        Engine(Store(), out=open(os.devnull, "w")).decide(CID16, "plan", "approve", comment)
    return world


def _roster(world, edit) -> None:
    import yaml

    path = world.tmp / "roster.yml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _remove_sari(world) -> None:
    _roster(world, lambda d: d["people"].pop("sari"))


def _engine():
    import os

    from sopctl.engine import Engine
    from sopctl.store import Store

    return Engine(Store(), out=open(os.devnull, "w"))


def test_check_decision_names_each_reason(approved, tmp_path):
    from sopctl import approvals as ap

    eng = _engine()
    row = next(r for r in eng.store.approvals(CID16) if r["person"] == "sari")
    pem = eng.roster.people["sari"].public_key_pem
    assert decisions.check_decision(row, True, pem) == (decisions.SIG_VALID, "signature verified")
    status, reason = decisions.check_decision(row, False, None)
    assert status == decisions.SIG_NOT_IN_ROSTER and "forged" not in reason
    assert reason.startswith("signer sari is not in the roster: removed from the roster after signing")
    assert decisions.check_decision(row, True, None)[0] == decisions.SIG_NO_KEY
    other = ap.keygen("sari2", tmp_path / "other")[2].encode("ascii")
    status, reason = decisions.check_decision(row, True, other)
    assert status == decisions.SIG_OTHER_KEY and row["key_id"] in reason
    edited = dict(row, comment="edited afterwards")
    status, reason = decisions.check_decision(edited, True, pem)
    assert status == decisions.SIG_INVALID and "decision edited or forged" in reason


def test_archive_names_an_approver_removed_from_the_roster(approved, tmp_path):
    _remove_sari(approved)
    res = archive.build_archive(_engine(), CID16, tmp_path / "out")
    pub = str(approved.home / "keys" / "controller.pub")
    result = archive.verify_archive(res["path"], [pub])
    assert result.exit_code == 1  # still a failure: the decision cannot be verified
    text = "\n".join(result.problems)
    assert "approve of sari at gate plan" in text
    assert "signer sari is not in the archive's roster: removed from the roster after signing" in text
    assert "does not verify" not in text and "forged" not in text
    assert result.checks["approvals"]["signer_not_in_roster"] == 1
    assert result.checks["approvals"]["signatures_verified"] == 2


def test_pinned_roster_without_the_signer_says_so(approved, tmp_path):
    res = archive.build_archive(_engine(), CID16, tmp_path / "out")  # sari still in the roster here
    _remove_sari(approved)
    pub = str(approved.home / "keys" / "controller.pub")
    result = archive.verify_archive(res["path"], [pub], roster=approved.tmp / "roster.yml")
    assert result.exit_code == 1
    (problem,) = [p for p in result.problems if "sari" in p]
    assert "not in the pinned roster" in problem and "removed from the roster after signing" in problem
    assert "signature verifies with the archive roster's key" in problem


def test_tampered_decision_is_still_reported_as_tampered(approved, tmp_path):
    _engine().store.db.execute("UPDATE approvals SET comment='risk none' WHERE person='agus'")
    res = archive.build_archive(_engine(), CID16, tmp_path / "out")
    result = archive.verify_archive(res["path"], [str(approved.home / "keys" / "controller.pub")])
    (problem,) = [p for p in result.problems if "agus" in p]
    assert "signature does not verify with agus's public key (decision edited or forged)" in problem
    assert result.checks["approvals"]["signer_invalid"] == 1


def test_status_says_not_in_roster_and_tampered_apart(approved, capsys):
    from sopctl import cli

    _remove_sari(approved)
    _engine().store.db.execute("UPDATE approvals SET comment='risk none' WHERE person='agus'")
    assert cli.main(["status", CID16]) == 0
    out = capsys.readouterr().out
    gate = next(ln for ln in out.splitlines() if ln.strip().startswith("gate plan"))
    assert "NOT IN ROSTER (signer removed from the roster; cannot be checked, does not count): sari" in gate
    assert "TAMPERED (signature does not verify): agus" in gate
    assert "sari" not in gate.split("TAMPERED")[1]  # the removed approver is not among the tampered
    assert cli.main(["status", CID16, "--json"]) == 0
    step = next(s for s in json.loads(capsys.readouterr().out)["steps"] if s["step"] == "gate plan")
    assert step["unverified"] == {"not_in_roster": ["sari"], "invalid": ["agus"]}


def test_status_says_when_a_key_was_replaced(approved, capsys, tmp_path):
    from sopctl import approvals as ap
    from sopctl import cli

    ap.keygen("sari", tmp_path / "newkey")
    _roster(approved, lambda d: d["people"]["sari"].update(public_key_file=str(tmp_path / "newkey" / "sari.pub")))
    assert cli.main(["status", CID16]) == 0
    gate = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("gate plan"))
    assert "SIGNED WITH ANOTHER KEY than the roster's (key replaced, or forged; does not count): sari" in gate


def test_run_refusal_names_an_approver_removed_from_the_roster(approved, monkeypatch):
    from sopctl.errors import Refusal

    _remove_sari(approved)
    monkeypatch.setenv("SOPCTL_IDENTITY", str(approved.identity("eko")))
    with pytest.raises(Refusal) as info:
        _engine().run(CID16, max_stage="1")
    text = str(info.value)
    assert info.value.rule == "SIG-1" and "tampered" not in text
    assert "the decision of sari at gate plan cannot be verified: signer sari is not in the roster: removed from " \
           "the roster after signing" in text
    _engine().store.db.execute("UPDATE approvals SET comment='risk none' WHERE person='agus'")
    with pytest.raises(Refusal, match=r"of agus at gate plan fail signature verification \(tampered\); the decision "
                                      r"of sari at gate plan cannot be verified: signer sari is not in the roster"):
        _engine().run(CID16, max_stage="1")


def test_the_backup_copies_stay_out_of_the_archive(approved, tmp_path):
    """The backup store under the evidence directory (the roles' default backup_store_dir) holds the
    copies of configuration and data - device configurations with their secrets, /etc with its
    hashes: the archive keeps the checklists and their digests, never the copies."""
    eng = _engine()
    store = eng.store.evidence_dir(CID16) / "backup-store" / CID16 / "rtr-1" / "network"
    store.mkdir(parents=True)
    (store / "running.cfg").write_bytes(b"router bgp 65001\n neighbor 10.0.0.2 password s3cr3t-DEMO\n")
    res = archive.build_archive(eng, CID16, tmp_path / "out")
    with tarfile.open(res["path"]) as tar:
        names = tar.getnames()
        assert not [n for n in names if "backup-store" in n], names
        assert all(b"s3cr3t-DEMO" not in tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    result = archive.verify_archive(res["path"], [str(approved.home / "keys" / "controller.pub")])
    assert result.exit_code == 0, result.problems
