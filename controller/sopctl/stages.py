"""Compatibility names for in-process callers of the engine (``from sopctl.stages import Engine``).

The engine is :mod:`sopctl.engine`, its gates :mod:`sopctl.gates`, the stage table
:mod:`sopctl.stage_table`; new code imports from there or uses the API :mod:`sopctl.api`.
"""

from __future__ import annotations

from .engine import CANCEL_ROLES, Engine
from .gates import GateState

__all__ = ["CANCEL_ROLES", "Engine", "GateState"]
