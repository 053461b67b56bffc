# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Vaulted values among Ansible variables, taught to the :class:`Redactor` before anything is recorded.

A vaulted value (an inline ``!vault`` string, or any value read from a file made with
``ansible-vault encrypt``) may be printed by a later task in clear text; the ``audit_log``
callback walks the play's and the task's variables with :func:`collect_vaulted` so that every
such plaintext is replaced wherever it occurs. Controller side only (a ``plugin_utils``: it
reads ansible-core's vault and data-tag objects, which a module_utils may not import).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible.module_utils.common.text.converters import to_text

try:  # ansible-core >= 2.19: vaulted values are EncryptedString objects or tagged VaultedValue
    from ansible.parsing.vault import VaultHelper
except ImportError:  # pragma: no cover - older ansible-core (the collection requires 2.19)
    VaultHelper = None
try:  # values of a whole-file vault carry no VaultedValue tag, only the Origin of their file
    from ansible._internal._datatag._tags import Origin
except ImportError:  # pragma: no cover - a later ansible-core may move it: inline vaults still work
    Origin = None

#: vault-encrypted or not, by file path (a file is read once per run)
_VAULT_FILES = {}
#: variables that never hold vaulted values but are large (facts, inventory structure)
SCAN_SKIP = frozenset(("ansible_facts", "hostvars", "groups", "group_names", "ansible_play_hosts",
                       "ansible_play_hosts_all", "ansible_play_batch", "play_hosts",
                       "ansible_local", "omit"))


def vault_plaintext(value):
    """The decrypted text of a vaulted value (EncryptedString or VaultedValue-tagged), else None.

    A value that cannot be decrypted yields None: its plaintext cannot reach a result either.
    """
    try:
        if VaultHelper is not None and VaultHelper.get_ciphertext(value, with_tags=False) is not None:
            return to_text(str(value))
        if isinstance(value, str) and from_vault_file(value):
            return to_text(str(value))
    except Exception:  # noqa: BLE001 - undecryptable or a marker: nothing to learn
        return None
    return None


def from_vault_file(value):
    """True when a (tagged) string was read from a vault-encrypted file (e.g. group_vars/vault.yml,
    vars_files or include_vars of a file made with ansible-vault encrypt)."""
    if Origin is None:
        return False
    origin = Origin.get_tag(value)
    path = getattr(origin, "path", None)
    if not path:
        return False
    known = _VAULT_FILES.get(path)
    if known is None:
        try:
            with open(path, "rb") as handle:
                known = handle.read(64).lstrip().startswith(b"$ANSIBLE_VAULT;")
        except (IOError, OSError):
            known = False
        _VAULT_FILES[path] = known
    return known


def collect_vaulted(value, redactor, _depth=0, _seen=None):
    """Walk variables and teach ``redactor`` every vaulted plaintext found; return the count."""
    if _seen is None:
        _seen = set()
    if _depth > 32 or value is None:
        return 0
    vt = type(value)
    if vt is int or vt is bool or vt is float:
        return 0
    if vt is str:  # untagged: neither vaulted nor from a file
        return 0
    plaintext = vault_plaintext(value)
    if plaintext is not None:
        return 1 if redactor.add_secret(plaintext) else 0
    found = 0
    if isinstance(value, dict) or isinstance(value, (list, tuple, set, frozenset)):
        if id(value) in _seen:
            return 0
        _seen.add(id(value))
        items = value.values() if isinstance(value, dict) else value
        for item in items:
            found += collect_vaulted(item, redactor, _depth + 1, _seen)
    return found
