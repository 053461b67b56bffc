"""Command line entry point of sopctl.

Each command lives in its own module with a ``register(subparsers)`` function that adds its
parser and sets ``func`` (a callable taking the parsed arguments and returning the exit code).
To add a command: write ``sopctl/<command>.py`` with ``register()`` and list it in
``COMMAND_MODULES``.

:func:`main` is the one error boundary of every command: whatever goes wrong ends in one line on
stderr (``sopctl COMMAND: ...``) and a documented exit code (:mod:`sopctl.errors`, table in
docs/sopctl.md), never a traceback (``SOPCTL_DEBUG=1`` adds it). Everything printed goes through
:class:`sopctl.textsafe.SafeStream`: text from a change cannot reach the terminal raw.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import sqlite3
import sys
import traceback

from . import __version__
from .errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_IO,
    EXIT_OK,
    EXIT_OUTPUT_CLOSED,
    EXIT_USAGE,
    SopctlError,
)
from .textsafe import one_line, safe_streams

#: command modules (relative to this package), each with ``register(subparsers)``
COMMAND_MODULES: list[str] = [
    "audit",
    "commands",
    "report_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sopctl",
        description="Walk a change request through the six SOP stages with gates and evidence.",
    )
    parser.add_argument("--version", action="version", version=f"sopctl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f".{name}", __package__).register(subparsers)
    return parser


def describe_os_error(exc: OSError) -> str:
    """``PATH: strerror (ENAME)``; without a path, where sopctl keeps its state."""
    what = exc.strerror or str(exc) or type(exc).__name__
    name = errno.errorcode.get(exc.errno or 0)
    what += f" ({name})" if name else ""
    if exc.filename is not None:
        path = os.fsdecode(exc.filename)
        if exc.filename2 is not None:
            path += f" -> {os.fsdecode(exc.filename2)}"
        return f"{path}: {what}"
    from .store import sopctl_home

    return f"{what} (writing or reading under SOPCTL_HOME {sopctl_home()})"


def _command_name(args: argparse.Namespace | None) -> str:
    if args is None or not getattr(args, "command", None):
        return "sopctl"
    sub = next((getattr(args, a) for a in ("audit_command", "roster_command", "identity_command")
                if getattr(args, a, None)), None)
    return f"sopctl {args.command}" + (f" {sub}" if sub else "")


def _error_lines(exc: SopctlError) -> list[str]:
    """The error as lines: one line, or for an error listing items (``errors``: every bad field of a
    change request) its first line and one line per item. No item can add a line of its own."""
    text = str(exc)
    items = getattr(exc, "errors", None)
    if isinstance(items, list) and items and all(isinstance(i, str) for i in items):
        tail = "\n" + "\n".join(f"  - {i}" for i in items)
        if text.endswith(tail):
            return [one_line(text[: -len(tail)]), *(one_line(f"  - {i}") for i in items)]
    return [one_line(text)]


def _report(args: argparse.Namespace, message: str | list[str], code: int, rule: str | None = None) -> int:
    """One line on stderr (and the JSON error object with --json); never raises."""
    line = "\n".join(message) if isinstance(message, list) else one_line(message)
    if getattr(args, "json", False):
        try:
            print(json.dumps({"ok": False, "error": line, "exit_code": code, "rule": rule}))
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
    try:
        print(f"{_command_name(args)}: {line}", file=sys.stderr)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return code


def _discard_stdout() -> None:
    """After a broken pipe: point stdout's descriptor at /dev/null so the flush at exit cannot fail
    again (only when stdout is a real descriptor, not an in-memory stream)."""
    try:
        fd = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _run(args: argparse.Namespace) -> int:
    from .store import sopctl_home

    func = args.func
    try:
        code = int(func(args))
        args.result_code = code  # the command's result is known now
        sys.stdout.flush()  # a broken pipe shows here for short, buffered output
        return code
    except BrokenPipeError:
        _discard_stdout()
        result = getattr(args, "result_code", None)
        if result is None:
            return _report(args, "output closed before the command finished (broken pipe)", EXIT_OUTPUT_CLOSED)
        return result  # the command's own result (e.g. the verification's), never 0 unless it succeeded
    except SopctlError as exc:
        return _report(args, _error_lines(exc), exc.code, getattr(exc, "rule", None))
    except OSError as exc:
        return _report(args, describe_os_error(exc), EXIT_IO)
    except sqlite3.Error as exc:
        return _report(args, f"state store {sopctl_home() / 'sopctl.db'}: {exc}", EXIT_IO)
    except KeyboardInterrupt:
        return _report(args, "interrupted", EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the one boundary: a bug is one line too
        if os.environ.get("SOPCTL_DEBUG") == "1":
            traceback.print_exc(file=sys.stderr)
        return _report(args, f"internal error: {type(exc).__name__}: {exc} "
                             "(set SOPCTL_DEBUG=1 for the traceback)", EXIT_INTERNAL)


def main(argv: list[str] | None = None) -> int:
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = safe_streams(*saved)
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for bad usage
            return _flushed(int(exc.code or 0))
        if not getattr(args, "command", None) or getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return _run(args)
    except BrokenPipeError:  # --help | head: the help was the whole result
        _discard_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        return _report(argparse.Namespace(), "interrupted", EXIT_INTERRUPTED)
    finally:
        sys.stdout, sys.stderr = saved


def _flushed(code: int) -> int:
    """Flush stdout now (inside the boundary), so a closed pipe cannot fail the exit later."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
    return code


if __name__ == "__main__":
    sys.exit(main())
