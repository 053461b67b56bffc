# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hash-chained, checkpoint-signed audit log: writer and offline verifier (written once).

This file is the single implementation of the audit log format of ``itsop.change``. The callback
``itsop.change.audit_log`` writes through :class:`AuditWriter`; ``sopctl audit verify`` (and every
other reader) checks logs with :func:`verify_log`. The format is documented in
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

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import json
import math
import os
import re
import socket
import stat
import time
import uuid

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - cryptography is an ansible-core dependency
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc

from ansible_collections.itsop.change.plugins.module_utils.safe_input import (
    InputError,
    open_regular_file,
    read_regular_file,
)

FORMAT_VERSION = 1
#: longest record line a reader accepts (memory bound for a log without newlines); the writer's
#: records are far smaller: results are redacted and lists of loop results are counted, not kept
MAX_RECORD_BYTES = 256 * 1024 * 1024
KEY_FILE_LIMIT = 64 * 1024
RECORD_DOMAIN = b"itsop.change.audit.record.v1\x00"
GENESIS_DOMAIN = b"itsop.change.audit.genesis.v1\x00"
CHECKPOINT_DOMAIN = b"itsop.change.audit.checkpoint.v1\x00"

#: Fields the writer owns; a caller's record must not set them.
RESERVED_FIELDS = frozenset(("v", "seq", "time", "run_id", "prev_hash", "hash"))
#: Fields of a checkpoint record that its signature covers (besides the domain tag).
SIGNED_CHECKPOINT_FIELDS = ("count", "final", "head", "run_id", "seq", "time")

FSYNC_MODES = ("always", "checkpoint", "never")
DEFAULT_CHECKPOINT_EVERY = 1000

#: Substrings (case-insensitive regular expressions) of mapping keys whose values are replaced.
DEFAULT_REDACT_PATTERNS = (
    "passw", "passphrase", "pwd", "secret", "token", "key", "private", "credential", "vault",
    "authorization", "cookie", "signature",
)
#: Keys dropped entirely (their values are never recorded), whatever their content.
DEFAULT_DROP_KEYS = ("ansible_env", "extra_vars")
REDACTED = "VALUE_REDACTED"
DROPPED = "NOT_RECORDED"

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


class AuditLogError(Exception):
    """Raised for writer misuse and unusable keys or paths."""


# --------------------------------------------------------------------------- canonical form

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(obj):
    """Return the canonical UTF-8 JSON bytes of ``obj`` (sorted keys, compact, no NaN)."""
    return _ENCODER.encode(obj).encode("utf-8")


def _canonical_with_hash(rec):
    """Serialise ``rec`` once: return (canonical bytes without ``hash``, line with ``hash``).

    Top-level members are encoded one by one and joined in sorted key order, which is exactly
    what :func:`canonical_json` produces; the ``hash`` member is then spliced in at its sorted
    place instead of encoding the whole record a second time.
    """
    encode = _ENCODER.encode
    members = sorted((key, encode(key) + ":" + encode(value)) for key, value in rec.items())
    body = "{" + ",".join(member[1] for member in members) + "}"
    body_bytes = body.encode("utf-8")
    digest = _sha256_hex(RECORD_DOMAIN + body_bytes)
    members.append(("hash", '"hash":"%s"' % digest))
    members.sort()
    line = ("{" + ",".join(member[1] for member in members) + "}\n").encode("utf-8")
    return digest, line


def _sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def genesis_hash(run_id):
    """``prev_hash`` of the first record of a log of run ``run_id``."""
    return _sha256_hex(GENESIS_DOMAIN + str(run_id).encode("utf-8"))


def record_hash(record):
    """Hash of a record: SHA-256 over the domain tag and the canonical record without ``hash``."""
    body = dict(record)
    body.pop("hash", None)
    return _sha256_hex(RECORD_DOMAIN + canonical_json(body))


def checkpoint_message(record):
    """The bytes an Ed25519 checkpoint signature covers."""
    payload = dict((k, record.get(k)) for k in SIGNED_CHECKPOINT_FIELDS)
    return CHECKPOINT_DOMAIN + canonical_json(payload)


