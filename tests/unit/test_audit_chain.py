"""Unit tests of the hash chain, canonical form, redaction and the verifier (the private package _audit)."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from pathlib import Path

import pytest

from ansible_collections.itsop.change.plugins.module_utils._audit import chain
from ansible_collections.itsop.change.plugins.module_utils._audit import keys
from ansible_collections.itsop.change.plugins.module_utils._audit import redact
from ansible_collections.itsop.change.plugins.module_utils._audit import verify
from ansible_collections.itsop.change.plugins.module_utils._audit import writer


def make_log(tmp: Path, n: int = 5, key=None, every: int = 0, name: str = "run.jsonl") -> Path:
    path = tmp / name
    w = writer.AuditWriter(path, run_id="run-1", signing_key=key, checkpoint_every=every,
                       stamp={"change_id": "CR-1", "stage": "3"})
    for i in range(n):
        w.append({"type": "result", "host": f"h{i}", "status": "ok", "changed": i % 2 == 0,
                  "result": {"msg": f"message {i} é"}})
    w.close()
    return path


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@pytest.fixture
def keypair(tmp_path):
    priv = tmp_path / "signing.pem"
    keys.write_keypair(str(priv), str(tmp_path / "signing.pub"))
    return priv, tmp_path / "signing.pub"


# ---------------------------------------------------------------- canonical form and hashing

def test_canonical_json_is_sorted_compact_utf8():
    assert chain.canonical_json({"b": 1, "a": [1, {"d": "é", "c": None}]}) == \
        '{"a":[1,{"c":null,"d":"é"}],"b":1}'.encode()
    with pytest.raises(ValueError):
        chain.canonical_json({"x": float("nan")})


def test_record_hash_is_domain_separated_and_excludes_hash():
    rec = {"type": "x", "seq": 0, "hash": "ignored"}
    plain = hashlib.sha256(chain.canonical_json({"type": "x", "seq": 0})).hexdigest()
    tagged = hashlib.sha256(b"itsop.change.audit.record.v1\x00" + chain.canonical_json({"type": "x", "seq": 0}))
    assert chain.record_hash(rec) == tagged.hexdigest() != plain
    assert chain.genesis_hash("a") != chain.genesis_hash("b")


def test_single_pass_serialisation_matches_canonical_json():
    rec = {"z": [1, {"b": "é", "a": None}], "Ä": 1.5, "a b": True, "\u2028": "x\n\"", "type": "t"}
    digest, line = chain.canonical_with_hash(rec)
    assert line == chain.canonical_json(dict(rec, hash=digest)) + b"\n"
    assert digest == chain.record_hash(rec)


def test_written_lines_are_canonical_and_chained(tmp_path):
    path = make_log(tmp_path, 3)
    recs = [json.loads(x) for x in lines(path)]
    assert [r["seq"] for r in recs] == [0, 1, 2, 3]
    assert recs[0]["prev_hash"] == chain.genesis_hash("run-1")
    for prev, rec in itertools.pairwise(recs):
        assert rec["prev_hash"] == prev["hash"]
    for raw, rec in zip(lines(path), recs, strict=True):
        assert raw == chain.canonical_json(rec) + b"\n"
        assert rec["time"].endswith("Z") and rec["change_id"] == "CR-1"
    assert recs[-1]["type"] == "checkpoint" and recs[-1]["final"] is True
    assert recs[-1]["count"] == 3 and recs[-1]["head"] == recs[-2]["hash"]


# ---------------------------------------------------------------- verification

def test_intact_unsigned_log_says_it_is_only_chained(tmp_path):
    res = verify.verify_log(make_log(tmp_path))
    assert res.status == "intact" and res.exit_code == 0
    assert res.records == 6 and res.checkpoints == 1 and res.signature == "unsigned"
    assert any("not signed" in n for n in res.notes)


def test_every_single_byte_change_is_detected_at_its_record(tmp_path):
    path = make_log(tmp_path, 4)
    original = path.read_bytes()
    starts, pos = [], 0
    for raw in lines(path):
        starts.append((pos, pos + len(raw)))
        pos += len(raw)
    for offset in range(len(original)):
        data = bytearray(original)
        data[offset] = data[offset] ^ 0x01
        bad = tmp_path / "bad.jsonl"
        bad.write_bytes(bytes(data))
        res = verify.verify_log(bad)
        line = next(i for i, (a, b) in enumerate(starts) if a <= offset < b) + 1
        assert res.status in ("tampered", "torn_tail"), (offset, res.summary())
        assert res.first_bad_line == line, (offset, line, res.summary())
        assert res.exit_code == 1


@pytest.mark.parametrize("edit", ["delete", "reorder", "insert", "truncate_lines"])
def test_structural_edits_are_detected(tmp_path, edit):
    path = make_log(tmp_path, 5)
    ls = lines(path)
    if edit == "delete":
        del ls[2]
    elif edit == "reorder":
        ls[1], ls[2] = ls[2], ls[1]
    elif edit == "insert":
        ls.insert(3, ls[3])
    else:
        ls = ls[:4]
    path.write_bytes(b"".join(ls))
    res = verify.verify_log(path)
    assert not res.ok and res.exit_code == 1
    if edit == "truncate_lines":
        assert res.status == "incomplete" and "no end-of-run checkpoint" in res.reason
        assert res.records == 4
    else:
        assert res.status == "tampered"
        # the first line that no longer continues the chain
        assert res.first_bad_line == {"delete": 3, "reorder": 2, "insert": 5}[edit]


def test_deleting_first_record_is_detected(tmp_path):
    path = make_log(tmp_path)
    path.write_bytes(b"".join(lines(path)[1:]))
    res = verify.verify_log(path)
    assert res.status == "tampered" and res.first_bad_line == 1


def test_torn_tail_is_reported_and_prefix_verifies(tmp_path):
    path = make_log(tmp_path, 5)
    ls = lines(path)
    path.write_bytes(b"".join(ls[:3]) + ls[3][: len(ls[3]) // 2])
    res = verify.verify_log(path)
    assert res.status == "torn_tail" and res.exit_code == 1
    assert res.records == 3 and res.first_bad_line == 4 and res.first_bad_seq == 3
    assert "killed mid-write" in res.reason


def test_empty_and_missing_logs(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert verify.verify_log(empty).status == "incomplete"
    missing = verify.verify_log(tmp_path / "nope.jsonl")
    assert missing.status == "unreadable" and missing.exit_code == 2


def test_signed_log_verifies_with_key_and_says_so_without(tmp_path, keypair):
    priv, pub = keypair
    path = make_log(tmp_path, 7, key=str(priv), every=3)
    res = verify.verify_log(path, public_keys=[str(pub)])
    assert res.ok and res.signature == "verified" and res.signed_checkpoints == 3
    res = verify.verify_log(path)
    assert res.ok and res.signature == "not_checked"
    assert any("no public key was given" in n for n in res.notes)


def test_wrong_public_key_is_named(tmp_path, keypair):
    priv, _ = keypair
    path = make_log(tmp_path, key=str(priv))
    other = tmp_path / "other.pem"
    keys.write_keypair(str(other))
    res = verify.verify_log(path, public_keys=[str(other) + ".pub"])
    assert res.status == "tampered" and "not among the given public keys" in res.reason
    assert res.signature == "invalid"


def _rebuild(path: Path, out: Path, key=None, mutate=None) -> Path:
    """What an attacker without the original key can do: edit records and rebuild the chain."""
    recs = [json.loads(x) for x in lines(path)]
    w = writer.AuditWriter(out, run_id=recs[0]["run_id"], signing_key=key, checkpoint_every=0)
    for rec in recs:
        if rec["type"] == "checkpoint":
            continue
        body = {k: v for k, v in rec.items() if k not in chain.RESERVED_FIELDS}
        if mutate:
            mutate(body)
        w.append(body)
    w.close()
    return out


def test_rewriting_the_whole_chain_without_the_key_is_detected(tmp_path, keypair):
    priv, pub = keypair
    path = make_log(tmp_path, key=str(priv))

    def hide_failure(body):
        if body.get("status") == "ok":
            body["changed"] = False

    forged = _rebuild(path, tmp_path / "forged.jsonl", mutate=hide_failure)
    assert verify.verify_log(forged).ok  # chain alone cannot tell ...
    res = verify.verify_log(forged, public_keys=[str(pub)])  # ... the signature requirement can
    assert res.status == "tampered" and "unsigned" in res.reason
    attacker = tmp_path / "attacker.pem"
    keys.write_keypair(str(attacker))
    forged2 = _rebuild(path, tmp_path / "forged2.jsonl", key=str(attacker), mutate=hide_failure)
    res = verify.verify_log(forged2, public_keys=[str(pub)])
    assert res.status == "tampered" and "not among the given public keys" in res.reason


def test_forged_signature_with_recomputed_hashes_is_invalid(tmp_path, keypair):
    priv, pub = keypair
    path = make_log(tmp_path, key=str(priv))
    recs = [json.loads(x) for x in lines(path)]
    cp = recs[-1]
    cp["sig"] = ("00" if cp["sig"][:2] != "00" else "11") + cp["sig"][2:]
    cp["hash"] = chain.record_hash(cp)
    path.write_bytes(b"".join(chain.canonical_json(r) + b"\n" for r in recs))
    res = verify.verify_log(path, public_keys=[str(pub)])
    assert res.status == "tampered" and "signature is invalid" in res.reason
    assert res.first_bad_line == len(recs)


def test_deleting_a_whole_session_needs_the_stored_head(tmp_path):
    path = make_log(tmp_path, 3)
    first_session = path.read_bytes()
    w = writer.AuditWriter.resume(path)
    w.append({"type": "approval", "by": "manager"})
    w.close()
    head = verify.verify_log(path).head
    assert verify.verify_log(path, expect_head=head).ok
    path.write_bytes(first_session)  # the tail (a complete session) removed
    assert verify.verify_log(path).ok  # still a complete chain ending with a final checkpoint
    res = verify.verify_log(path, expect_head=head)
    assert res.status == "tampered" and "expected head hash" in res.reason


def test_find_logs_and_iter_records(tmp_path):
    make_log(tmp_path, 2, name="a.jsonl")
    make_log(tmp_path, 2, name="b.jsonl")
    (tmp_path / "notes.txt").write_text("x")
    files = verify.find_logs(tmp_path)
    assert [Path(f).name for f in files] == ["a.jsonl", "b.jsonl"]
    assert len(list(verify.iter_records(files[0]))) == 3


# ---------------------------------------------------------------- redaction

def test_redactor_replaces_secret_keys_and_never_mutates_input():
    data = {
        "msg": "ok", "db_password": "s3cr3t", "nested": [{"api_token": "t", "name": "n"}],
        "ansible_facts": {"ansible_env": {"HOME": "/root"}, "ansible_ssh_host_key_rsa_public": "AAA"},
        "_ansible_no_log": False, "extra_vars": {"a": 1}, "Authorization": "Bearer x",
        "weird": {1: {2, 3}, "f": float("inf"), "b": b"\xff"},
    }
    before = copy.deepcopy(data)
    out = redact.Redactor().redact(data)
    assert data == before
    text = json.dumps(out)
    for secret in ("s3cr3t", '"t"', "Bearer", "AAA", "/root"):
        assert secret not in text
    assert out["db_password"] == redact.REDACTED and out["nested"][0]["name"] == "n"
    assert out["ansible_facts"]["ansible_env"] == redact.DROPPED and out["extra_vars"] == redact.DROPPED
    assert "_ansible_no_log" not in out
    assert out["weird"] == {"1": [2, 3], "f": "inf", "b": "\ufffd"}
    chain.canonical_json(out)  # always serialisable


def test_redactor_custom_patterns():
    out = redact.Redactor(patterns=["^pin$"]).redact({"pin": "1234", "password": "kept", "spin": 1})
    assert out == {"pin": redact.REDACTED, "password": "kept", "spin": 1}


# ---------------------------------------------------------------- keys

def test_private_key_must_be_private(tmp_path):
    priv = tmp_path / "k.pem"
    kid = keys.write_keypair(str(priv))
    assert kid.startswith("sha256:") and len(kid) == 71
    assert priv.stat().st_mode & 0o777 == 0o600
    priv.chmod(0o644)
    with pytest.raises(chain.AuditLogError, match="chmod 600"):
        keys.load_private_key(str(priv))
    with pytest.raises(chain.AuditLogError, match="refusing to overwrite"):
        keys.write_keypair(str(priv))


def test_bad_key_files(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    junk.chmod(0o600)
    with pytest.raises(chain.AuditLogError, match="not a usable PEM"):
        keys.load_private_key(str(junk))
    with pytest.raises(chain.AuditLogError, match="not a PEM Ed25519 key"):
        keys.load_public_key(str(junk))
    res = verify.verify_log(junk, public_keys=[str(junk)])
    assert res.status == "unreadable" and res.exit_code == 2


# ------------------------------------------------------------------ known secret values (issue 15, class 4)

def test_known_secret_is_replaced_inside_any_text_key_and_nesting():
    red = redact.Redactor()
    assert red.add_secret("s3cr.t+(x)")  # regular-expression characters are taken literally
    assert not red.add_secret("s3cr.t+(x)")  # already known
    data = {"line": "conn=db://u:s3cr.t+(x)@h", "nested": {"l": ["s3cr.t+(x)", {"k": "a s3cr.t+(x) b"}]},
            "s3cr.t+(x)": 1, "other": "s3crXt+(x)", "raw": b"b s3cr.t+(x)"}
    out = red.redact(data)
    assert out == {"line": "conn=db://u:VALUE_REDACTED@h",
                   "nested": {"l": ["VALUE_REDACTED", {"k": "a VALUE_REDACTED b"}]},
                   "VALUE_REDACTED": 1, "other": "s3crXt+(x)", "raw": "b VALUE_REDACTED"}
    assert data["line"] == "conn=db://u:s3cr.t+(x)@h"  # the input is not modified


def test_longer_secret_wins_and_each_line_of_a_multiline_secret_is_known():
    red = redact.Redactor()
    red.add_secret("abcd")
    red.add_secret("abcdefgh")
    assert red.redact("xabcdefghx abcd") == "xVALUE_REDACTEDx VALUE_REDACTED"
    red.add_secret("-----BEGIN KEY-----\n  line-one-xyz\nline-two-xyz\n")
    assert red.redact(["line-one-xyz", "pre line-two-xyz"]) == ["VALUE_REDACTED", "pre VALUE_REDACTED"]


def test_short_secret_is_not_searched_for():
    red = redact.Redactor()
    assert not red.add_secret("abc")
    assert red.secret_count == 0
    assert red.redact("abc abc") == "abc abc"


def test_secret_probe_learns_from_tagged_values():
    class Tagged(str):
        pass

    red = redact.Redactor(secret_probe=lambda v: str(v) if isinstance(v, Tagged) else None)
    out = red.redact({"a": Tagged("hidden-value"), "b": "later hidden-value here"})
    assert out["a"] == "VALUE_REDACTED"
    # dict order: the tagged value was seen first, so the plain copy after it is replaced too
    assert out["b"] == "later VALUE_REDACTED here"


# ------------------------------------------------------------------ hostile inputs to the verifier (issue 15, class 7)

def test_verifier_refuses_fifos_and_devices_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "run.jsonl"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        res = verify.verify_log(str(path))  # an open() of the FIFO would block forever
        assert res.status == verify.STATUS_UNREADABLE and "not a regular file" in res.reason
        assert list(verify.iter_records(str(path))) == []
    with pytest.raises(chain.AuditLogError, match="not a regular file"):
        keys.load_public_key(str(fifo))
    with pytest.raises(chain.AuditLogError, match="not a regular file"):
        keys.load_private_key("/dev/zero")


def test_a_line_without_end_is_not_read_into_memory_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(verify, "MAX_RECORD_BYTES", 4096)  # the limit the verifier reads
    log = tmp_path / "huge.jsonl"
    log.write_bytes(b"{" + b"0" * 100000 + b"}\n")
    res = verify.verify_log(str(log))
    assert res.status == verify.STATUS_TAMPERED and "longer than 4096 bytes" in res.reason
    assert list(verify.iter_records(str(log))) == []
