"""Signed approvals bound to what was approved.

An approval (or rejection) is an Ed25519 signature by the person over:

* the **binding digest** ``sha256("sopctl.approval.binding.v1\\0" + canonical({change_id, gate,
  cr_digest, plan_digest, targets}))`` where ``cr_digest`` is the SHA-256 of the canonical JSON of
  the normalised change request, ``plan_digest`` the SHA-256 of ``stage1/plan.json`` and
  ``targets`` the sorted resolved target hosts (``staging:<host>``, ``production:<host>``);
* and the decision itself: ``sha256``-free canonical JSON of ``{binding, change_id, comment,
  decision, gate, person, role, time}`` prefixed with ``sopctl.approval.v1\\0``.

When the change request, the plan document or the targets change, the binding digest changes,
every earlier approval stops counting and the gate is closed again. A stored approval whose
signature does not verify with the roster's public key is *tampered* (rule SIG-1).

Identities: ``SOPCTL_IDENTITY`` or ``~/.config/sopctl/identity.yml`` =
``{id: <roster id>, key: <path of the Ed25519 private key PEM>}``, key file mode 0600. The
identity file and the key are read through the collection's ``safe_input`` (regular files,
small, no duplicate keys or aliases) and the id must be a plain ASCII roster id
(:func:`sopctl.policy.check_person_id`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .collection import ensure_importable
from .errors import Refusal, SopctlError

BINDING_DOMAIN = b"sopctl.approval.binding.v1\x00"
APPROVAL_DOMAIN = b"sopctl.approval.v1\x00"


def canonical_json(obj: Any) -> bytes:
    ensure_importable()
    from ansible_collections.itsop.change.plugins.module_utils.audit_chain import canonical_json as cj

    return cj(obj)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cr_digest(cr: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(cr))


def file_digest(path: Path) -> str | None:
    try:
        return sha256_hex(path.read_bytes())
    except FileNotFoundError:
        return None


def binding_digest(change_id: str, gate: str, cr_dig: str, plan_dig: str | None, targets: list[str]) -> str:
    body = {"change_id": change_id, "gate": gate, "cr_digest": cr_dig, "plan_digest": plan_dig,
            "targets": sorted(targets)}
    return sha256_hex(BINDING_DOMAIN + canonical_json(body))


def approval_message(row: dict[str, Any]) -> bytes:
    fields = ("binding", "change_id", "comment", "decision", "gate", "person", "role", "time")
    return APPROVAL_DOMAIN + canonical_json({k: row[k] for k in fields})


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + sha256_hex(raw)


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_pem(pem: bytes, who: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise SopctlError(f"public key of {who} in the roster is not a PEM key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SopctlError(f"public key of {who} in the roster is not an Ed25519 key")
    return key


@dataclass
class Identity:
    id: str
    key: Ed25519PrivateKey
    path: Path

    def sign(self, message: bytes) -> str:
        return self.key.sign(message).hex()


def identity_path() -> Path:
    env = os.environ.get("SOPCTL_IDENTITY")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "sopctl" / "identity.yml"


class Actor:
    """Who acts: the identity file of the person running sopctl, loaded when first needed.

    The command line resolves the path once at its edge (:meth:`from_environment`: ``SOPCTL_IDENTITY``,
    else ``$XDG_CONFIG_HOME/sopctl/identity.yml``) and passes the actor to the engine. An actor
    made without a path (in-process callers, the tests) looks the path up when it is asked.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._identity: Identity | None = None

    @classmethod
    def from_environment(cls) -> Actor:
        try:
            return cls(identity_path())
        except RuntimeError:  # no home directory: the error comes when an identity is needed, as before
            return cls()

    def identity(self) -> Identity:
        if self.path is None:
            return load_identity()
        if self._identity is None:
            self._identity = load_identity(self.path)
        return self._identity


#: largest identity file and private key file accepted (bytes)
IDENTITY_LIMIT = 16 * 1024


class _IdentityUnreadable(SopctlError):
    pass


