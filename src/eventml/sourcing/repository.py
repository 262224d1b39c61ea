"""Run commands against aggregates: load → handle → append, retried on conflicts."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from eventml.sourcing.aggregate import Aggregate, StoredEvent, replay
from eventml.sourcing.errors import ConcurrencyConflict
from eventml.sourcing.store import EventStore, Loaded

S = TypeVar("S")
C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class Executed(Generic[S]):
    """A command's outcome: the events it appended and the state and version after them."""

    aggregate_id: str
    state: S
    version: int
    events: list[StoredEvent]
    conflicts: int


class Repository(Generic[S, C]):
    """Commands for one aggregate type over an :class:`EventStore`.

    ``execute`` loads the aggregate, runs its command handler and appends the events
    expecting the loaded version. On :class:`ConcurrencyConflict` it backs off (random,
    doubling from ``backoff_s``), reloads and runs the handler again, up to ``retries``
    times, then raises the conflict. A handler's :class:`CommandRejected` propagates
    and nothing is appended. ``conflicts`` counts the conflicts met so far.
    """

    def __init__(
        self,
        store: EventStore,
        aggregate: Aggregate[S, C],
        *,
        backoff_s: float = 0.002,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store, self.aggregate, self.backoff_s, self.sleep = store, aggregate, backoff_s, sleep
        self.conflicts = 0

    def load(self, aggregate_id: str) -> Loaded[S]:
        return self.store.load(self.aggregate, aggregate_id)

    def execute(self, aggregate_id: str, command: C, *, retries: int = 3) -> Executed[S]:
        conflicts = 0
        while True:
            loaded = self.load(aggregate_id)
            events = self.aggregate.handle(loaded.state, command)
            state = replay(self.aggregate, loaded.state, events)
            if not events:
                return Executed(aggregate_id, state, loaded.version, [], conflicts)
            try:
                stored = self.store.append(
                    aggregate_id,
                    events,
                    loaded.version,
                    snapshot=partial(self.aggregate.snapshot, state),
                )
            except ConcurrencyConflict:
                self.conflicts += 1
                conflicts += 1
                if conflicts > retries:
                    raise
                self.sleep(random.uniform(0, min(0.1, self.backoff_s * 2**conflicts)))
                continue
            return Executed(aggregate_id, state, stored[-1].version, stored, conflicts)
