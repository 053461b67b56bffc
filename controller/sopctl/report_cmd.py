"""``sopctl report`` and ``sopctl archive`` (Tahap 6), and the stage-6 close hook.

``sopctl report CHANGE_ID --format html|md|json --lang id|en [--output FILE]`` prints (or writes)
the report. ``sopctl archive CHANGE_ID [--output DIR]`` writes the signed audit archive.
Verify an archive with ``sopctl audit verify ARCHIVE --public-key controller.pub [--roster R]``.

The work is done by :func:`sopctl.api.report` and :func:`sopctl.api.archive`; this module parses
and formats. Stage 6 (the reports and the archive written when the IT manager's closing approval is
in) is :mod:`sopctl.stage6`, wired into the engine explicitly.

Files are written atomically (a temporary file in the same directory, renamed into place): a full
disk or a refused write leaves the earlier file intact and no partial file behind, and ends in
``sopctl.cli.main``'s boundary with one line naming the path (exit 4).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import EXIT_OK, declare_result, naming
from .textsafe import one_line


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="the change report (laporan): html, md or json, Indonesian or English")
    p.add_argument("change_id", metavar="CHANGE_ID")
    p.add_argument("--format", choices=["html", "md", "json"], default="md")
    p.add_argument("--lang", choices=["id", "en"], default="id")
    p.add_argument("--output", "-o", type=Path, metavar="FILE", help="write to FILE (0600) instead of stdout")
    p.set_defaults(func=cmd_report)

    p = subparsers.add_parser("archive", help="write the signed audit archive of a change (tar.gz + MANIFEST)")
    p.add_argument("change_id", metavar="CHANGE_ID")
    p.add_argument("--output", "-o", type=Path, metavar="DIR",
                   help="directory for the archive (default: SOPCTL_HOME/changes/<ID>/archive)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_archive)


def _engine():
    from . import api
    from .approvals import Actor

    return api.engine(actor=Actor.from_environment())


def cmd_report(args: argparse.Namespace) -> int:
    from . import api
    from .store import atomic_write

    text = api.report(args.change_id, args.format, args.lang, engine=_engine())
    if args.output:
        try:
            atomic_write(args.output, text)  # the earlier file stays intact if this fails
        except OSError as exc:
            raise naming(exc, args.output) from exc
        declare_result(args, EXIT_OK)
        print(one_line(f"{args.change_id}: report written to {args.output}"))
    else:
        sys.stdout.write(text)  # the templates neutralised the change's text; the stream does the rest
    return EXIT_OK


def cmd_archive(args: argparse.Namespace) -> int:
    from . import api

    res = api.archive(args.change_id, args.output, engine=_engine())
    declare_result(args, EXIT_OK)  # written and recorded
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
    else:
        for line in (f"{args.change_id}: archive {res['path']}",
                     f"  sha256 {res['sha256']}; {res['files']} files in the signed manifest (key {res['key_id']})",
                     f"  retention {res['retention']} (keep until {res['keep_until']})",
                     f"  verify: sopctl audit verify {res['path']} --public-key {res['public_key']}"):
            print(one_line(line))
    return EXIT_OK
