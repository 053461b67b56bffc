"""The sopctl state store: one SQLite database under ``SOPCTL_HOME``.

WAL journal, ``busy_timeout`` so several sopctl commands can run at once, a versioned schema,
and every multi-statement change inside one ``BEGIN IMMEDIATE`` transaction. Files are 0600 and
directories 0700. The store holds state only; the record of *what happened* is the change's
hash-chained controller audit log (:mod:`sopctl.changelog`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import StoreError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    requester TEXT NOT NULL,
    cr_path TEXT NOT NULL,
    cr_json TEXT NOT NULL,
    cr_digest TEXT NOT NULL,
    inventory TEXT NOT NULL,
    targets_json TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end TEXT NOT NULL,
    state TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stage_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    change_id TEXT NOT NULL REFERENCES changes(id),
    stage TEXT NOT NULL,
    ident TEXT NOT NULL,
    token TEXT NOT NULL,
    status TEXT NOT NULL,          -- running | succeeded | failed | interrupted | superseded
    operator TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started TEXT NOT NULL,
    ended TEXT,
    summary_json TEXT,
    message TEXT
);
CREATE INDEX IF NOT EXISTS stage_runs_change ON stage_runs(change_id, stage);
CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    change_id TEXT NOT NULL REFERENCES changes(id),
    gate TEXT NOT NULL,
    person TEXT NOT NULL,
    role TEXT NOT NULL,
    decision TEXT NOT NULL,        -- approve | reject
    comment TEXT NOT NULL,
    binding TEXT NOT NULL,         -- hex digest the person signed over (see approvals.py)
    time TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approvals_change ON approvals(change_id, gate);
"""


def _ids():
    """The id checks of :mod:`sopctl.policy` (imported late: policy needs the collection)."""
    from . import policy

    return policy



def utc_now() -> str:
    return utc_text(datetime.now(UTC))


