"""Exceptions and exit codes shared by the sopctl commands: the one exception hierarchy.

Every command ends through the one error boundary in :func:`sopctl.cli.main`, which turns each
fault into one line on stderr and one of these codes (documented in docs/sopctl.md). Every error
the controller raises is a :class:`SopctlError` whose ``code`` is one of :data:`EXIT_CODES`::

    SopctlError              2  bad usage, invalid input, unknown change, configuration
      InvalidChangeRequest   2  (sopctl.changes)
      PolicyError            2  roster / freeze calendar (sopctl.policy)
      StoreError             2  the state store holds something it cannot use (sopctl.store)
      StageFailed            1  a stage playbook failed
      Refusal                3  a policy rule refused (names the rule)
      InstallError           5  the itsop.change collection was not found (CollectionNotFound)
      InternalError         70  a bug (IllegalTransition: a state transition the table forbids)

Besides these the boundary maps ``OSError`` and ``sqlite3.Error`` to 4, ``KeyboardInterrupt`` to
130, a closed output to 141 and anything else to 70.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_STAGE_FAILED = 1  # a stage playbook failed; 'audit verify': the verification failed
EXIT_USAGE = 2  # bad usage, invalid change request, unknown change, configuration error
EXIT_REFUSED = 3  # a policy rule refused the action (message names the rule)
EXIT_IO = 4  # a file or the state store could not be read or written (disk full, permission, read-only)
EXIT_INSTALL = 5  # sopctl's installation is incomplete (the itsop.change collection was not found)
EXIT_INTERNAL = 70  # an unexpected error (a bug); SOPCTL_DEBUG=1 prints the traceback
EXIT_INTERRUPTED = 130  # interrupted (Ctrl-C)
EXIT_OUTPUT_CLOSED = 141  # the reader of the output went away before the command had a result

#: code -> meaning, the table of docs/sopctl.md
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "done, or waiting at a people gate; 'audit verify': intact",
    EXIT_STAGE_FAILED: "a stage failed; 'audit verify': verification failed (tampered, torn, bad signature)",
    EXIT_USAGE: "bad usage, invalid change request, unknown change, configuration error; "
                "'audit verify': unreadable input",
    EXIT_REFUSED: "refused by a rule",
    EXIT_IO: "a file or the state store could not be read or written (disk full, permission denied, "
             "read-only file system)",
    EXIT_INSTALL: "installation incomplete: the itsop.change collection was not found",
    EXIT_INTERNAL: "internal error (a bug)",
    EXIT_INTERRUPTED: "interrupted",
    EXIT_OUTPUT_CLOSED: "the output was closed (broken pipe) before the command had a result",
}


class SopctlError(Exception):
    """An error reported to the user (exit code ``code``)."""

    code = EXIT_USAGE


class Refusal(SopctlError):
    """A policy rule refused an action; ``str()`` is ``refused (RULE: reason)``."""

    code = EXIT_REFUSED

    def __init__(self, rule: str, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        super().__init__(f"refused ({rule}: {reason})")


class StageFailed(SopctlError):
    code = EXIT_STAGE_FAILED


class InstallError(SopctlError):
    """A part of sopctl's installation is missing (exit 5)."""

    code = EXIT_INSTALL


class StoreError(SopctlError):
    """The state store holds something sopctl cannot use (exit 2)."""

    code = EXIT_USAGE


class InternalError(SopctlError):
    """A programming error found by a check of sopctl itself (exit 70)."""

    code = EXIT_INTERNAL


class IllegalTransition(InternalError):
    """A change state transition that :mod:`sopctl.state` does not allow."""


def declare_result(args: object, code: int) -> int:
    """Record a command's result as soon as it is known, before it prints.

    If the reader of the output goes away afterwards (broken pipe, e.g. ``| head``), the command
    still ends with this code; without a declared result it ends with :data:`EXIT_OUTPUT_CLOSED`,
    never with 0.
    """
    args.result_code = int(code)  # type: ignore[attr-defined]
    return int(code)


def naming(exc: OSError, path: object) -> OSError:
    """``exc`` with ``path`` as its file name when it has none (an ``ENOSPC`` from ``write()``
    names no file), so the one-line error says which file could not be written."""
    if exc.filename is not None:
        return exc
    named = OSError(exc.errno, exc.strerror or str(exc) or type(exc).__name__, str(path))
    named.__cause__ = exc
    return named
