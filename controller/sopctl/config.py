"""``SOPCTL_HOME/config.yml``: where the roster, freeze calendar, default inventory and webhooks are.

Example::

    roster: /etc/itsop/roster.yml            # people, roles, public keys, quorum per gate
    freeze_calendar: /etc/itsop/freeze.yml   # optional
    inventory: /etc/itsop/inventory.yml      # default for 'sopctl submit'
    audit_signing_key: /etc/itsop/audit.key  # optional Ed25519 key for audit checkpoints
    webhooks:
      - url: https://chat.example/hooks/abc  # never logged
        events: [gate_waiting, stage_failed, incident, change_completed]

Relative paths are relative to the config file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SopctlError

#: largest config.yml accepted (bytes)
CONFIG_LIMIT = 64 * 1024


@dataclass
class Config:
    path: Path
    roster: Path | None = None
    freeze_calendar: Path | None = None
    inventory: Path | None = None
    audit_signing_key: Path | None = None
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    playbook_dir: Path | None = None


def load_config(home: Path) -> Config:
    path = home / "config.yml"
    cfg = Config(path)
    if not path.exists():
        return cfg
    from .policy import load_document  # the one loader of person-written files (safe_input)

    data = load_document(path, "config", CONFIG_LIMIT) or {}
    if not isinstance(data, dict):
        raise SopctlError(f"config {path}: expected a mapping")
    unknown = set(data) - {"roster", "freeze_calendar", "inventory", "audit_signing_key", "webhooks",
                       "retention"}  # retention: read by sopctl.archive
    if unknown:
        shown = sorted(json.dumps(k) if isinstance(k, str) else repr(k) for k in unknown)
        raise SopctlError(f"config {path}: unknown key(s) {', '.join(shown)}")
    for key in ("roster", "freeze_calendar", "inventory", "audit_signing_key"):
        if data.get(key):
            p = Path(str(data[key])).expanduser()
            setattr(cfg, key, p if p.is_absolute() else path.parent / p)
    hooks = data.get("webhooks") or []
    if not isinstance(hooks, list) or not all(isinstance(h, dict) and h.get("url") for h in hooks):
        raise SopctlError(f"config {path}: webhooks must be a list of {{url, events}}")
    cfg.webhooks = hooks
    return cfg
