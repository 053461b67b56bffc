# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ed25519 keys of the audit log's signed checkpoints: make, write, load, identify.

Keys are read as regular files of bounded size; a private key readable by group or others is
refused. ``cryptography`` (an ansible-core dependency) is imported lazily.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import stat

try:
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

from ansible_collections.itsop.change.plugins.module_utils._audit.chain import (
    AuditLogError,
    sha256_hex,
)
from ansible_collections.itsop.change.plugins.module_utils.safe_input import (
    InputError,
    read_regular_file,
)


KEY_FILE_LIMIT = 64 * 1024


def _require_crypto():
    if not HAS_CRYPTOGRAPHY:
        raise AuditLogError("the Python library 'cryptography' is required for Ed25519 signatures: %s"
                            % CRYPTOGRAPHY_IMPORT_ERROR)


def public_key_id(public_key):
    """``sha256:<hex>`` of the raw 32-byte Ed25519 public key."""
    _require_crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + sha256_hex(raw)


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
