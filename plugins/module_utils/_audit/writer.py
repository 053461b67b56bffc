# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Appending to a hash-chained audit log: one complete line per ``write(2)``, checkpoints.

:class:`AuditWriter` creates a log (``O_EXCL``, mode 0600) or resumes an intact one, appends
records on an ``O_APPEND`` descriptor and writes (signed) checkpoints; :func:`ensure_log_dir`,
:func:`default_operator` and :func:`controller_host` give what every record is stamped with.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import errno
import os
import re
import socket
import stat
import time
import uuid

from ansible_collections.itsop.change.plugins.module_utils._audit.chain import (
    FORMAT_VERSION,
    RESERVED_FIELDS,
    AuditLogError,
    canonical_with_hash,
    checkpoint_message,
    genesis_hash,
    utc_now,
)
from ansible_collections.itsop.change.plugins.module_utils._audit.keys import (
    load_private_key,
    public_key_id,
)
from ansible_collections.itsop.change.plugins.module_utils._audit.verify import (
    STATUS_INTACT,
    verify_log,
)


FSYNC_MODES = ("always", "checkpoint", "never")
DEFAULT_CHECKPOINT_EVERY = 1000


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
        digest, line = canonical_with_hash(rec)
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


def controller_host():
    """Name of the controller host recorded in every record."""
    return socket.gethostname()
