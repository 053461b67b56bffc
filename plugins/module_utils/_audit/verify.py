# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline verification of an audit log: chain, sequence, checkpoints and their signatures.

:func:`verify_log` streams a log line by line and stops at the first bad record; the result
(:class:`VerifyResult`) says intact, tampered, torn tail, incomplete or unreadable, and whether
the checkpoint signatures were verified. :func:`iter_records` and :func:`find_logs` read logs.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import os
import re

try:
    from cryptography.exceptions import InvalidSignature
except ImportError:  # pragma: no cover - cryptography is an ansible-core dependency
    InvalidSignature = ValueError

from ansible_collections.itsop.change.plugins.module_utils._audit.chain import (
    FORMAT_VERSION,
    MAX_RECORD_BYTES,
    AuditLogError,
    canonical_json,
    checkpoint_message,
    genesis_hash,
    record_hash,
)
from ansible_collections.itsop.change.plugins.module_utils._audit.keys import (
    load_public_key,
    public_key_id,
)
from ansible_collections.itsop.change.plugins.module_utils.safe_input import (
    InputError,
    open_regular_file,
)


STATUS_INTACT = "intact"
STATUS_TAMPERED = "tampered"
STATUS_TORN_TAIL = "torn_tail"
STATUS_INCOMPLETE = "incomplete"
STATUS_UNREADABLE = "unreadable"

SIG_VERIFIED = "verified"
SIG_UNSIGNED = "unsigned"
SIG_NOT_CHECKED = "not_checked"
SIG_INVALID = "invalid"

_HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")


class VerifyResult:
    """Outcome of :func:`verify_log` for one file."""

    def __init__(self, path):
        self.path = str(path)
        self.status = STATUS_INTACT
        self.reason = None
        self.first_bad_seq = None
        self.first_bad_line = None
        self.records = 0
        self.checkpoints = 0
        self.signed_checkpoints = 0
        self.signature = SIG_UNSIGNED
        self.key_ids = []
        self.run_id = None
        self.head = None
        self.first_time = None
        self.last_time = None
        self.notes = []

    @property
    def ok(self):
        return self.status == STATUS_INTACT

    @property
    def exit_code(self):
        """0 intact, 1 tampered / torn tail / incomplete, 2 unreadable."""
        if self.status == STATUS_INTACT:
            return 0
        if self.status == STATUS_UNREADABLE:
            return 2
        return 1

    def fail(self, status, reason, line=None, seq=None):
        self.status = status
        self.reason = reason
        self.first_bad_line = line
        self.first_bad_seq = seq
        return self

    def to_dict(self):
        return {
            "path": self.path, "status": self.status, "ok": self.ok, "reason": self.reason,
            "first_bad_seq": self.first_bad_seq, "first_bad_line": self.first_bad_line,
            "records": self.records, "checkpoints": self.checkpoints,
            "signed_checkpoints": self.signed_checkpoints, "signature": self.signature,
            "key_ids": list(self.key_ids), "run_id": self.run_id, "head": self.head,
            "first_time": self.first_time, "last_time": self.last_time, "notes": list(self.notes),
        }

    def summary(self):
        if self.status == STATUS_INTACT:
            text = "INTACT: %d records, %d checkpoints, head %s" % (
                self.records, self.checkpoints, self.head)
        elif self.status == STATUS_UNREADABLE:
            text = "UNREADABLE: %s" % self.reason
        else:
            where = ""
            if self.first_bad_line is not None:
                where = " at line %d (record seq %s)" % (self.first_bad_line, self.first_bad_seq)
            text = "%s%s: %s" % (self.status.upper().replace("_", " "), where, self.reason)
        return text


def _key_table(public_keys):
    table = {}
    for key in public_keys or ():
        if not hasattr(key, "verify"):
            key = load_public_key(key)
        table[public_key_id(key)] = key
    return table


