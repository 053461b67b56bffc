"""Exceptions and exit codes shared by the sopctl commands."""

from __future__ import annotations

EXIT_OK = 0
EXIT_STAGE_FAILED = 1  # a stage playbook failed
EXIT_USAGE = 2  # bad usage, invalid change request, unknown change
EXIT_REFUSED = 3  # a policy rule refused the action (message names the rule)


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
