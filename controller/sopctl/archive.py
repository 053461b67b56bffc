"""The audit archive of a change (Tahap 6) and its offline verification.

``sopctl archive CHANGE_ID`` writes one ``tar.gz`` holding, under ``<CHANGE_ID>/``:

* ``archive.json``: metadata (change, creation time, sopctl version, controller host, retention
  setting and keep-until date, controller key id, what was left out and why);
* ``change_request.json``, ``change.json`` (store row), ``stage_runs.json``;
* ``approvals.json`` (every stored decision with its Ed25519 signature) and ``roster.json``
  (people, roles and public keys the signatures are checked against);
* ``audit/*.jsonl``: every audit log of the change, byte for byte;
* ``runner/<ident>/job_events/*.json`` (+ ``status``, ``rc``): ansible-runner's events, passed
  through the audit redactor (``extra_vars``/``ansible_env`` dropped, secret-looking keys
  replaced). Never included: ``env/`` (envvars, extravars, passwords, ssh key), ``inventory/``,
  ``artifacts/<ident>/command`` (it holds the whole process environment), ``stdout``/``stderr``;
* ``evidence/**``: every evidence file, but not ``evidence/backup-store/`` (the backup copies
  themselves: configuration and data, device configurations with their secrets; the checklists
  with their digests are archived);
* ``reports/``: the report (json; html and md in Indonesian and English);
* ``controller.pub``: the controller's public key (informational: verifiers pin their own copy);
* ``MANIFEST.json``: SHA-256 and size of every other member, and ``MANIFEST.sig``: Ed25519
  signature of the controller key over ``b"sopctl.archive.manifest.v1\\0" + MANIFEST.json``.

The controller key (:mod:`sopctl.keys`) is ``SOPCTL_HOME/keys/controller.key`` (0600, created on first use) with
``controller.pub`` beside it. :func:`verify_archive` checks an archive with nothing but the
archive and the pinned public keys (and optionally a pinned roster).

Retention is a *setting* (``retention:`` in ``SOPCTL_HOME/config.yml``, e.g. ``10y`` or
``3650d``; default 10 years) recorded in the metadata; nothing in sopctl deletes an archive, and
an existing archive file is never overwritten.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import socket
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from . import __version__
from . import approvals as ap
from .approvals import SIG_VALID, check_decision
from .changelog import chain
from .collection import ensure_importable
from .errors import SopctlError, naming
from .keys import controller_key, retention_setting
from .store import private_dir, utc_now

MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.sig"
MANIFEST_DOMAIN = b"sopctl.archive.manifest.v1\x00"
ARCHIVE_FORMAT = "sopctl.archive.v1"
RUNNER_KEEP = ("status", "rc")
EXIT_OK, EXIT_BAD, EXIT_USAGE = 0, 1, 2


# ------------------------------------------------------------------------------ build
#: the backup store under the evidence directory (the roles' default backup_store_dir)
BACKUP_STORE = "backup-store"

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8") + b"\n"


def roster_export(roster: Any) -> dict[str, Any]:
    return {"source": str(roster.path), "quorum": roster.quorum, "people": {
        p.id: {"name": p.name, "roles": list(p.roles),
               "public_key": p.public_key_pem.decode("ascii") if p.public_key_pem else None,
               "key_id": ap.key_id(ap.load_public_pem(p.public_key_pem, p.id)) if p.public_key_pem else None}
        for p in roster.people.values()}}


def collect_members(engine: Any, change_id: str, reports: dict[str, bytes] | None = None
                    ) -> tuple[dict[str, bytes], list[str]]:
    """Every archive member (relative path -> bytes) except metadata/manifest; plus what was left out."""
    store = engine.store
    change = engine.change(change_id)
    cdir = store.change_dir(change_id)
    red = chain().Redactor()
    members: dict[str, bytes] = {}
    left_out: list[str] = []

    snap = cdir / "change_request.json"
    members["change_request.json"] = snap.read_bytes() if snap.exists() else _canonical(change["cr"])
    members["change.json"] = _canonical({k: change[k] for k in (
        "id", "title", "requester", "cr_path", "cr_digest", "inventory", "targets", "window_start", "window_end",
        "state", "submitted_by", "created", "updated")})
    members["stage_runs.json"] = _canonical([{k: v for k, v in r.items() if k != "token"}
                                             for r in store.stage_runs(change_id)])
    members["approvals.json"] = _canonical(store.approvals(change_id))
    members["roster.json"] = _canonical(roster_export(engine.roster))

    audit = store.audit_dir(change_id)
    for f in chain().find_logs(str(audit)):
        members[f"audit/{Path(f).name}"] = Path(f).read_bytes()

    evidence = store.evidence_dir(change_id)
    for p in sorted(evidence.rglob("*")):
        rel = p.relative_to(evidence).as_posix()
        if rel == BACKUP_STORE or rel.startswith(BACKUP_STORE + "/"):
            # the backups themselves (configuration and data, device configurations with their
            # secrets): the archive keeps the checklists with their digests, never the copies
            if rel == BACKUP_STORE:
                left_out.append(f"evidence/{rel}: the backup copies (digests in stage2/backup/*/checklist.json)")
            continue
        if p.is_symlink() or (p.exists() and not p.is_file() and not p.is_dir()):
            left_out.append(f"evidence/{rel}: not a regular file")
        elif p.is_file():
            members[f"evidence/{rel}"] = p.read_bytes()

    artifacts = store.runner_dir(change_id) / "artifacts"
    if artifacts.is_dir():
        for run in sorted(artifacts.iterdir()):
            if not run.is_dir():
                continue
            for name in RUNNER_KEEP:
                if (run / name).is_file():
                    members[f"runner/{run.name}/{name}"] = (run / name).read_bytes()
            events = run / "job_events"
            for ev in sorted(events.glob("*.json")) if events.is_dir() else []:
                try:
                    doc = json.loads(ev.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    left_out.append(f"runner/{run.name}/job_events/{ev.name}: unreadable")
                    continue
                members[f"runner/{run.name}/job_events/{ev.name}"] = _canonical(red.redact(doc))
    left_out.append("runner env/ (envvars, extravars, passwords, ssh_key), inventory/, artifacts/*/command "
                    "(process environment), stdout/stderr: never archived (may hold secrets)")
    for name, data in (reports or {}).items():
        members[f"reports/{name}"] = data
    return members, left_out


def build_archive(engine: Any, change_id: str, out_dir: Path | None = None,
                  reports: dict[str, bytes] | None = None) -> dict[str, Any]:
    """Write the signed archive; return ``{path, sha256, manifest_sha256, files, key_id, public_key}``."""
    from . import report as rp

    home = engine.store.home
    key, pub_path = controller_key(home)
    if reports is None:
        data = rp.collect(engine, change_id)
        reports = {"report.json": rp.render(data, "json", "en").encode("utf-8")}
        for lang in rp.LANGS:
            for fmt in ("html", "md"):
                reports[f"report.{lang}.{fmt}"] = rp.render(data, fmt, lang).encode("utf-8")
    members, left_out = collect_members(engine, change_id, reports)
    created = utc_now()
    text, days, source = retention_setting(home)
    keep_until = (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    key_id = ap.key_id(key.public_key())
    members["archive.json"] = _canonical({
        "format": ARCHIVE_FORMAT, "change_id": change_id, "created": created, "generator": f"sopctl {__version__}",
        "controller": socket.gethostname(), "controller_key_id": key_id,
        "retention": {"setting": text, "days": days, "source": source, "keep_until": keep_until,
                      "note": "a configured retention setting of this organisation, not a legal determination; "
                              "sopctl never deletes an archive"},
        "left_out": left_out,
    })
    members["controller.pub"] = pub_path.read_bytes()
    manifest = {"format": ARCHIVE_FORMAT, "change_id": change_id, "created": created, "algorithm": "sha256",
                "key_id": key_id,
                "files": {name: {"sha256": _sha256(data), "size": len(data)} for name, data in sorted(members.items())}}
    manifest_bytes = _canonical(manifest)
    members[MANIFEST] = manifest_bytes
    members[SIGNATURE] = (key.sign(MANIFEST_DOMAIN + manifest_bytes).hex() + "\n").encode("ascii")

    out_dir = private_dir(Path(out_dir) if out_dir else engine.store.change_dir(change_id) / "archive")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = out_dir / f"{change_id}-{stamp}.tar.gz"
    mtime = int(datetime.now(UTC).timestamp())
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
                for name in [MANIFEST, SIGNATURE, "archive.json", *sorted(n for n in members
                                                                        if n not in (MANIFEST, SIGNATURE,
                                                                                     "archive.json"))]:
                    info = tarfile.TarInfo(f"{change_id}/{name}")
                    info.size, info.mode, info.mtime = len(members[name]), 0o600, mtime
                    info.uname = info.gname = "sopctl"
                    tar.addfile(info, io.BytesIO(members[name]))
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o400)
        os.link(tmp, path)  # never replaces an existing archive (fails if the name exists)
        os.unlink(tmp)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)  # nothing partial is left behind
        if isinstance(exc, OSError):
            raise naming(exc, path) from exc
        raise
    return {"path": str(path), "sha256": _sha256(path.read_bytes()), "manifest_sha256": _sha256(manifest_bytes),
            "files": len(manifest["files"]), "key_id": key_id, "public_key": str(pub_path),
            "retention": text, "keep_until": keep_until}


# ------------------------------------------------------------------------------ verify
@dataclass
class ArchiveResult:
    path: str
    ok: bool = True
    unreadable: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    change_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def fail(self, text: str) -> None:
        self.ok = False
        self.problems.append(text)

    @property
    def exit_code(self) -> int:
        return EXIT_USAGE if self.unreadable else (EXIT_OK if self.ok else EXIT_BAD)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "exit_code": self.exit_code, "change_id": self.change_id,
                "problems": self.problems, "notes": self.notes, "checks": self.checks,
                "retention": self.metadata.get("retention")}


def is_archive(path: str | Path) -> bool:
    p = Path(path)
    return p.is_file() and not str(p).endswith(".jsonl") and tarfile.is_tarfile(str(p))


#: an archive member is read into memory to be hashed and parsed: its size and the sum are bounded
ARCHIVE_MEMBER_LIMIT = 1 << 30
ARCHIVE_TOTAL_LIMIT = 4 << 30
_TAR_KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
              tarfile.LNKTYPE: "hardlink", tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "chardev",
              tarfile.BLKTYPE: "blockdev", tarfile.DIRTYPE: "dir", tarfile.FIFOTYPE: "fifo"}


class _HeadersRefused(ValueError):
    """A header sopctl never writes and two tar readers could read differently: a tampered archive."""


def _strict_listing(fd: int) -> list[tuple[str, str, int]]:
    """Members (name, type, size) as GNU tar reads the archive: the collection's strict tar reader
    (backup_tarscan) refuses every header that two tar readers could read differently (a GNU long
    name beside a pax path, two extended headers, bad checksums, ...). Raises ValueError."""
    ensure_importable()
    from ansible_collections.itsop.change.plugins.module_utils import backup_tarscan

    listing: list[tuple[str, str, int]] = []
    reader = backup_tarscan.TarReader(
        lambda m: listing.append((m.name.decode("utf-8", "surrogateescape"), m.type, m.size)))
    total = 0
    with os.fdopen(os.dup(fd), "rb") as raw:
        if raw.read(2) != b"\x1f\x8b":
            raise ValueError("not a gzip-compressed tar (sopctl archives are .tar.gz)")
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                while True:
                    chunk = gz.read(1 << 20)
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > ARCHIVE_TOTAL_LIMIT + (1 << 20):
                        raise ValueError(f"more than {ARCHIVE_TOTAL_LIMIT} bytes once decompressed")
                    reader.feed(memoryview(chunk))
            reader.close()
        except backup_tarscan.ArchiveRefused as exc:
            raise _HeadersRefused(f"{exc.msg}; sopctl never writes such a header and another tar reader could "
                                  "read it differently") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"not a valid gzip stream ({exc})") from None
    return listing


def _read_members(path: Path, res: ArchiveResult) -> dict[str, bytes] | None:
    members: dict[str, bytes] = {}
    top: set[str] = set()
    try:
        ensure_importable()
        from ansible_collections.itsop.change.plugins.module_utils import safe_input

        fd, _st = safe_input.open_regular_file(path, limit=None, what="archive")
    except (ValueError, OSError) as exc:  # safe_input.InputError is a ValueError
        res.unreadable = True
        res.fail(str(exc))
        return None
    try:
        try:
            strict = _strict_listing(fd)
        except _HeadersRefused as exc:  # altered after sopctl wrote it: tampered (exit 1), nothing read
            res.fail(f"archive refused: {exc}")
            return None
        except ValueError as exc:
            res.unreadable = True
            res.fail(f"unreadable archive: {exc}")
            return None
        os.lseek(fd, 0, os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as raw, tarfile.open(fileobj=raw, mode="r:gz") as tar:
            seen: list[tuple[str, str, int]] = []
            total = 0
            for info in tar:
                seen.append((info.name, _TAR_KINDS.get(info.type, repr(info.type)), info.size))
                if seen[-1] != (strict[len(seen) - 1] if len(seen) <= len(strict) else None):
                    res.fail(f"member {info.name!r}: read differently by two tar readers; archive refused")
                    return None
                name = PurePosixPath(info.name)
                if info.isdir():
                    continue
                if name.is_absolute() or ".." in name.parts or len(name.parts) < 2:
                    res.fail(f"member {info.name!r}: unsafe or unexpected path")
                    continue
                if not info.isfile():
                    res.fail(f"member {info.name!r}: not a regular file (type {info.type!r})")
                    continue
                top.add(name.parts[0])
                rel = "/".join(name.parts[1:])
                if rel in members:
                    res.fail(f"member {rel!r} appears twice in the archive")
                    continue
                total += info.size
                if info.size > ARCHIVE_MEMBER_LIMIT or total > ARCHIVE_TOTAL_LIMIT:
                    res.unreadable = True
                    res.fail(f"member {info.name!r}: {info.size} bytes (members over {ARCHIVE_MEMBER_LIMIT} "
                             f"bytes, or over {ARCHIVE_TOTAL_LIMIT} in all, are not read)")
                    return None
                handle = tar.extractfile(info)
                members[rel] = handle.read() if handle else b""
            if len(seen) != len(strict):
                res.fail(f"the archive holds {len(strict)} members for one tar reader and {len(seen)} for "
                         "another; archive refused")
                return None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        res.unreadable = True
        res.fail(f"unreadable archive: {exc}")
        return None
    finally:
        os.close(fd)
    if len(top) > 1:
        res.fail(f"members under several top directories: {', '.join(sorted(top))}")
    res.change_id = next(iter(top)) if len(top) == 1 else None
    return members


def _load_key(path: str):
    ac = chain()
    try:
        return ac.load_public_key(path)
    except (ac.AuditLogError, OSError, ValueError) as exc:
        raise SopctlError(f"public key {path}: {exc}") from exc


def verify_archive(path: str | Path, public_keys: list[str], roster: str | Path | None = None) -> ArchiveResult:
    """Verify an archive offline: manifest, its signature, every audit log chain, every approval signature.

    ``public_keys``: PEM files; the manifest must be signed by one of them (the controller key). An
    audit log with signed checkpoints is checked against them when its key ids are among them.
    ``roster``: a pinned roster file (YAML, as sopctl uses); every approval's signer must be in it
    with the same public key as in the archive's ``roster.json``.
    """
    from cryptography.exceptions import InvalidSignature

    ac = chain()
    res = ArchiveResult(str(path))
    if not public_keys:
        res.unreadable = True
        res.fail("an archive is verified against the controller's public key: pass --public-key controller.pub")
        return res
    try:
        keys = {ap.key_id(k): k for k in (_load_key(p) for p in public_keys)}
    except SopctlError as exc:
        res.unreadable = True
        res.fail(str(exc))
        return res
    members = _read_members(Path(path), res)
    if members is None:
        return res

    # 1. manifest signature
    manifest_bytes, sig = members.get(MANIFEST), members.get(SIGNATURE)
    manifest_key = None
    if manifest_bytes is None or sig is None:
        res.fail(f"{MANIFEST if manifest_bytes is None else SIGNATURE} is missing")
        res.checks["manifest_signature"] = "missing"
        return res
    try:
        raw_sig = bytes.fromhex(sig.decode("ascii").strip())
    except (ValueError, UnicodeDecodeError):
        raw_sig = b""
    for kid, key in keys.items():
        try:
            key.verify(raw_sig, MANIFEST_DOMAIN + manifest_bytes)
            manifest_key = kid
            break
        except (InvalidSignature, ValueError):
            continue
    if manifest_key is None:
        res.fail(f"{SIGNATURE}: the manifest signature does not verify with the given public key(s) "
                 f"({', '.join(keys)}): manifest changed or signed by another key")
        res.checks["manifest_signature"] = "invalid"
    else:
        res.checks["manifest_signature"] = f"verified ({manifest_key})"

    # 2. manifest entries against the members
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
        files = manifest["files"]
        assert isinstance(files, dict)
    except (ValueError, KeyError, AssertionError, UnicodeDecodeError):
        res.fail(f"{MANIFEST} is not a valid manifest")
        return res
    if res.change_id and manifest.get("change_id") != res.change_id:
        res.fail(f"{MANIFEST} is for change {manifest.get('change_id')}, the archive holds {res.change_id}")
    listed = set(files)
    present = set(members) - {MANIFEST, SIGNATURE}
    for name in sorted(present - listed):
        res.fail(f"{name}: in the archive but not in the manifest (file added)")
    for name in sorted(listed - present):
        res.fail(f"{name}: listed in the manifest but missing from the archive (file removed)")
    bad_hash = 0
    for name in sorted(listed & present):
        entry = files[name] or {}
        data = members[name]
        if _sha256(data) != entry.get("sha256") or len(data) != entry.get("size"):
            bad_hash += 1
            res.fail(f"{name}: SHA-256 does not match the manifest (file changed)")
    res.checks["manifest"] = {"listed": len(listed), "present": len(present), "hash_mismatches": bad_hash}
    try:
        res.metadata = json.loads(members.get("archive.json", b"{}").decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        res.fail("archive.json is not valid JSON")

    # 3. audit logs (chain; checkpoint signatures when their key was given)
    logs = {n: d for n, d in members.items() if n.startswith("audit/") and n.endswith(".jsonl")}
    if not logs:
        res.fail("no audit logs (audit/*.jsonl) in the archive")
    results = []
    with tempfile.TemporaryDirectory(prefix="sopctl-verify-") as tmp:
        for name, data in sorted(logs.items()):
            f = Path(tmp) / Path(name).name
            f.write_bytes(data)
            vr = ac.verify_log(str(f))
            if vr.ok and vr.signature == ac.SIG_NOT_CHECKED and set(vr.key_ids) <= set(keys):
                vr = ac.verify_log(str(f), public_keys=list(keys.values()))  # signed: check with the given keys
            results.append({"file": name, "status": vr.status, "summary": vr.summary(), "signature": vr.signature})
            if not vr.ok:
                res.fail(f"{name}: audit log {vr.summary()}")
            elif vr.signature == ac.SIG_UNSIGNED:
                res.notes.append(f"{name}: checkpoints unsigned (hash chain only)")
            elif vr.signature == ac.SIG_NOT_CHECKED:
                res.notes.append(f"{name}: signed checkpoints not checked (pass the audit key with --public-key)")
    res.checks["audit_logs"] = results

    # 4. approvals against the archived roster and the pinned roster
    _verify_approvals(members, roster, res)
    return res


def _verify_approvals(members: dict[str, bytes], roster_path: str | Path | None, res: ArchiveResult) -> None:
    try:
        rows = json.loads(members["approvals.json"].decode("utf-8"))
        arch_roster = json.loads(members["roster.json"].decode("utf-8"))["people"]
        assert isinstance(rows, list) and isinstance(arch_roster, dict)
    except (KeyError, ValueError, UnicodeDecodeError, TypeError, AssertionError) as exc:
        res.fail(f"approvals.json / roster.json missing or unreadable ({exc})")
        return
    pinned = None
    if roster_path:
        from .policy import load_roster

        try:
            pinned = load_roster(roster_path)
        except SopctlError as exc:
            res.unreadable = True
            res.fail(f"pinned roster: {exc}")
            return
    else:
        res.notes.append("no --roster given: approvals checked against the roster inside the archive only "
                         "(protected by the manifest signature)")
    try:
        cr = json.loads(members["change_request.json"].decode("utf-8"))
        change = json.loads(members["change.json"].decode("utf-8"))
        plan = members.get("evidence/stage1/plan.json")
        from .changes import target_list

        targets = target_list(change["targets"])
        cr_dig = ap.cr_digest(cr)
        plan_dig = _sha256(plan) if plan is not None else None
    except (KeyError, ValueError, UnicodeDecodeError, TypeError):
        cr_dig = plan_dig = None
        targets = []
    checked = bound = 0
    outcomes: dict[str, int] = {}
    for row in rows:
        if not isinstance(row, dict):
            res.fail("approvals.json: an entry is not an object")
            continue
        who, gate = row.get("person"), row.get("gate")
        label = f"approvals.json: {row.get('decision')} of {who} at gate {gate} ({row.get('time')})"
        person = arch_roster.get(who) if isinstance(who, str) else None
        pem = person.get("public_key") if isinstance(person, dict) else None
        status, reason = check_decision(row, isinstance(person, dict),
                                        pem.encode("ascii", "replace") if isinstance(pem, str) else None,
                                        "the archive's roster")
        outcomes[status] = outcomes.get(status, 0) + 1
        if status != SIG_VALID:
            res.fail(f"{label}: {reason}")
            continue
        if pinned is not None:
            pp = pinned.people.get(who)
            if pp is None or not pp.public_key_pem:
                res.fail(f"{label}: signer {who} is not in the pinned roster {roster_path} (removed from the roster "
                         "after signing, or never in it); the signature verifies with the archive roster's key")
                continue
            if ap.key_id(ap.load_public_pem(pp.public_key_pem, who)) != \
                    ap.key_id(ap.load_public_pem(pem.encode("ascii"), who)):
                res.fail(f"{label}: the archive's key for {who} differs from the pinned roster's key")
                continue
            if row.get("role") not in pp.roles:
                res.fail(f"{label}: {who} does not hold role {row.get('role')} in the pinned roster")
                continue
        checked += 1
        if cr_dig and row.get("binding") == ap.binding_digest(res.change_id or "", gate, cr_dig, plan_dig, targets):
            bound += 1
    res.checks["approvals"] = {"total": len(rows), "signatures_verified": checked,
                               "bound_to_archived_cr_and_plan": bound, "roster_pinned": pinned is not None,
                               **{f"signer_{k}": n for k, n in sorted(outcomes.items()) if k != SIG_VALID}}
    if rows and bound < checked:
        res.notes.append(f"{checked - bound} verified decision(s) are bound to an earlier version of the change "
                         "request or plan (void)")


def print_result(res: ArchiveResult, as_json: bool, args: Any = None) -> int:
    """Print the verification; its code is declared first (a closed pipe still ends with it)."""
    from .errors import declare_result
    from .textsafe import one_line

    if args is not None:
        declare_result(args, res.exit_code)
    if as_json:
        print(json.dumps(res.to_dict(), indent=2, sort_keys=True, default=str))
        return res.exit_code
    lines = []
    state = "INTACT" if res.ok else ("UNREADABLE" if res.unreadable else "FAILED")
    lines.append(f"{res.path}: archive {state}" + (f" ({res.change_id})" if res.change_id else ""))
    for k, v in res.checks.items():
        if k == "audit_logs":
            for r in v:
                lines.append(f"  audit {r['file']}: {r['summary']}; signature {r['signature']}")
        else:
            lines.append(f"  {k}: {v if not isinstance(v, dict) else ', '.join(f'{a} {b}' for a, b in v.items())}")
    ret = res.metadata.get("retention") if isinstance(res.metadata, dict) else None
    if isinstance(ret, dict):
        lines.append(f"  retention: {ret.get('setting')} (keep until {ret.get('keep_until')}; {ret.get('source')})")
    lines.extend(f"  PROBLEM: {p}" for p in res.problems)
    lines.extend(f"  note: {n}" for n in res.notes)
    for line in lines:  # every line is one line: text from the archive cannot add or rewrite lines
        print(one_line(line))
    return res.exit_code
