# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hash chain of the ``itsop.change`` audit log: canonical form, record hashes, checkpoint message.

The audit log is written once, in the private package ``_audit``: this module defines the
format; ``writer`` (:class:`AuditWriter`) appends records, ``verify`` (:func:`verify_log`)
checks a log offline, ``keys`` loads and makes the Ed25519 keys and ``redact`` removes secrets
from what is recorded. The callback ``itsop.change.audit_log`` writes through the writer;
``sopctl audit verify`` (and every other reader) uses the verifier. The format is documented in
``docs/audit-log.md``; the short version:

* one JSON object per line (JSONL), UTF-8, canonical form: keys sorted, no insignificant
  whitespace, non-ASCII kept as UTF-8, no NaN/Infinity;
* every record carries ``v`` (format version), ``seq`` (0, 1, 2, ...), ``time`` (UTC ISO-8601),
  ``run_id``, ``type``, ``prev_hash`` and ``hash``;
* ``hash = sha256(b"itsop.change.audit.record.v1\\0" + canonical(record without "hash"))``;
  the first record's ``prev_hash`` is ``sha256(b"itsop.change.audit.genesis.v1\\0" + run_id)``;
* ``checkpoint`` records carry ``count`` (records before it) and ``head`` (hash of the previous
  record) and, with a signing key, an Ed25519 signature ``sig`` over
  ``b"itsop.change.audit.checkpoint.v1\\0" + canonical({"count", "final", "head", "run_id",
  "seq", "time"})`` plus ``key_id`` (``sha256:`` + hex SHA-256 of the raw 32-byte public key);
* a complete log ends with a checkpoint whose ``final`` is true.

Only the standard library is required for writing unsigned logs and verifying chains; Ed25519
signing and signature checks use ``cryptography`` (an ansible-core dependency), imported lazily.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib
import json
import time

FORMAT_VERSION = 1
#: longest record line a reader accepts (memory bound for a log without newlines); the writer's
#: records are far smaller: results are redacted and lists of loop results are counted, not kept
MAX_RECORD_BYTES = 256 * 1024 * 1024
RECORD_DOMAIN = b"itsop.change.audit.record.v1\x00"
GENESIS_DOMAIN = b"itsop.change.audit.genesis.v1\x00"
CHECKPOINT_DOMAIN = b"itsop.change.audit.checkpoint.v1\x00"

#: Fields the writer owns; a caller's record must not set them.
RESERVED_FIELDS = frozenset(("v", "seq", "time", "run_id", "prev_hash", "hash"))
#: Fields of a checkpoint record that its signature covers (besides the domain tag).
SIGNED_CHECKPOINT_FIELDS = ("count", "final", "head", "run_id", "seq", "time")


class AuditLogError(Exception):
    """Raised for writer misuse and unusable keys or paths."""


# --------------------------------------------------------------------------- canonical form

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(obj):
    """Return the canonical UTF-8 JSON bytes of ``obj`` (sorted keys, compact, no NaN)."""
    return _ENCODER.encode(obj).encode("utf-8")


def canonical_with_hash(rec):
    """Serialise ``rec`` once: return (canonical bytes without ``hash``, line with ``hash``).

    Top-level members are encoded one by one and joined in sorted key order, which is exactly
    what :func:`canonical_json` produces; the ``hash`` member is then spliced in at its sorted
    place instead of encoding the whole record a second time.
    """
    encode = _ENCODER.encode
    members = sorted((key, encode(key) + ":" + encode(value)) for key, value in rec.items())
    body = "{" + ",".join(member[1] for member in members) + "}"
    body_bytes = body.encode("utf-8")
    digest = sha256_hex(RECORD_DOMAIN + body_bytes)
    members.append(("hash", '"hash":"%s"' % digest))
    members.sort()
    line = ("{" + ",".join(member[1] for member in members) + "}\n").encode("utf-8")
    return digest, line


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def genesis_hash(run_id):
    """``prev_hash`` of the first record of a log of run ``run_id``."""
    return sha256_hex(GENESIS_DOMAIN + str(run_id).encode("utf-8"))


def record_hash(record):
    """Hash of a record: SHA-256 over the domain tag and the canonical record without ``hash``."""
    body = dict(record)
    body.pop("hash", None)
    return sha256_hex(RECORD_DOMAIN + canonical_json(body))


def checkpoint_message(record):
    """The bytes an Ed25519 checkpoint signature covers."""
    payload = dict((k, record.get(k)) for k in SIGNED_CHECKPOINT_FIELDS)
    return CHECKPOINT_DOMAIN + canonical_json(payload)


def utc_now():
    """UTC ISO-8601 timestamp with microseconds and ``Z`` suffix."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%06dZ" % int((now % 1) * 1e6)