def verify_log(path, public_keys=None, expect_head=None):
    """Verify one audit log file; stream it line by line and stop at the first bad record.

    ``public_keys``: Ed25519 public key objects or PEM paths. When given, every checkpoint must
    carry a valid signature by one of them. Without keys signatures are reported as not checked.
    ``expect_head``: a record hash known from elsewhere (e.g. a copied checkpoint); the log must
    contain a record with that hash, which detects deletion of a whole tail.
    """
    res = VerifyResult(path)
    try:
        keys = _key_table(public_keys)
    except AuditLogError as exc:
        return res.fail(STATUS_UNREADABLE, str(exc))
    require_sig = bool(keys)
    expect_found = expect_head is None
    try:
        handle = _open_log(path)
    except InputError as exc:  # a FIFO, device or directory is never opened
        return res.fail(STATUS_UNREADABLE, str(exc))
    unsigned_seen = False
    not_checked = False
    sig_failed = []
    prev = None
    last = None
    line_no = 0
    try:
        with handle:
            for raw in _lines(handle):
                line_no += 1
                seq = line_no - 1
                if len(raw) > MAX_RECORD_BYTES:
                    return res.fail(STATUS_TAMPERED, "line longer than %d bytes: not a record this writer makes"
                                    % MAX_RECORD_BYTES, line_no, seq)
                if not raw.endswith(b"\n"):
                    return res.fail(
                        STATUS_TORN_TAIL,
                        "last line is incomplete (%d bytes, no newline): the writer was probably "
                        "killed mid-write; the %d records before it verify" % (len(raw), res.records),
                        line_no, seq)
                body = raw[:-1]
                try:
                    rec = json.loads(body.decode("utf-8"))
                except (ValueError, UnicodeDecodeError) as exc:
                    return res.fail(STATUS_TAMPERED, "line is not valid UTF-8 JSON: %s" % exc, line_no, seq)
                bad = _check_record(rec, body, seq, prev, res)
                if bad:
                    return res.fail(STATUS_TAMPERED, bad, line_no, seq)
                if rec["type"] == "checkpoint":
                    res.checkpoints += 1
                    sig = rec.get("sig")
                    if sig is None:
                        unsigned_seen = True
                        if require_sig:
                            sig_failed.append(True)
                            return res.fail(
                                STATUS_TAMPERED,
                                "checkpoint is unsigned but a public key was given: every checkpoint "
                                "must be signed (chain rewritten without the key?)", line_no, seq)
                    else:
                        res.signed_checkpoints += 1
                        kid = rec.get("key_id")
                        if kid not in res.key_ids:
                            res.key_ids.append(kid)
                        if not require_sig:
                            not_checked = True
                        else:
                            key = keys.get(kid)
                            if key is None:
                                sig_failed.append(True)
                                return res.fail(
                                    STATUS_TAMPERED,
                                    "checkpoint is signed by key %s, which is not among the given public "
                                    "keys (%s): wrong key given, or chain rewritten with another key"
                                    % (kid, ", ".join(sorted(keys))), line_no, seq)
                            try:
                                key.verify(bytes.fromhex(sig), checkpoint_message(rec))
                            except (InvalidSignature, ValueError, TypeError):
                                sig_failed.append(True)
                                return res.fail(STATUS_TAMPERED,
                                                "checkpoint signature is invalid for key %s" % kid,
                                                line_no, seq)
                if not expect_found and rec["hash"] == expect_head:
                    expect_found = True
                res.records += 1
                res.head = rec["hash"]
                res.last_time = rec.get("time")
                if res.first_time is None:
                    res.first_time = rec.get("time")
                prev = rec
                last = rec
    except (IOError, OSError) as exc:
        return res.fail(STATUS_UNREADABLE, "read error in %s: %s" % (path, exc))
    finally:
        if sig_failed:
            res.signature = SIG_INVALID
        elif res.signed_checkpoints == 0:
            res.signature = SIG_UNSIGNED
        elif not_checked:
            res.signature = SIG_NOT_CHECKED
        else:
            res.signature = SIG_VERIFIED
        if res.signature == SIG_UNSIGNED and res.checkpoints:
            res.notes.append("checkpoints are not signed: the log is only hash-chained, not signed; "
                             "someone able to rewrite the whole file could rebuild the chain")
        elif res.signature == SIG_NOT_CHECKED:
            res.notes.append("the log is signed (key %s) but no public key was given: signatures were "
                             "NOT checked, only the hash chain" % ", ".join(str(k) for k in res.key_ids))
        if unsigned_seen and res.signed_checkpoints:
            res.notes.append("some checkpoints are signed and some are not")
    if last is None:
        return res.fail(STATUS_INCOMPLETE, "the log is empty: no records and no end-of-run checkpoint",
                        1, 0)
    if not expect_found:
        return res.fail(STATUS_TAMPERED, "expected head hash %s is not in the log (records deleted "
                        "after it, or the log was rewritten)" % expect_head, line_no, None)
    if last["type"] != "checkpoint" or not last.get("final"):
        return res.fail(STATUS_INCOMPLETE,
                        "no end-of-run checkpoint: the last record (seq %d, type %s) is not a final "
                        "checkpoint (run killed, still running, or its tail deleted)"
                        % (last["seq"], last["type"]), line_no, last["seq"])
    return res