def utc_now():
    """UTC ISO-8601 timestamp with microseconds and ``Z`` suffix."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%06dZ" % int((now % 1) * 1e6)


# --------------------------------------------------------------------------- redaction

class Redactor:
    """Copy a value into plain JSON types, replacing secrets; the input is never modified.

    * keys matching one of ``patterns`` (case-insensitive regular expressions, searched) get
      their value replaced by ``VALUE_REDACTED``;
    * keys in ``drop_keys`` get ``NOT_RECORDED``;
    * keys starting with ``_ansible_`` (Ansible internals) are left out;
    * anything that is not a JSON type becomes its ``str()``; NaN/Infinity become strings;
    * **known secret values** (``add_secret()``; the audit callback adds every vaulted value of the
      play) are replaced wherever they occur inside any string or key, also when concatenated
      with other text (``conn=VALUE_REDACTED``), nested or in loop items; each line of a
      multi-line secret too. Values shorter than ``MIN_SECRET_LENGTH`` are not searched for
      (they would blank ordinary text);
    * ``secret_probe(value)``, when given, is asked about every value that is not a plain
      ``str``/``int``/``bool``/``None``: when it returns a string, that is a secret's plaintext
      (e.g. a vault-tagged value): the value is redacted and the secret learned.
    """

    MIN_SECRET_LENGTH = 4

    def __init__(self, patterns=None, drop_keys=None, max_depth=64, secret_probe=None):
        patterns = DEFAULT_REDACT_PATTERNS if patterns is None else patterns
        self.patterns = tuple(p for p in patterns if p)
        self._rx = re.compile("|".join("(?:%s)" % p for p in self.patterns), re.IGNORECASE) \
            if self.patterns else None
        self.drop_keys = frozenset(DEFAULT_DROP_KEYS if drop_keys is None else drop_keys)
        self.max_depth = max_depth
        self._cache = {}
        self._secrets = set()
        self._secret_rx = None
        self._probe = secret_probe

    def add_secret(self, text):
        """Learn a secret value; return True when it is new (and will be searched for)."""
        if not isinstance(text, str):
            return False
        text = str(text)
        pieces = [text] + [line.strip() for line in text.splitlines()]
        new = set(p for p in pieces if len(p) >= self.MIN_SECRET_LENGTH) - self._secrets
        if not new:
            return False
        self._secrets |= new
        # longest first, so a secret that contains another is replaced whole
        ordered = sorted(self._secrets, key=lambda s: (-len(s), s))
        self._secret_rx = re.compile("|".join(re.escape(s) for s in ordered))
        return True

    @property
    def secret_count(self):
        return len(self._secrets)

    def scrub(self, text):
        """Replace every known secret value inside ``text``."""
        if self._secret_rx is None:
            return text
        return self._secret_rx.sub(REDACTED, text)

    def key_action(self, key):
        """Return 0 (keep), 1 (redact value), 2 (drop value) or 3 (omit key) for a mapping key."""
        action = self._cache.get(key)
        if action is None:
            if key.startswith("_ansible_"):
                action = 3
            elif key in self.drop_keys:
                action = 2
            elif self._rx is not None and self._rx.search(key):
                action = 1
            else:
                action = 0
            if len(self._cache) < 10000:
                self._cache[key] = action
        return action

    def is_secret_key(self, key):
        return self.key_action(str(key)) in (1, 2)

    def redact(self, value, _depth=0):
        vt = type(value)
        if vt is str:
            return value if self._secret_rx is None else self._secret_rx.sub(REDACTED, value)
        if vt is bool or vt is int or value is None:
            return value
        if _depth > self.max_depth:
            return "NOT_RECORDED_TOO_DEEP"
        if self._probe is not None:
            plaintext = self._probe(value)
            if plaintext is not None:
                self.add_secret(plaintext)
                return REDACTED
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                skey = key if isinstance(key, str) else str(key)
                if self._secret_rx is not None:
                    skey = self._secret_rx.sub(REDACTED, skey)
                action = self.key_action(skey)
                if action == 0:
                    out[skey] = self.redact(item, _depth + 1)
                elif action == 1:
                    out[skey] = REDACTED
                elif action == 2:
                    out[skey] = DROPPED
            return out
        if isinstance(value, (list, tuple)):
            return [self.redact(item, _depth + 1) for item in value]
        if vt is float:
            if math.isnan(value) or math.isinf(value):
                return str(value)
            return value
        if isinstance(value, str):
            return self.scrub(str(value))
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return self.redact(float(value), _depth)
        if isinstance(value, (set, frozenset)):
            return [self.redact(item, _depth + 1) for item in sorted(value, key=str)]
        if isinstance(value, bytes):
            return self.scrub(value.decode("utf-8", "replace"))
        return self.scrub(str(value))


# --------------------------------------------------------------------------- keys

def _require_crypto():
    if not HAS_CRYPTOGRAPHY:
        raise AuditLogError("the Python library 'cryptography' is required for Ed25519 signatures: %s"
                            % CRYPTOGRAPHY_IMPORT_ERROR)


def public_key_id(public_key):
    """``sha256:<hex>`` of the raw 32-byte Ed25519 public key."""
    _require_crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + _sha256_hex(raw)


def generate_keypair():
    """Return ``(private_pem, public_pem)`` bytes of a new Ed25519 key pair (PKCS#8 / SPKI PEM)."""
    _require_crypto()
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return private_pem, public_pem


def write_keypair(private_path, public_path=None, overwrite=False):
    """Create an Ed25519 key pair: private key 0600, public key 0644. Returns the key id."""
    private_pem, public_pem = generate_keypair()
    public_path = public_path or (str(private_path) + ".pub")
    for path in (private_path, public_path):
        if os.path.lexists(path) and not overwrite:
            raise AuditLogError("refusing to overwrite existing key file %s" % path)
    _atomic_write(private_path, private_pem, 0o600)
    _atomic_write(public_path, public_pem, 0o644)
    return public_key_id(load_public_key(public_path))


def _atomic_write(path, data, mode):
    import tempfile
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-audit-key-")
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.replace(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_private_key(path, password=None):
    """Load an Ed25519 private key from a PEM (PKCS#8) file; refuse group/world-readable files."""
    _require_crypto()
    try:
        st = os.stat(path)
        data = read_regular_file(path, limit=KEY_FILE_LIMIT, what="signing key")
    except (IOError, OSError, InputError) as exc:
        raise AuditLogError("cannot read signing key %s: %s" % (path, exc)) from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuditLogError("signing key %s is accessible by group or others (mode %04o); "
                            "run chmod 600 on it" % (path, stat.S_IMODE(st.st_mode)))
    if isinstance(password, str):
        password = password.encode("utf-8")
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        raise AuditLogError("signing key %s is not a usable PEM private key: %s" % (path, exc)) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditLogError("signing key %s is not an Ed25519 key" % path)
    return key


def load_public_key(path):
    """Load an Ed25519 public key from a PEM file (a private key file is accepted too)."""
    _require_crypto()
    try:
        data = read_regular_file(path, limit=KEY_FILE_LIMIT, what="public key")
    except (IOError, OSError, InputError) as exc:
        raise AuditLogError("cannot read public key %s: %s" % (path, exc)) from exc
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as exc:
            raise AuditLogError("public key %s is not a PEM Ed25519 key: %s" % (path, exc)) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AuditLogError("public key %s is not an Ed25519 key" % path)
    return key


# --------------------------------------------------------------------------- writer

def default_operator():
    """Operator identity: OS user plus ``ITSOP_OPERATOR`` when set."""
    try:
        import pwd
        user = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        user = os.environ.get("USER") or os.environ.get("LOGNAME") or str(os.getuid())
    out = {"os_user": user}
    declared = os.environ.get("ITSOP_OPERATOR")
    if declared:
        out["declared"] = declared
    return out


def log_file_name(run_id, when=None):
    """File name of a run's log: ``<UTC yyyymmddThhmmssZ>-<run_id>.jsonl``."""
    when = time.time() if when is None else when
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(run_id))
    return "%s-%s.jsonl" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when)), safe)


