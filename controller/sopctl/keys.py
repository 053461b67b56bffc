"""The controller's keys and the retention setting (``SOPCTL_HOME/keys``, ``config.yml``).

* ``keys/controller.key`` (0600, created on first use) and ``controller.pub``: the Ed25519 key
  that signs audit archives (:mod:`sopctl.archive`);
* ``keys/backup-record.key``: the secret binding backup snapshot records (docs/backup.md);
* ``retention:`` in ``config.yml`` (``10y``, ``3650d``; default 10 years): recorded in archives.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from . import approvals as ap
from .changelog import chain
from .errors import SopctlError
from .store import private_dir

DEFAULT_RETENTION = "10y"


def controller_key_paths(home: Path) -> tuple[Path, Path]:
    keys = private_dir(home / "keys")
    return keys / "controller.key", keys / "controller.pub"


def controller_key(home: Path):
    """Load (or create, 0600) the controller's Ed25519 signing key; return (private key, pub path)."""
    ac = chain()
    key_path, pub_path = controller_key_paths(home)
    if not key_path.exists():
        ac.write_keypair(str(key_path), str(pub_path))
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SopctlError(f"controller key {key_path} is readable by others (mode {mode:04o}); chmod 600 it")
    try:
        key = ac.load_private_key(str(key_path))
    except ac.AuditLogError as exc:
        raise SopctlError(f"controller key {key_path}: {exc}") from exc
    if not pub_path.exists():
        from .store import atomic_write

        atomic_write(pub_path, ap.public_pem(key.public_key()), 0o644)
    return key, pub_path


def backup_record_key_file(home: Path) -> Path:
    """The secret that binds backup snapshot records (HMAC-SHA256, docs/backup.md): created on
    first use in ``SOPCTL_HOME/keys/backup-record.key`` (0600, 256 random bits, hex). Stage runs
    get its *path* (``ITSOP_BACKUP_RECORD_KEY_FILE``); the backup and rollback roles read it on
    the controller and pass it to the modules as a ``no_log`` option."""
    path = private_dir(home / "keys") / "backup-record.key"
    if not path.exists():
        from .store import atomic_write

        atomic_write(path, os.urandom(32).hex() + "\n", 0o600)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SopctlError(f"backup record key {path} is readable by others (mode {mode:04o}); chmod 600 it")
    return path


def parse_retention(value: Any) -> tuple[str, int]:
    """``10y`` / ``3650d`` / ``{years: 10}`` / ``{days: N}`` / an int (days) -> (text, days)."""
    if isinstance(value, bool) or value is None:
        raise SopctlError(f"retention: expected e.g. 10y or 3650d, got {value!r}")
    if isinstance(value, int):
        days = value
    elif isinstance(value, dict) and set(value) <= {"years", "days"} and value:
        days = int(value.get("years", 0)) * 365 + int(value.get("days", 0))
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*[yd]\s*", value):
        n, unit = int(value.strip()[:-1]), value.strip()[-1]
        days = n * 365 if unit == "y" else n
    else:
        raise SopctlError(f"retention: expected e.g. 10y, 3650d or {{years: 10}}, got {value!r}")
    if days < 1:
        raise SopctlError(f"retention: must be at least one day, got {value!r}")
    text = f"{days // 365}y" if days % 365 == 0 else f"{days}d"
    return text, days


def retention_setting(home: Path) -> tuple[str, int, str]:
    """(text, days, where it came from) from ``retention:`` in config.yml, else the default."""
    path = home / "config.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        data = {}
    except (OSError, yaml.YAMLError) as exc:
        raise SopctlError(f"config {path}: {exc}") from exc
    if isinstance(data, dict) and data.get("retention") is not None:
        text, days = parse_retention(data["retention"])
        return text, days, f"{path} (retention)"
    text, days = parse_retention(DEFAULT_RETENTION)
    return text, days, "default"
