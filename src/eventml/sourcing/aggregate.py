"""Aggregates as pure definitions: a state type, ``apply(state, event)`` and command handlers.

>>> from eventml.sourcing import CommandRejected
>>> class Counter(Aggregate[int, int]):
...     def initial(self) -> int:
...         return 0
...     def apply(self, state: int, event: EventLike) -> int:
...         return state + event.data["by"]
...     def handle(self, state: int, command: int) -> list[DomainEvent]:
...         if state + command > 10:
...             raise CommandRejected(f"the counter may not pass 10 (at {state}, +{command})")
...         return [DomainEvent("Added", {"by": command})]
>>> c = Counter()
>>> replay(c, c.initial(), c.handle(0, 4) + c.handle(4, 5))
9

Nothing here does I/O: :class:`~eventml.sourcing.EventStore` stores the events and
:class:`~eventml.sourcing.Repository` runs load → handle → append.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

S = TypeVar("S")
C = TypeVar("C")


class EventLike(Protocol):
    """What ``apply`` reads of an event: its type and its (JSON) data."""

    @property
    def type(self) -> str: ...

    @property
    def data(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """An event a command handler emits: a type name and JSON-able data."""

    type: str
    data: Any


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: its aggregate, its version there (1-based), id and time (ms)."""

    aggregate_id: str
    version: int
    type: str
    data: Any
    event_id: str
    time_ms: int


class Aggregate(ABC, Generic[S, C]):
    """An aggregate type: ``initial`` state, pure ``apply``, and ``handle`` for commands.

    ``handle`` validates a command against the current state and returns the events
    it causes (possibly none), or raises :class:`CommandRejected`. ``snapshot`` and
    ``restore`` turn a state into JSON-able data and back (default: the state is
    JSON-able itself).
    """

    @abstractmethod
    def initial(self) -> S: ...

    @abstractmethod
    def apply(self, state: S, event: EventLike) -> S: ...

    @abstractmethod
    def handle(self, state: S, command: C) -> list[DomainEvent]: ...

    def snapshot(self, state: S) -> Any:
        return state

    def restore(self, data: Any) -> S:
        return data  # type: ignore[no-any-return]


def replay(aggregate: Aggregate[S, Any], state: S, events: Iterable[EventLike]) -> S:
    """``state`` after applying ``events`` in order."""
    for event in events:
        state = aggregate.apply(state, event)
    return state
