"""Choose the state backend for a log by the log's class: :func:`backend_for`.

embedded (:class:`~eventml.log.embedded.EmbeddedLog`) -> SQLite in the log's file;
memory (:class:`~eventml.log.memory.MemoryLog`) -> beside the log in this process;
Kafka, and any log not registered -> a compacted changelog topic.
Backends are imported on first use, so Kafka's client loads only for Kafka.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventml.log.base import Log
from eventml.state._resolve import lookup
from eventml.state.base import StateBackend

Factory = Callable[[Log], StateBackend]

_BACKENDS: dict[str, Any] = {
    "MemoryLog": "eventml.state.memory:MemoryStateBackend",
    "EmbeddedLog": "eventml.state.sqlite:SqliteStateBackend",
    "KafkaLog": "eventml.state.changelog:ChangelogStateBackend",
    "Log": "eventml.state.changelog:ChangelogStateBackend",  # any other log
}


def register_state_backend(log_class: str, factory: Factory | str) -> None:
    """Use ``factory(log)`` (or ``"module:callable"``) for logs whose class is named ``log_class``
    (subclasses included)."""
    _BACKENDS[log_class] = factory


def backend_for(log: Log) -> StateBackend:
    """The state backend that suits ``log`` (a changelog backend for unregistered logs)."""
    factory: Factory | None = lookup(_BACKENDS, log)
    if factory is None:
        raise TypeError(f"backend_for needs an eventml.log.Log, got {type(log).__name__}")
    return factory(log)
