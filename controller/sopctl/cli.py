"""Command line entry point of sopctl."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sopctl",
        description="Walk a change request through the six SOP stages with gates and evidence.",
    )
    parser.add_argument("--version", action="version", version=f"sopctl {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