def load_identity(path: Path | None = None) -> Identity:
    from .policy import id_problem, load_document, read_small_file

    path = path or identity_path()
    if not os.path.lexists(path):
        raise Refusal("ID-1", f"no identity at {path}: create one with 'sopctl identity keygen --id YOU' "
                              "or set SOPCTL_IDENTITY")
    try:
        data = load_document(path, "identity", IDENTITY_LIMIT, _IdentityUnreadable)
    except _IdentityUnreadable as exc:
        raise Refusal("ID-1", str(exc)) from None
    if not isinstance(data, dict) or not data.get("id") or not data.get("key"):
        raise Refusal("ID-1", f"identity {path}: needs 'id' and 'key'")
    problem = id_problem(data["id"], "person")
    if problem:
        raise Refusal("ID-1", f"identity {path}: id: person id {problem}")
    key_path = Path(str(data["key"])).expanduser()
    key_path = key_path if key_path.is_absolute() else path.parent / key_path
    try:
        mode = stat.S_IMODE(key_path.stat().st_mode)
        if mode & 0o077:
            raise Refusal("ID-1", f"private key {key_path} is readable by others (mode {mode:04o}); chmod 600 it")
        pem = read_small_file(key_path, "private key", IDENTITY_LIMIT, _IdentityUnreadable)
        key = serialization.load_pem_private_key(pem, password=None)
    except OSError as exc:
        raise Refusal("ID-1", f"identity {path}: private key: {exc}") from exc
    except _IdentityUnreadable as exc:
        raise Refusal("ID-1", f"identity {path}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise Refusal("ID-1", f"identity {path}: private key {key_path} is unreadable: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise Refusal("ID-1", f"identity {path}: {key_path} is not an Ed25519 private key")
    return Identity(data["id"], key, path)


def check_identity_matches(identity: Identity, roster_pem: bytes | None) -> None:
    """The identity's key must be the one the roster lists for that person (rule ID-2)."""
    if roster_pem is None:
        raise Refusal("ID-2", f"the roster has no public key for {identity.id}")
    roster_key = load_public_pem(roster_pem, identity.id)
    if key_id(roster_key) != key_id(identity.key.public_key()):
        raise Refusal("ID-2", f"the private key of identity {identity.id} ({identity.path}) does not match "
                              "the public key in the roster")


def keygen(person_id: str, directory: Path, force: bool = False) -> tuple[Path, Path, str]:
    """Create ``<dir>/<id>.key`` (0600), ``<dir>/<id>.pub`` and ``<dir>/identity.yml``; return paths + PEM."""
    from .policy import check_person_id
    from .store import atomic_write, private_dir

    check_person_id(person_id, "identity keygen --id")  # also used in file names: no '/', no '..'
    private_dir(directory)
    key_file, pub_file, ident = directory / f"{person_id}.key", directory / f"{person_id}.pub", \
        directory / "identity.yml"
    if not force:
        for f in (key_file, ident):
            if f.exists():
                raise SopctlError(f"{f} exists; use --force to replace it")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    atomic_write(key_file, pem, 0o600)
    pub = public_pem(key.public_key())
    atomic_write(pub_file, pub, 0o644)
    atomic_write(ident, yaml.safe_dump({"id": person_id, "key": str(key_file)}, sort_keys=True), 0o600)
    return key_file, ident, pub


def sign_decision(identity: Identity, row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["key_id"] = key_id(identity.key.public_key())
    out["signature"] = identity.sign(approval_message(out))
    return out


def verify_decision(row: dict[str, Any], roster_pem: bytes | None) -> bool:
    """True when the stored approval row carries a valid signature of the roster key of ``person``."""
    if roster_pem is None:
        return False
    try:
        key = load_public_pem(roster_pem, row["person"])
        key.verify(bytes.fromhex(row["signature"]), approval_message(row))
    except (InvalidSignature, ValueError, SopctlError):
        return False
    return True


#: outcome of checking one stored decision against a roster (see :func:`check_decision`)
SIG_VALID = "valid"
SIG_NOT_IN_ROSTER = "not_in_roster"
SIG_NO_KEY = "no_key"
SIG_OTHER_KEY = "other_key"
SIG_INVALID = "invalid"


def check_decision(row: dict[str, Any], in_roster: bool, pem: bytes | None,
                   roster_name: str = "the roster") -> tuple[str, str]:
    """Check a stored decision's signature against the signer's roster entry; ``(status, reason)``.

    Only :data:`SIG_VALID` counts. The other outcomes say *why* not, so that an approver taken
    out of the roster after signing (:data:`SIG_NOT_IN_ROSTER`: nothing to check the signature
    with) or a person whose key was replaced (:data:`SIG_OTHER_KEY`) is not reported as a
    tampered decision (:data:`SIG_INVALID`: the signature does not verify with the key that
    signed it according to the roster).
    """
    who = row.get("person")
    if not in_roster:
        return SIG_NOT_IN_ROSTER, (f"signer {who} is not in {roster_name}: removed from the roster after signing "
                                   "(or never in it), so its signature cannot be checked")
    if not pem:
        return SIG_NO_KEY, f"the roster has no public key for {who}: the signature cannot be checked"
    if verify_decision(row, pem):
        return SIG_VALID, "signature verified"
    try:
        current = key_id(load_public_pem(pem, str(who)))
    except SopctlError as exc:
        return SIG_NO_KEY, f"the roster's public key for {who} is unusable ({exc}): the signature cannot be checked"
    if row.get("key_id") and row.get("key_id") != current:
        return SIG_OTHER_KEY, (f"signed with key {row.get('key_id')}, but the roster now lists key {current} for "
                               f"{who} (key replaced after signing, or a decision signed by another key): "
                               "the signature does not verify with the roster's key")
    return SIG_INVALID, f"signature does not verify with {who}'s public key (decision edited or forged)"