def ensure_log_dir(log_dir):
    """Create ``log_dir`` (0700) if missing. Return a warning text if it is group/world accessible."""
    if not os.path.isdir(log_dir):
        os.makedirs(log_dir, 0o700)
        os.chmod(log_dir, 0o700)
        return None
    mode = stat.S_IMODE(os.stat(log_dir).st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return "audit log directory %s is accessible by group or others (mode %04o)" % (log_dir, mode)
    return None


class AuditWriter:
    """Append records to one hash-chained JSONL audit log.

    ``AuditWriter(path, run_id)`` creates the file (``O_EXCL``, mode 0600) and refuses an
    existing one; :meth:`resume` continues an existing, intact log. Every :meth:`append` is one
    ``write(2)`` of a complete line on an ``O_APPEND`` descriptor, so a killed process leaves a
    verifiable prefix (and at most one torn last line). ``fsync``: ``always`` (every record),
    ``checkpoint`` (each checkpoint) or ``never``. A checkpoint is written every
    ``checkpoint_every`` records and by :meth:`close` (``final=True``).

    ``stamp`` is a mapping merged into every record (e.g. change id, stage, operator); record
    fields win over it. ``signing_key`` is an Ed25519 private key object or a PEM file path.
    """

    def __init__(self, path, run_id=None, signing_key=None, fsync="checkpoint",
                 checkpoint_every=DEFAULT_CHECKPOINT_EVERY, stamp=None, _resume_state=None):
        if fsync not in FSYNC_MODES:
            raise AuditLogError("fsync must be one of %s, not %r" % (", ".join(FSYNC_MODES), fsync))
        self.path = str(path)
        self.fsync = fsync
        self.checkpoint_every = int(checkpoint_every or 0)
        self.stamp = dict(stamp or {})
        self._key = None
        self.key_id = None
        if signing_key is not None:
            if not hasattr(signing_key, "sign"):
                signing_key = load_private_key(signing_key)
            self._key = signing_key
            self.key_id = public_key_id(signing_key.public_key())
        self._busy = False
        self._closed = False
        self._since_checkpoint = 0
        self._last_final = False
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        if _resume_state is None:
            self.run_id = str(run_id or uuid.uuid4().hex)
            self.seq = 0
            self.head = genesis_hash(self.run_id)
            try:
                self._fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as exc:
                raise AuditLogError("cannot create audit log %s: %s" % (self.path, exc)) from exc
            os.fchmod(self._fd, 0o600)
        else:
            self.run_id, self.seq, self.head = _resume_state
            try:
                self._fd = os.open(self.path, flags)
            except OSError as exc:
                raise AuditLogError("cannot open audit log %s: %s" % (self.path, exc)) from exc

    # -- construction helpers
    @classmethod
    def create_in_dir(cls, log_dir, run_id=None, **kwargs):
        """Create ``log_dir`` (0700) if needed and a new log named :func:`log_file_name` in it."""
        run_id = str(run_id or uuid.uuid4().hex)
        ensure_log_dir(log_dir)
        return cls(os.path.join(log_dir, log_file_name(run_id)), run_id=run_id, **kwargs)

    @classmethod
    def resume(cls, path, public_keys=None, **kwargs):
        """Open an existing log to append more records (e.g. controller approvals).

        The log must verify as intact (its last record a final checkpoint); the chain continues
        with the same run id.
        """
        result = verify_log(path, public_keys=public_keys)
        if result.status != STATUS_INTACT:
            raise AuditLogError("cannot append to %s: %s" % (path, result.summary()))
        return cls(path, _resume_state=(result.run_id, result.records, result.head), **kwargs)

    # -- writing
    def append(self, record):
        """Append one record (a mapping with at least ``type``); return the record as written."""
        if self._closed:
            raise AuditLogError("audit log %s is closed" % self.path)
        if "type" not in record:
            raise AuditLogError("an audit record needs a 'type'")
        if not all(isinstance(key, str) for key in record):
            raise AuditLogError("audit record field names must be strings")
        clash = RESERVED_FIELDS.intersection(record)
        if clash:
            raise AuditLogError("record sets writer-owned field(s): %s" % ", ".join(sorted(clash)))
        self._busy = True
        try:
            rec = self._write(record)
            self._since_checkpoint += 1
            if self.checkpoint_every and self._since_checkpoint >= self.checkpoint_every \
                    and record.get("type") != "checkpoint":
                self._checkpoint(final=False, reason="periodic")
            return rec
        finally:
            self._busy = False

    def checkpoint(self, final=False, reason=None):
        """Write a checkpoint (count, head hash, signature when a key is set)."""
        if self._closed:
            raise AuditLogError("audit log %s is closed" % self.path)
        self._busy = True
        try:
            return self._checkpoint(final=final, reason=reason)
        finally:
            self._busy = False

    @property
    def busy(self):
        """True while a record is being written (used by signal handlers to defer)."""
        return self._busy

    @property
    def ended(self):
        """True when the last record written is a final checkpoint."""
        return self._last_final

    def close(self, reason="close"):
        """Write a final checkpoint unless the last record is one, fsync (unless never), close."""
        if self._closed:
            return
        try:
            if not self._last_final:
                self.checkpoint(final=True, reason=reason)
            if self.fsync != "never":
                os.fsync(self._fd)
        finally:
            self._closed = True
            os.close(self._fd)

    def _checkpoint(self, final, reason):
        rec = {"type": "checkpoint", "count": self.seq, "head": self.head, "final": bool(final)}
        if reason:
            rec["reason"] = reason
        out = self._write(rec, sign=True)
        self._since_checkpoint = 0
        if self.fsync == "checkpoint":
            os.fsync(self._fd)
        self._last_final = bool(final)
        return out

    def _write(self, record, sign=False):
        rec = dict(self.stamp)
        rec.update(record)
        rec["v"] = FORMAT_VERSION
        rec["seq"] = self.seq
        rec["time"] = utc_now()
        rec["run_id"] = self.run_id
        rec["prev_hash"] = self.head
        if sign and self._key is not None:
            rec["key_id"] = self.key_id
            rec["sig"] = self._key.sign(checkpoint_message(rec)).hex()
        rec.pop("hash", None)
        digest, line = _canonical_with_hash(rec)
        rec["hash"] = digest
        view = memoryview(line)
        while view:
            try:
                written = os.write(self._fd, view)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            view = view[written:]
        if self.fsync == "always":
            os.fsync(self._fd)
        self.seq += 1
        self.head = digest
        self._last_final = False
        return rec


# --------------------------------------------------------------------------- verifier

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


def controller_host():
    """Name of the controller host recorded in every record."""
    return socket.gethostname()
