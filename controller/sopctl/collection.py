"""Locate the itsop.change collection so sopctl imports its shared code (written once).

The hash-chain and verification code lives in the collection's ``module_utils`` and is imported
by both the audit callback and sopctl. Search order:

1. ``SOPCTL_COLLECTIONS_PATH`` (colon separated directories that contain ``ansible_collections``);
2. the checkout this package was installed from (``controller/..``), through its
   ``.cache/collections`` link made by ``scripts/setup.sh``;
3. Ansible's configured ``COLLECTIONS_PATHS``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import InstallError

COLLECTION_RELPATH = Path("ansible_collections") / "itsop" / "change"


class CollectionNotFound(InstallError):
    """The collection is not installed where sopctl looks: one line and exit 5 (EXIT_INSTALL)."""


def _candidates() -> list[Path]:
    out: list[Path] = []
    env = os.environ.get("SOPCTL_COLLECTIONS_PATH")
    if env:
        out.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p)
    checkout = Path(__file__).resolve().parents[2]
    out.append(checkout / ".cache" / "collections")
    try:
        from ansible import constants as ansible_constants

        out.extend(Path(p).expanduser() for p in ansible_constants.COLLECTIONS_PATHS)
    except Exception as exc:  # noqa: BLE001 - a broken ansible config must not hide the other candidates
        sys.stderr.write(f"sopctl: ignoring Ansible's collections_path ({exc})\n")
    return out


def collection_root() -> Path:
    """Return the directory of the collection (``.../ansible_collections/itsop/change``)."""
    for base in _candidates():
        if (base / COLLECTION_RELPATH / "galaxy.yml").is_file() or (
            base / COLLECTION_RELPATH / "MANIFEST.json"
        ).is_file():
            return base / COLLECTION_RELPATH
    raise CollectionNotFound(
        "collection itsop.change not found; set SOPCTL_COLLECTIONS_PATH to a directory that "
        "contains ansible_collections/itsop/change (run scripts/setup.sh in a checkout)"
    )


def ensure_importable() -> Path:
    """Put the collection's ``ansible_collections`` parent on ``sys.path``; return collection root."""
    root = collection_root()
    parent = str(root.parents[2])
    if parent not in sys.path:
        sys.path.insert(0, parent)
    return root
