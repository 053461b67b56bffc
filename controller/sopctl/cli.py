"""Command line entry point of sopctl.

Each command lives in its own module with a ``register(subparsers)`` function that adds its
parser and sets ``func`` (a callable taking the parsed arguments and returning the exit code).
To add a command: write ``sopctl/<command>.py`` with ``register()`` and list it in
``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__

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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for bad usage
        return int(exc.code or 0)
    func = getattr(args, "func", None)
    if not getattr(args, "command", None) or func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args))
    except BrokenPipeError:  # output piped into e.g. head: not an error of sopctl
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
