"""The change's controller audit log: approvals, rejections, refusals, gate decisions, stage results.

One hash-chained JSONL file per change, ``<change>/audit/controller.jsonl``, written through the
collection's shared :class:`AuditWriter` (``plugins/module_utils/audit_chain.py``), beside the
per-run logs the ``itsop.change.audit_log`` callback writes into the same directory. Each
``record()`` takes an exclusive ``flock`` on ``controller.jsonl.lock``, resumes the (verified)
chain, appends and closes it with a final checkpoint, so several sopctl commands can record at
once without forking the chain.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from .collection import ensure_importable
from .errors import SopctlError

LOG_NAME = "controller.jsonl"


def chain():
    ensure_importable()
    from ansible_collections.itsop.change.plugins.module_utils import audit_chain

    return audit_chain


class ChangeLog:
    def __init__(self, audit_dir: Path, change_id: str, operator: str | None = None,
                 signing_key: Path | None = None) -> None:
        self.dir = audit_dir
        self.path = audit_dir / LOG_NAME
        self.change_id = change_id
        self.operator = operator
        self.signing_key = str(signing_key) if signing_key else None

    def record(self, rtype: str, **fields: Any) -> dict[str, Any]:
        ac = chain()
        ac.ensure_log_dir(str(self.dir))
        op = ac.default_operator()
        if self.operator:
            op["declared"] = self.operator
        stamp = {"change_id": self.change_id, "controller": ac.controller_host(), "operator": op,
                 "source": "sopctl"}
        lock_fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                if self.path.exists():
                    writer = ac.AuditWriter.resume(str(self.path), signing_key=self.signing_key, stamp=stamp)
                else:
                    writer = ac.AuditWriter(str(self.path), run_id=f"sopctl-{self.change_id}",
                                            signing_key=self.signing_key, stamp=stamp)
            except ac.AuditLogError as exc:
                raise SopctlError(f"controller audit log: {exc}") from exc
            try:
                rec = writer.append(dict(fields, type=rtype))
            finally:
                writer.close(reason="sopctl")
            return rec
        finally:
            os.close(lock_fd)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return list(chain().iter_records(str(self.path)))
