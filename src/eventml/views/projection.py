"""What a read model is (pure): a name, its source topics and a handler.

A :class:`Projection` is configuration: the runner (:mod:`eventml.views.runner`)
feeds it events and keeps its table. The handler sees one event at a time,
``handle(value, meta, table)``, and changes rows through the :class:`Table`
protocol; it must be deterministic (a rebuild replays it over the same events and
must produce the same table) and must not do I/O of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

Row = dict[str, Any]
"""A row of a read model: a JSON object."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class EventMeta(NamedTuple):
    """Where an event sits and what it is: its key (UTF-8 text), place in the log,
    timestamp, and CloudEvents type (the ``ce_type`` header, ``None`` if absent)."""

    key: str | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    type: str | None


class Table(Protocol):
    """The rows a handler reads and writes: JSON objects by text key."""

    def get(self, key: str) -> Row | None:
        """The row under ``key`` as of this event (``None`` if there is none)."""
        ...

    def put(self, key: str, row: Row) -> None:
        """Replace the row under ``key``; ``row`` must be JSON-serializable."""
        ...

    def delete(self, key: str) -> None:
        """Remove the row under ``key`` (no error if there is none)."""
        ...


Handler = Callable[[Any, EventMeta, Table], None]
"""``handle(value, meta, table)``: ``value`` is the event's JSON-decoded value (``None`` for
a tombstone)."""


class InvalidProjection(ValueError):
    """A projection's name, topics or indexed fields are not usable; the message says why."""


@dataclass(frozen=True, slots=True)
class Projection:
    """A read model: ``handler`` folds the events of ``topics`` into a table named ``name``.

    ``indexed`` names top-level row fields that :meth:`ViewStore.query` filters on often;
    each gets an SQLite expression index (any top-level field can be filtered on without one).
    """

    name: str
    topics: Sequence[str]
    handler: Handler
    indexed: Sequence[str] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InvalidProjection(
                f"invalid view name {self.name!r}: use 1-100 characters of [A-Za-z0-9._-]"
            )
        if isinstance(self.topics, str) or not self.topics:
            raise InvalidProjection(f"view {self.name!r}: give a non-empty list of source topics")
        for f in self.indexed:
            check_field(f)

    @property
    def group(self) -> str:
        """The consumer group the runner reads with."""
        return f"eventml-view-{self.name}"


def check_field(name: str) -> str:
    """``name`` if it is a usable top-level field name, else :class:`InvalidProjection`."""
    if not _FIELD.match(name):
        raise InvalidProjection(
            f"invalid field name {name!r}: use a letter or '_' then letters, digits or '_'"
        )
    return name


def projection(
    name: str, topics: Sequence[str], *, indexed: Sequence[str] = (), description: str = ""
) -> Callable[[Handler], Projection]:
    """Decorator form: ``@projection("orders_by_customer", ["orders"])`` over a handler."""

    def wrap(handler: Handler) -> Projection:
        return Projection(name, tuple(topics), handler, tuple(indexed),
                          description or (handler.__doc__ or "").strip().split("\n")[0])

    return wrap
