"""Moving an alias from the lifecycle's jobs: announced on the log when there is one."""

from __future__ import annotations

from eventml.clock import system_clock_ms
from eventml.log.base import Log
from eventml.ml.records import AliasChange
from eventml.ml.registry import ModelRegistry


def move(
    registry: ModelRegistry, log: Log | None, name: str, alias: str, version: int, reason: str
) -> AliasChange:
    """Point ``name@alias`` at ``version``. With a ``log``, through
    :func:`eventml.ml.control.move_alias`, which also publishes the change so running
    workers switch; without one, in the registry only (workers see it when they load)."""
    if log is not None:
        from eventml.ml.control import move_alias

        return move_alias(registry, log, name, alias, version, reason=reason)
    previous = registry.set_alias(name, alias, version)
    return AliasChange(name, alias, version, previous, reason, system_clock_ms())
