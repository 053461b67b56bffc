"""``sopctl audit``: verify, show, query audit logs and create signing keys.

The verification logic is NOT here: it lives once in the collection
(``plugins/module_utils/audit_chain.py``) and is shared with the ``itsop.change.audit_log``
callback. Exit codes: 0 intact, 1 tampered / torn tail / incomplete, 2 unreadable or bad usage
(the others, e.g. 5 when the collection is not found, come from the boundary in ``sopctl.cli``).
A verification declares its result before printing it, so ``sopctl audit verify DIR | head`` still
ends with the verification's code when ``head`` stops reading. Every line printed is made of
:func:`sopctl.textsafe.one_line` fields: a log cannot add, hide or rewrite lines on the terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

from .collection import ensure_importable
from .errors import declare_result
from .textsafe import one_line

EXIT_OK = 0
EXIT_BAD = 1
EXIT_USAGE = 2


def chain():
    """Import the collection's shared audit-chain module."""
    ensure_importable()
    from ansible_collections.itsop.change.plugins.module_utils import audit_chain

    return audit_chain


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``audit`` command and its subcommands."""
    audit = subparsers.add_parser(
        "audit", help="verify, show and query tamper-evident audit logs",
        description="Verify, show and query the hash-chained audit logs (Log Aktivitas Sistem IT).")
    sub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    audit.set_defaults(func=lambda args: _usage(audit))

    verify = sub.add_parser("verify", help="verify a log file or a directory of logs",
                            description="Exit 0 intact, 1 tampered/torn tail/incomplete, 2 unreadable.")
    verify.add_argument("path", help="audit log file (.jsonl) or directory of them")
    verify.add_argument("--public-key", action="append", default=[], metavar="FILE",
                        help="Ed25519 public key (PEM) trusted for checkpoint signatures; repeatable. "
                             "When given, every checkpoint must be signed by one of them.")
    verify.add_argument("--expect-head", metavar="HASH",
                        help="a record hash stored elsewhere (e.g. a copied checkpoint head); the log "
                             "must contain it (detects a deleted tail)")
    verify.add_argument("--roster", metavar="ROSTER",
                        help="archive only: pinned roster; every approval signer must be in it with the same key")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(func=cmd_verify)

    show = sub.add_parser("show", help="human summary per host and task, failures first")
    show.add_argument("path", help="audit log file or directory")
    show.add_argument("--public-key", action="append", default=[], metavar="FILE")
    show.set_defaults(func=cmd_show)

    query = sub.add_parser("query", help="run a JMESPath expression over the records, print JSON",
                           description="The expression is applied to the list of all records of "
                                       "PATH, e.g. \"[?status=='failed'].{host: host, task: task.name}\".")
    query.add_argument("path", help="audit log file or directory")
    query.add_argument("--jmespath", required=True, metavar="EXPR", help="JMESPath expression")
    query.add_argument("--public-key", action="append", default=[], metavar="FILE")
    query.set_defaults(func=cmd_query)

    keygen = sub.add_parser("keygen", help="create an Ed25519 key pair for signing checkpoints")
    keygen.add_argument("private_key", metavar="PRIVATE_KEY",
                        help="path of the private key to create (mode 0600)")
    keygen.add_argument("--public-key", metavar="FILE",
                        help="path of the public key (default: PRIVATE_KEY.pub)")
    keygen.add_argument("--force", action="store_true", help="overwrite existing files")
    keygen.set_defaults(func=cmd_keygen)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _err(msg: str) -> None:
    print(f"sopctl audit: {one_line(msg)}", file=sys.stderr)


def _verify_all(path: str, public_keys: list[str], expect_head: str | None = None):
    ac = chain()
    p = Path(path)
    if not p.exists():
        return None, f"{path}: no such file or directory"
    files = ac.find_logs(path)
    if not files:
        return None, f"{path}: no audit logs (*.jsonl) in this directory"
    results = [ac.verify_log(f, public_keys=public_keys or None, expect_head=expect_head) for f in files]
    return results, None


def _exit_code(results) -> int:
    return max(r.exit_code for r in results)


def cmd_verify(args: argparse.Namespace) -> int:
    from . import archive  # an audit archive (tar): see sopctl/archive.py

    if archive.is_archive(args.path):
        return archive.print_result(archive.verify_archive(args.path, args.public_key, args.roster), args.json, args)
    results, error = _verify_all(args.path, args.public_key, args.expect_head)
    if error:
        declare_result(args, EXIT_USAGE)
        if args.json:
            print(json.dumps({"ok": False, "error": error, "results": []}, indent=2))
        _err(error)
        return EXIT_USAGE
    code = declare_result(args, _exit_code(results))  # the result, before any output can fail
    if args.json:
        print(json.dumps({"ok": code == 0, "exit_code": code,
                          "results": [r.to_dict() for r in results]}, indent=2))
        return code
    for r in results:
        print(one_line(f"{r.path}: {r.summary()}"))
        if r.run_id:
            print(one_line(f"  run id {r.run_id}; {r.first_time} .. {r.last_time}"))
        sig = {
            "verified": f"signatures verified ({r.signed_checkpoints} signed checkpoints, key "
                        f"{', '.join(map(str, r.key_ids))})",
            "unsigned": "NOT SIGNED: checkpoints carry no signature; the log is only hash-chained",
            "not_checked": "signatures NOT checked: the log is signed but no --public-key was given",
            "invalid": "SIGNATURE CHECK FAILED",
        }[r.signature]
        print(one_line(f"  {sig}"))
        for note in r.notes:
            print(one_line(f"  note: {note}"))
    return code


def _load_records(path: str, public_keys: list[str]):
    """(records, verify results) for a file or directory; records carry ``_file`` only in show."""
    results, error = _verify_all(path, public_keys)
    if error:
        raise FileNotFoundError(error)
    ac = chain()
    records: list[dict[str, Any]] = []
    for r in results:
        if r.status == ac.STATUS_UNREADABLE:
            continue
        records.extend(ac.iter_records(r.path))
    return records, results


def cmd_query(args: argparse.Namespace) -> int:
    try:
        import jmespath
        from jmespath.exceptions import JMESPathError
    except ImportError:
        _err("the Python library jmespath is required for 'audit query'")
        return EXIT_USAGE
    try:
        expr = jmespath.compile(args.jmespath)
    except JMESPathError as exc:
        _err(f"bad JMESPath expression: {exc}")
        return EXIT_USAGE
    try:
        records, results = _load_records(args.path, args.public_key)
    except FileNotFoundError as exc:
        _err(str(exc))
        return EXIT_USAGE
    code = _exit_code(results)
    for r in results:
        if not r.ok:
            _err(f"WARNING {r.path}: {r.summary()}")
    try:
        out = expr.search(records)
    except JMESPathError as exc:
        _err(f"JMESPath evaluation failed: {exc}")
        return EXIT_USAGE
    declare_result(args, code)
    # ensure_ascii: control, bidi and format characters of the records are \u-escaped (exact and inert)
    print(json.dumps(out, indent=2, sort_keys=True, ensure_ascii=True))
    return code


def _msg(rec: dict[str, Any]) -> str:
    if rec.get("no_log"):
        return "(output hidden: no_log)"
    res = rec.get("result") or {}
    msg = res.get("msg") or res.get("stderr") or ""
    if isinstance(msg, list | dict):
        msg = json.dumps(msg, ensure_ascii=False)
    msg = " ".join(str(msg).split())
    return msg[:200]


def cmd_show(args: argparse.Namespace) -> int:
    try:
        records, results = _load_records(args.path, args.public_key)
    except FileNotFoundError as exc:
        _err(str(exc))
        return EXIT_USAGE
    declare_result(args, _exit_code(results))
    out = sys.stdout
    q = one_line  # every field from a record is shown on one line, its control characters as markers
    for r in results:
        out.write(f"{q(r.path)}\n  verification: {q(r.summary())}\n  signature: {q(r.signature)}\n")
    runs: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for rec in records:
        run = runs.setdefault(rec.get("run_id"), {"first": rec, "last": rec, "results": []})
        run["last"] = rec
        if rec.get("type") == "result":
            run["results"].append(rec)
    for run_id, run in runs.items():
        first, last = run["first"], run["last"]
        op = first.get("operator") or {}
        who = q(op.get("os_user", "?")) + (f" (declared: {q(op['declared'])})" if op.get("declared") else "")
        out.write(f"\nrun {q(run_id)}\n  change {q(first.get('change_id') or '-')}"
                  f"  stage {q(first.get('stage') or '-')}  operator {who}"
                  f"  controller {q(first.get('controller') or '-')}\n"
                  f"  time {q(first.get('time'))} .. {q(last.get('time'))}\n")
        res = run["results"]
        bad = [x for x in res if x.get("status") in ("failed", "item_failed", "unreachable", "async_failed")]
        out.write(f"\n  FAILURES ({len(bad)})\n")
        for x in bad:
            ign = " [ignored]" if x.get("ignore_errors") else ""
            item = f" item={json.dumps(x['item'], ensure_ascii=True)}" if "item" in x else ""
            out.write(f"    {q(str(x.get('status')).upper()):12} {q(x.get('host'))}: "
                      f"{q((x.get('task') or {}).get('name'))}{item}{ign} -- {q(_msg(x))}\n")
        hosts: dict[str, Counter] = {}
        for x in res:
            if x.get("status") in ("ok", "failed", "skipped", "unreachable"):
                c = hosts.setdefault(x.get("host"), Counter())
                c[x["status"]] += 1
                if x.get("changed"):
                    c["changed"] += 1
        out.write("\n  PER HOST               ok changed failed skipped unreachable\n")
        for host in sorted(hosts):
            c = hosts[host]
            out.write(f"    {q(host):20} {c['ok']:3} {c['changed']:7} {c['failed']:6} {c['skipped']:7} "
                      f"{c['unreachable']:11}\n")
        tasks: OrderedDict[str, dict[str, Any]] = OrderedDict()
        for x in res:
            if x.get("status") not in ("ok", "failed", "skipped", "unreachable"):
                continue
            t = x.get("task") or {}
            entry = tasks.setdefault(t.get("uuid"), {"task": t, "c": Counter()})
            entry["c"][x["status"]] += 1
            if x.get("changed"):
                entry["c"]["changed"] += 1
        out.write("\n  PER TASK\n")
        for entry in tasks.values():
            c, t = entry["c"], entry["task"]
            parts = ", ".join(f"{k} {c[k]}" for k in ("ok", "changed", "failed", "skipped", "unreachable")
                              if c[k])
            out.write(f"    {q(t.get('name'))} [{q(t.get('action'))}]: {parts}\n")
        if last.get("type") == "checkpoint" and last.get("final"):
            out.write(f"\n  ended with final checkpoint ({q(last.get('reason') or 'end')})\n")
        interrupted = [x for x in records if x.get("type") == "interrupted" and x.get("run_id") == run_id]
        for x in interrupted:
            out.write(f"  INTERRUPTED by {q(x.get('signal'))} at {q(x.get('time'))}\n")
    return _exit_code(results)


def cmd_keygen(args: argparse.Namespace) -> int:
    ac = chain()
    public = args.public_key or f"{args.private_key}.pub"
    try:
        key_id = ac.write_keypair(args.private_key, public, overwrite=args.force)
    except (ac.AuditLogError, OSError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    print(f"private key {args.private_key} (mode 0600): configure it as ITSOP_AUDIT_SIGNING_KEY")
    print(f"public key  {public}: give it to verifiers (sopctl audit verify --public-key)")
    print(f"key id      {key_id}")
    return EXIT_OK