def utc_text(moment: datetime) -> str:
    """``moment`` as the store writes times: UTC, microseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sopctl_home() -> Path:
    """``SOPCTL_HOME``, else ``$XDG_STATE_HOME/sopctl``, else ``~/.local/state/sopctl``."""
    env = os.environ.get("SOPCTL_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "sopctl"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 for the created levels; tighten the leaf."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o700)
    return path


#: evidence documents are JSON written by the stage playbooks; larger ones are refused, not read
EVIDENCE_LIMIT = 64 * 1024 * 1024


def read_json_file(path: Path, what: str = "evidence") -> tuple[Any, str | None]:
    """Read one JSON document (evidence) the one way gates and reports agree on: ``(document,
    problem)``, ``(None, None)`` when the file does not exist. A FIFO or device is never opened,
    the size is bounded, and a duplicate key (``{"passed": false, "passed": true}``, which two
    JSON readers resolve differently) makes the document unreadable, naming both lines."""
    from .collection import ensure_importable

    ensure_importable()
    from ansible_collections.itsop.change.plugins.module_utils import safe_input

    if not os.path.lexists(path):
        return None, None
    try:
        raw = safe_input.read_regular_file(path, limit=EVIDENCE_LIMIT, what=what)
        return safe_input.load_json(safe_input.decode_text(raw, path.name), path.name), None
    except safe_input.InputError as exc:
        return None, f"{path.name}: unreadable ({exc})"


def atomic_write(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same directory + rename).

    On any failure (a full disk, a refused write, an interrupt) the temporary file is removed and
    ``path`` is untouched: an earlier file stays as it was and nothing partial is left. An
    ``OSError`` without a file name (``ENOSPC`` from ``write()``) is raised naming ``path``.
    """
    import tempfile

    from .errors import naming

    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:  # closes fd even when fchmod or write fails
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise naming(exc, path) from exc
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (best effort: some file systems refuse fsync on a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Store:
    """Thin data-access layer over the SQLite database ``SOPCTL_HOME/sopctl.db``."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = private_dir(Path(home) if home else sopctl_home())
        self.path = self.home / "sopctl.db"
        old_umask = os.umask(0o077)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA busy_timeout = 30000")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA synchronous = FULL")
        self._migrate()

    # -- plumbing
    def close(self) -> None:
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``), committed on success, rolled back on error."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        with self.tx() as db:
            for stmt in (s.strip() for s in _SCHEMA.split(";")):
                if stmt:
                    db.execute(stmt)
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta(key, value) VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row["value"]) > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: schema version {row['value']} is newer than this sopctl "
                                 f"({SCHEMA_VERSION}); upgrade sopctl")
        for sub in ("changes", "locks"):
            private_dir(self.home / sub)

    def schema_version(self) -> int:
        return int(self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()["value"])

    # -- per-change directories
    def change_dir(self, change_id: str) -> Path:
        _ids().check_change_id(change_id)  # a path component: never '..', '/' or a look-alike
        return private_dir(self.home / "changes" / change_id)

    def evidence_dir(self, change_id: str) -> Path:
        return private_dir(self.change_dir(change_id) / "evidence")

    def audit_dir(self, change_id: str) -> Path:
        return private_dir(self.change_dir(change_id) / "audit")

    def runner_dir(self, change_id: str) -> Path:
        return private_dir(self.change_dir(change_id) / "runner")

    def lock_path(self, change_id: str) -> Path:
        _ids().check_change_id(change_id)
        return private_dir(self.home / "locks") / f"{change_id}.lock"

    # -- changes
    def insert_change(self, row: dict[str, Any]) -> None:
        policy = _ids()
        policy.check_change_id(row["id"], "change id")
        policy.check_person_id(row["requester"], f"{row['id']}: requester")
        policy.check_text(row["submitted_by"], f"{row['id']}: submitted_by")
        now = utc_now()
        with self.tx() as db:
            if db.execute("SELECT 1 FROM changes WHERE id=?", (row["id"],)).fetchone():
                raise StoreError(f"change {row['id']} is already submitted")
            db.execute(
                "INSERT INTO changes(id, title, requester, cr_path, cr_json, cr_digest, inventory, targets_json,"
                " window_start, window_end, state, submitted_by, created, updated)"
                " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (row["id"], row["title"], row["requester"], row["cr_path"], json.dumps(row["cr"], sort_keys=True),
                 row["cr_digest"], row["inventory"], json.dumps(row["targets"], sort_keys=True),
                 row["window_start"], row["window_end"], "submitted", row["submitted_by"], now, now))

    def get_change(self, change_id: str) -> dict[str, Any] | None:
        _ids().check_change_id(change_id)
        row = self.db.execute("SELECT * FROM changes WHERE id=?", (change_id,)).fetchone()
        return _change(row) if row else None

    def list_changes(self) -> list[dict[str, Any]]:
        return [_change(r) for r in self.db.execute("SELECT * FROM changes ORDER BY created")]

    def update_change(self, change_id: str, **fields: Any) -> None:
        cols, vals = [], []
        for key, value in fields.items():
            if key == "cr":
                key, value = "cr_json", json.dumps(value, sort_keys=True)
            elif key == "targets":
                key, value = "targets_json", json.dumps(value, sort_keys=True)
            cols.append(f"{key}=?")
            vals.append(value)
        cols.append("updated=?")
        vals.append(utc_now())
        with self.tx() as db:
            db.execute(f"UPDATE changes SET {', '.join(cols)} WHERE id=?", (*vals, change_id))  # noqa: S608

    # -- stage runs
    def start_stage_run(self, change_id: str, stage: str, ident: str, token: str, operator: str,
                        pid: int, host: str) -> int:
        _ids().check_change_id(change_id)
        _ids().check_person_id(operator, f"{change_id}: stage {stage} operator")
        with self.tx() as db:
            busy = db.execute("SELECT id, stage, pid, host FROM stage_runs WHERE change_id=? AND status='running'",
                              (change_id,)).fetchone()
            if busy:
                raise StoreError(f"stage {busy['stage']} of {change_id} is recorded as running "
                                 f"(pid {busy['pid']} on {busy['host']})")
            cur = db.execute(
                "INSERT INTO stage_runs(change_id, stage, ident, token, status, operator, pid, host, started)"
                " VALUES(?,?,?,?,?,?,?,?,?)",
                (change_id, stage, ident, token, "running", operator, pid, host, utc_now()))
            return int(cur.lastrowid)

    def finish_stage_run(self, run_id: int, status: str, summary: Any = None, message: str | None = None) -> None:
        with self.tx() as db:
            db.execute("UPDATE stage_runs SET status=?, ended=?, summary_json=?, message=? WHERE id=?",
                       (status, utc_now(), None if summary is None else json.dumps(summary, sort_keys=True),
                        message, run_id))

    def running_stage_runs(self, change_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute(
            "SELECT * FROM stage_runs WHERE change_id=? AND status='running'", (change_id,))]

    def stage_runs(self, change_id: str) -> list[dict[str, Any]]:
        out = []
        for r in self.db.execute("SELECT * FROM stage_runs WHERE change_id=? ORDER BY id", (change_id,)):
            d = dict(r)
            d["summary"] = json.loads(d.pop("summary_json")) if d.get("summary_json") else None
            out.append(d)
        return out

    def supersede_stage_runs(self, change_id: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE stage_runs SET status='superseded' WHERE change_id=? AND status='succeeded'",
                       (change_id,))

    # -- approvals
    def add_approval(self, row: dict[str, Any]) -> int:
        policy = _ids()
        policy.check_change_id(row["change_id"])
        policy.check_person_id(row["person"], f"{row['change_id']}: approval")
        policy.check_name(row["gate"], tuple(policy.DEFAULT_QUORUM), f"{row['change_id']}: approval gate")
        policy.check_name(row["role"], policy.ROLES, f"{row['change_id']}: approval role")
        policy.check_name(row["decision"], ("approve", "reject"), f"{row['change_id']}: approval decision")
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO approvals(change_id, gate, person, role, decision, comment, binding, time, key_id,"
                " signature) VALUES(?,?,?,?,?,?,?,?,?,?)",
                (row["change_id"], row["gate"], row["person"], row["role"], row["decision"], row["comment"],
                 row["binding"], row["time"], row["key_id"], row["signature"]))
            return int(cur.lastrowid)

    def approvals(self, change_id: str, gate: str | None = None) -> list[dict[str, Any]]:
        if gate:
            rows = self.db.execute("SELECT * FROM approvals WHERE change_id=? AND gate=? ORDER BY id",
                                   (change_id, gate))
        else:
            rows = self.db.execute("SELECT * FROM approvals WHERE change_id=? ORDER BY id", (change_id,))
        return [dict(r) for r in rows]


def _change(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["cr"] = json.loads(d.pop("cr_json"))
    d["targets"] = json.loads(d.pop("targets_json"))
    return d
