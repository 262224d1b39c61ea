"""Event sourcing on the log: aggregates, an event store with optimistic concurrency,
snapshots and upcasting through the schema registry.

* :class:`Aggregate`: a pure definition: ``initial()``, ``apply(state, event)``,
  ``handle(state, command) -> [DomainEvent]`` (raising :class:`CommandRejected`).
* :class:`EventStore`: one stream per aggregate id in ``<name>-events``;
  ``append(id, events, expected_version)`` raises :class:`ConcurrencyConflict` when
  another writer got there first; ``read`` and ``load`` (snapshot + later events).
* :class:`Repository`: ``execute(id, command)`` = load → handle → append, retried on
  conflicts.
"""

from eventml.sourcing.aggregate import Aggregate, DomainEvent, EventLike, StoredEvent, replay
from eventml.sourcing.errors import CommandRejected, ConcurrencyConflict, SourcingError
from eventml.sourcing.repository import Executed, Repository
from eventml.sourcing.store import EventStore, Loaded, StoreStats

__all__ = [
    "Aggregate",
    "CommandRejected",
    "ConcurrencyConflict",
    "DomainEvent",
    "EventLike",
    "EventStore",
    "Executed",
    "Loaded",
    "Repository",
    "SourcingError",
    "StoreStats",
    "StoredEvent",
    "replay",
]
