"""Loading change requests (through the collection's shared validator) and resolving targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .collection import ensure_importable
from .errors import SopctlError


class InvalidChangeRequest(SopctlError):
    def __init__(self, path: str, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(f"{path}: invalid change request (CR-1):\n" + "\n".join(f"  - {e}" for e in errors))


def _crmod():
    ensure_importable()
    try:
        from ansible_collections.itsop.change.plugins.module_utils import change_request
    except ImportError as exc:  # pragma: no cover - the collection ships it
        raise SopctlError(f"the collection has no change_request module_utils ({exc})") from exc
    return change_request


def load_cr(path: str | Path) -> dict[str, Any]:
    """Load, validate and normalise a change request file (raises :class:`InvalidChangeRequest`)."""
    mod = _crmod()
    try:
        cr = mod.normalise_change_request(mod.load_change_request(str(path)))
        return mod.bind_templates(cr, str(Path(path).resolve().parent))  # approvals bind the templates too
    except mod.ChangeRequestError as exc:
        raise InvalidChangeRequest(str(path), exc.errors) from exc


def validate_file(path: str | Path) -> list[str]:
    mod = _crmod()
    try:
        data = mod.load_change_request(str(path))
    except mod.ChangeRequestError as exc:
        return list(exc.errors)
    return list(mod.validate_change_request(data))


def resolve_targets(inventory: str, cr: dict[str, Any]) -> dict[str, list[str]]:
    """``{"staging": [hosts], "production": [hosts]}`` from the CR's target patterns and the inventory."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.utils.display import Display

    Display().verbosity = 0
    inv = InventoryManager(loader=DataLoader(), sources=[str(inventory)])
    out: dict[str, list[str]] = {}
    for env in ("staging", "production"):
        patterns = (cr.get("targets") or {}).get(env) or []
        hosts: set[str] = set()
        for pattern in patterns:
            found = inv.get_hosts(pattern=str(pattern))
            if not found:
                raise SopctlError(f"targets.{env}: pattern {pattern!r} matches no host in inventory {inventory} "
                                  "(CR-3)")
            hosts.update(h.name for h in found)
        out[env] = sorted(hosts)
    if not out.get("production"):
        raise SopctlError(f"targets.production matches no host in inventory {inventory} (CR-3)")
    return out


def target_list(targets: dict[str, list[str]]) -> list[str]:
    """Sorted ``env:host`` strings (what approvals are bound to)."""
    return sorted(f"{env}:{h}" for env, hosts in targets.items() for h in hosts)
