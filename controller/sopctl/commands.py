"""The change commands of sopctl: validate, submit, run, approve, reject, status, list, rollback,
roster check, identity keygen.

Exit codes: 0 done (or waiting at a people gate), 1 a stage failed, 2 bad usage / invalid input /
unknown change, 3 refused by a policy rule (the message names the rule:
``refused (SoD-1: requester budi cannot approve the plan)``); errors end in ``sopctl.cli.main``'s
boundary (one line, the codes of docs/sopctl.md). Text from a change or the inventory is printed
through :func:`sopctl.textsafe.one_line`: a title or comment cannot add, hide or rewrite lines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .errors import EXIT_OK, EXIT_USAGE, SopctlError, declare_result
from .stage_table import PEOPLE_GATES, PLAYBOOK_STAGES
from .textsafe import one_line


def _engine(args: argparse.Namespace):
    """The engine of one command: who acts is read here, once, at the command line's edge."""
    from . import api
    from .approvals import Actor

    return api.engine(json_mode=getattr(args, "json", False), actor=Actor.from_environment())


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("validate", help="validate a change request file")
    p.add_argument("change_request", type=Path, metavar="CR.yml")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_validate)

    p = subparsers.add_parser("submit", help="validate and register a change request")
    p.add_argument("change_request", type=Path, metavar="CR.yml")
    p.add_argument("--inventory", "-i", type=Path, help="inventory (default: 'inventory' in config.yml)")
    p.add_argument("--allow-conflict", action="store_true",
                   help="register even if another open change touches the same hosts in an overlapping window")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_submit)

    p = subparsers.add_parser("run", help="advance a change as far as its gates allow (safe to repeat)")
    p.add_argument("change_id", metavar="CHANGE_ID")
    p.add_argument("--until", choices=list(PLAYBOOK_STAGES), help="do not start stages after this one")
    p.add_argument("--json", action="store_true", help="progress and result as JSON lines")
    p.set_defaults(func=cmd_run)

    for name, help_text in (("approve", "approve a gate (signed with your identity)"),
                            ("reject", "reject a gate (signed with your identity)")):
        p = subparsers.add_parser(name, help=help_text)
        p.add_argument("change_id", metavar="CHANGE_ID")
        p.add_argument("--gate", required=True, choices=list(PEOPLE_GATES))
        p.add_argument("--comment", required=(name == "reject"), default="",
                       help="reason / evaluation (required for reject and for security at gate plan)")
        p.add_argument("--role", help="the role you sign for when you hold several of the gate's roles")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_decide, decision="approve" if name == "approve" else "reject")

    p = subparsers.add_parser("status", help="where a change stands: stages, gates, approvals")
    p.add_argument("change_id", metavar="CHANGE_ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("list", help="list changes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = subparsers.add_parser("rollback", help="run the rollback playbook for a change")
    p.add_argument("change_id", metavar="CHANGE_ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rollback)

    p = subparsers.add_parser("cancel", help="withdraw a change before stage 3 (requester or IT manager)")
    p.add_argument("change_id", metavar="CHANGE_ID")
    p.add_argument("--reason", required=True, help="why (recorded in the audit log and the report)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cancel)

    roster = subparsers.add_parser("roster", help="check the roster (people, roles, keys, quorum)")
    rsub = roster.add_subparsers(dest="roster_command", metavar="SUBCOMMAND")
    roster.set_defaults(func=lambda a: (roster.print_help(sys.stderr), EXIT_USAGE)[1])
    p = rsub.add_parser("check", help="load the roster and freeze calendar and report problems")
    p.add_argument("--roster", type=Path, help="roster file (default: 'roster' in config.yml)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_roster_check)

    ident = subparsers.add_parser("identity", help="manage your signing identity")
    isub = ident.add_subparsers(dest="identity_command", metavar="SUBCOMMAND")
    ident.set_defaults(func=lambda a: (ident.print_help(sys.stderr), EXIT_USAGE)[1])
    p = isub.add_parser("keygen", help="create an Ed25519 key and identity.yml; prints the public key for the roster")
    p.add_argument("--id", required=True, dest="person", help="your roster id")
    p.add_argument("--dir", type=Path, help="directory (default: the directory of SOPCTL_IDENTITY or "
                                            "~/.config/sopctl)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_keygen)
    p = isub.add_parser("show", help="show your identity and whether it matches the roster")
    p.set_defaults(func=cmd_identity_show)


def _print_json(obj: Any) -> None:
    # ensure_ascii (the default): control, bidi and format characters are \u-escaped, exact and inert
    print(json.dumps(obj, indent=2, sort_keys=True, default=str, ensure_ascii=True))


def _say(line: str) -> None:
    """Print one line of human output; the fields in it cannot add, hide or rewrite lines."""
    print(one_line(line))


def cmd_validate(args: argparse.Namespace) -> int:
    from .changes import validate_file

    errors = validate_file(args.change_request)
    declare_result(args, EXIT_OK if not errors else EXIT_USAGE)
    if args.json:
        _print_json({"ok": not errors, "errors": errors, "path": str(args.change_request)})
    elif errors:
        print(one_line(f"{args.change_request}: invalid change request (CR-1):"), file=sys.stderr)
        for e in errors:
            print(one_line(f"  - {e}"), file=sys.stderr)
    else:
        _say(f"{args.change_request}: valid")
    return EXIT_OK if not errors else EXIT_USAGE


def cmd_submit(args: argparse.Namespace) -> int:
    from . import api

    eng = _engine(args)
    try:
        operator = eng.actor.identity().id
    except SopctlError:
        operator = None
    res = api.submit(args.change_request, args.inventory, operator=operator, allow_conflict=args.allow_conflict,
                     submitted_by=operator or os.environ.get("USER", "?"), engine=eng)  # read here, at the edge
    declare_result(args, EXIT_OK)  # submitted: a closed output cannot undo it
    if args.json:
        _print_json(dict(res, ok=True))
    else:
        _say(f"{res['change_id']}: submitted")
        for env, hosts in res["targets"].items():
            _say(f"  {env}: {', '.join(hosts) or '-'}")
        for w in res["warnings"]:
            _say(f"  warning: {w}")
        _say(f"  next: sopctl run {res['change_id']}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from . import api

    eng = _engine(args)
    code = declare_result(args, api.run(args.change_id, args.until, engine=eng))
    if args.json:
        st = api.status(args.change_id, engine=eng)
        print(json.dumps({"event": "result", "ok": True, "exit_code": code, "state": st["state"],
                          "next": st["next"]}, sort_keys=True))
    return code


def cmd_decide(args: argparse.Namespace) -> int:
    from . import api

    eng = _engine(args)
    res = api.decide(args.change_id, args.gate, args.decision, args.comment, args.role, engine=eng)
    declare_result(args, EXIT_OK)  # signed and stored
    if args.json:
        _print_json(dict(res, ok=True))
        return EXIT_OK
    gs = res["gate_state"]
    verb = "approved" if args.decision == "approve" else "rejected"
    _say(f"{args.change_id}: {res['person']} {verb} gate {args.gate} as {res['role']} (signed)")
    if gs["status"] == "satisfied":
        _say(f"  gate {args.gate} is satisfied; next: sopctl run {args.change_id}")
    elif gs["missing"]:
        _say("  still needed: " + ", ".join(f"{r} x{n}" for r, n in gs["missing"].items()))
    return EXIT_OK


def _unverified_decisions(eng: Any, change_id: str, gate: str, persons: list[str]) -> dict[str, list[str]]:
    """Why the decisions the engine could not verify fail: ``{outcome: [person, ...]}``.

    The engine reports them together as *tampered*; an approver removed from the roster after
    signing (nothing to check the signature with) is not a forged decision and is named apart.
    """
    from .approvals import check_decision

    out: dict[str, list[str]] = {}
    if not persons:
        return out
    people = eng.roster.people
    for row in eng.store.approvals(change_id, gate):
        if row["person"] not in persons:
            continue
        person = people.get(row["person"])
        status, _ = check_decision(row, person is not None, person.public_key_pem if person else None)
        if status != "valid" and row["person"] not in out.setdefault(status, []):
            out[status].append(row["person"])
    return {k: v for k, v in out.items() if v}


_UNVERIFIED_LABEL = {
    "invalid": "TAMPERED (signature does not verify)",
    "not_in_roster": "NOT IN ROSTER (signer removed from the roster; cannot be checked, does not count)",
    "no_key": "NO KEY IN ROSTER (cannot be checked, does not count)",
    "other_key": "SIGNED WITH ANOTHER KEY than the roster's (key replaced, or forged; does not count)",
}


def cmd_status(args: argparse.Namespace) -> int:
    from . import api

    eng = _engine(args)
    st = api.status(args.change_id, engine=eng)
    for s in st["steps"]:
        if s.get("tampered"):
            s["unverified"] = _unverified_decisions(eng, args.change_id, s["step"].split()[-1], s["tampered"])
    declare_result(args, EXIT_OK)
    if args.json:
        _print_json(st)
        return EXIT_OK
    _say(f"{st['change_id']}  {st['title']}")
    _say(f"  state {st['state']}; requester {st['requester']}; window {st['window']['start']} .. "
         f"{st['window']['end']}")
    for env, hosts in st["targets"].items():
        _say(f"  {env}: {', '.join(hosts) or '-'}")
    if st["cr_file_changed"]:
        _say(f"  NOTE: {st['cr_path']} changed since it was loaded; the next run voids earlier approvals")
    for s in st["steps"]:
        line = f"  {s['step']:16} {s['status']}"
        if s["step"].startswith("gate") and s["step"] != "gate evidence":
            if s["approved"]:
                line += "  approved: " + "; ".join(f"{r}: {', '.join(p)}" for r, p in s["approved"].items())
            if s["missing"] and s["status"] != "not_open":
                line += "  missing: " + ", ".join(f"{r} x{n}" for r, n in s["missing"].items())
            if s["void"]:
                line += f"  ({s['void']} void)"
            for outcome, persons in (s.get("unverified") or {}).items():
                line += f"  {_UNVERIFIED_LABEL.get(outcome, outcome)}: {', '.join(persons)}"
            if s["tampered"] and not s.get("unverified"):
                line += f"  TAMPERED: {', '.join(s['tampered'])}"
            for r in s["rejected"]:
                line += f"  rejected by {r['person']}: {r['comment']}"
        elif s["step"] == "gate evidence" and s["problems"]:
            line += "  (" + "; ".join(s["problems"]) + ")"
        elif s.get("last_run"):
            lr = s["last_run"]
            line += f"  last run {lr['ident']} by {lr['operator']} ({lr['status']})"
        _say(line)
    _say(f"  next: {st['next'] or '-'}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from .store import Store

    rows = [{k: c[k] for k in ("id", "title", "state", "requester", "window_start", "window_end", "updated")}
            for c in Store().list_changes()]
    declare_result(args, EXIT_OK)
    if args.json:
        _print_json(rows)
        return EXIT_OK
    for r in rows:
        _say(f"{r['id']:16} {r['state']:22} {r['window_start']} .. {r['window_end']}  {r['title']}")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from . import api

    return api.rollback(args.change_id, engine=_engine(args))


def cmd_cancel(args: argparse.Namespace) -> int:
    from . import api

    res = api.cancel(args.change_id, args.reason, engine=_engine(args))
    declare_result(args, EXIT_OK)
    if args.json:
        _print_json(dict(res, ok=True))
    return EXIT_OK


def cmd_roster_check(args: argparse.Namespace) -> int:
    from .config import load_config
    from .policy import load_freezes, load_roster
    from .store import sopctl_home

    cfg = load_config(sopctl_home())
    path = args.roster or cfg.roster
    if not path:
        raise SopctlError(f"no roster: pass --roster or set 'roster:' in {cfg.path}")
    roster = load_roster(path)
    problems = roster.problems()
    from .approvals import load_public_pem

    for p in roster.people.values():
        if p.public_key_pem:
            try:
                load_public_pem(p.public_key_pem, p.id)
            except SopctlError as exc:
                problems.append(str(exc))
    freezes = load_freezes(cfg.freeze_calendar) if not args.roster else []
    declare_result(args, EXIT_OK if not problems else EXIT_USAGE)
    if args.json:
        _print_json({"ok": not problems, "problems": problems, "people": {
            p.id: list(p.roles) for p in roster.people.values()}, "quorum": roster.quorum,
            "freezes": [{"name": f.name, "start": f.start.isoformat(), "end": f.end.isoformat()} for f in freezes]})
    else:
        _say(f"roster {roster.path}: {len(roster.people)} people")
        for role in ("it_manager", "infrastructure", "security", "users", "qa"):
            _say(f"  {role:15} {', '.join(roster.holders(role)) or '-'}")
        for gate, q in roster.quorum.items():
            _say(f"  quorum {gate}: " + ", ".join(f"{r} {n}" for r, n in q.items()))
        for f in freezes:
            _say(f"  freeze {f.name}: {f.start.isoformat()} .. {f.end.isoformat()}")
        for pr in problems:
            _say(f"  PROBLEM: {pr}")
        _say("  ok" if not problems else f"  {len(problems)} problem(s)")
    return EXIT_OK if not problems else EXIT_USAGE


def cmd_keygen(args: argparse.Namespace) -> int:
    from .approvals import identity_path, keygen

    directory = args.dir or identity_path().parent
    key_file, ident, pub = keygen(args.person, directory, args.force)
    declare_result(args, EXIT_OK)
    _say(f"private key {key_file} (mode 0600; never share it)")
    _say(f"identity    {ident}" + ("" if ident == identity_path() else f"  (export SOPCTL_IDENTITY={ident})"))
    _say("public key for the roster (people." + args.person + ".public_key):")
    print(pub, end="")
    return EXIT_OK


def cmd_identity_show(args: argparse.Namespace) -> int:
    from . import api
    from .approvals import Actor, check_identity_matches, key_id

    actor = Actor.from_environment()
    ident = actor.identity()
    _say(f"identity {ident.id} ({ident.path}), key {key_id(ident.key.public_key())}")
    eng = api.engine(actor=actor)
    check_identity_matches(ident, eng.roster.person(ident.id).public_key_pem)
    declare_result(args, EXIT_OK)
    _say(f"matches the roster {eng.roster.path}; roles: {', '.join(eng.roster.person(ident.id).roles)}")
    return EXIT_OK