def _check_record(rec, body, seq, prev, res):
    """Return None when ``rec`` continues the chain correctly, else the reason it does not."""
    if not isinstance(rec, dict):
        return "line is JSON but not an object"
    for field in ("v", "seq", "time", "run_id", "type", "prev_hash", "hash"):
        if field not in rec:
            return "required field %r is missing" % field
    if rec["v"] != FORMAT_VERSION:
        return "unsupported format version %r" % (rec["v"],)
    if canonical_json(rec) != body:
        return "record is not in canonical form (bytes were edited)"
    if not isinstance(rec["hash"], str) or not _HEX64.match(rec["hash"]):
        return "hash field is not a SHA-256 hex digest"
    if record_hash(rec) != rec["hash"]:
        return "content does not match its hash (record edited)"
    if prev is None:
        res.run_id = rec["run_id"]
        if rec["prev_hash"] != genesis_hash(rec["run_id"]):
            return "first record does not start the chain (earlier records deleted?)"
    else:
        if rec["run_id"] != res.run_id:
            return "run id %r differs from the log's run id %r" % (rec["run_id"], res.run_id)
        if rec["prev_hash"] != prev["hash"]:
            return ("prev_hash does not match the hash of the record before it (seq %s): records "
                    "deleted, inserted or reordered" % prev.get("seq"))
    if rec["seq"] != seq:
        return "sequence number %r where %d was expected: records deleted, inserted or reordered" % (
            rec["seq"], seq)
    if rec["type"] == "checkpoint":
        if rec.get("count") != seq:
            return "checkpoint count %r does not match its position %d" % (rec.get("count"), seq)
        if rec.get("head") != rec["prev_hash"]:
            return "checkpoint head does not match the previous record's hash"
    return None


def find_logs(path):
    """A file → [file]; a directory → its ``*.jsonl`` files (sorted)."""
    path = str(path)
    if os.path.isdir(path):
        return sorted(os.path.join(path, name) for name in os.listdir(path)
                      if name.endswith(".jsonl") and os.path.isfile(os.path.join(path, name)))
    return [path]


def _open_log(path):
    """A log file opened for reading: a regular file only (InputError otherwise, never blocking)."""
    fd, _st = open_regular_file(path, limit=None, what="audit log")
    return os.fdopen(fd, "rb")


def _lines(handle):
    """Lines of at most MAX_RECORD_BYTES + 1 bytes (a longer line comes in pieces, the first too long)."""
    while True:
        raw = handle.readline(MAX_RECORD_BYTES + 1)
        if not raw:
            return
        yield raw


def iter_records(path):
    """Yield parsed records of a log file; stop silently at a torn, overlong or unparsable line
    (and yield nothing for a path that is not a regular file)."""
    try:
        handle = _open_log(path)
    except InputError:
        return
    with handle:
        for raw in _lines(handle):
            if not raw.endswith(b"\n") or len(raw) > MAX_RECORD_BYTES:
                return
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return
            if isinstance(rec, dict):
                yield rec
