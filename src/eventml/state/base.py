"""The state-store contract: keyed state per (store, input partition), committed with the batch.

A worker keeps one :class:`PartitionStore` per stateful operator and input
partition. Reads see the batch's own writes at once; the writes become durable
only through :meth:`PartitionStore.stage` inside the batch's log transaction
(:class:`eventml.log.Transaction`), then :meth:`PartitionStore.commit` folds them
into what later reads see. If the transaction fails, :meth:`PartitionStore.rollback`
drops them, so state always matches the committed input offsets.

Keys are strings; values are any picklable Python value, stored pickled: state
is trusted, app-private data (never load a store written by someone you do not
trust). Treat a value as immutable once put: change a copy and put it again.
Time-to-live is in event time: :meth:`PartitionStore.expire` drops keys whose
last write is older than ``ttl_ms`` at the given stream time.

The batch cycle::

    store.put("k", v, time_ms=event_time)     # reads see it at once
    store.stage(txn, source_offset=next_offset)
    try:
        txn.commit()                           # may raise CommitFailed / Fenced
    except CommitFailed:
        store.rollback()                       # back to the committed state
        raise
    store.commit()                             # the staged writes are now committed
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from eventml.log.base import TopicPartition, TopicSpec, Transaction


class StateError(Exception):
    """A state store failed; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """A named store of one application; ``ttl_ms`` (event time) drops idle keys."""

    app: str
    name: str
    ttl_ms: int | None = None

    def __post_init__(self) -> None:
        for what, value in (("app", self.app), ("store", self.name)):
            if not value or not all(c.isascii() and (c.isalnum() or c in "._-") for c in value):
                raise StateError(f"invalid {what} name {value!r}: use [a-zA-Z0-9._-]")
        if self.ttl_ms is not None and self.ttl_ms <= 0:
            raise StateError(f"store {self.name!r}: ttl_ms must be > 0, got {self.ttl_ms}")

    @property
    def changelog_topic(self) -> str:
        """The compacted topic that backs this store on logs without local state (Kafka)."""
        return f"{self.app}-{self.name}-changelog"


class PartitionStore(ABC):
    """One store's keys for one input partition. Used by one worker thread at a time."""

    spec: StoreSpec
    partition: TopicPartition

    @abstractmethod
    def get(self, key: str, default: Any = None) -> Any: ...

    @abstractmethod
    def put(self, key: str, value: Any, *, time_ms: int | None = None) -> None:
        """Set ``key``; ``time_ms`` (event time) starts its TTL (default: keeps no TTL time)."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def range(self, start: str | None = None, end: str | None = None) -> Iterator[tuple[str, Any]]:
        """Keys in ``[start, end)`` in ascending order, with their values (staged writes included)."""

    @abstractmethod
    def expire(self, stream_time_ms: int) -> int:
        """Delete keys whose last ``time_ms`` + ``ttl_ms`` <= ``stream_time_ms``; returns how many."""

    def __contains__(self, key: str) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    @property
    @abstractmethod
    def dirty(self) -> bool:
        """Whether there are writes since the last :meth:`commit` (staged or not)."""

    @abstractmethod
    def stage(self, txn: Transaction, source_offset: int) -> None:
        """Put every write since the last :meth:`commit` into ``txn``; ``source_offset`` is
        the next input offset the batch commits (changelog records carry it).

        Writes made after ``stage`` belong to the next batch. Staging again (e.g. into
        a new transaction after a failed one) stages everything since the last commit.
        """

    @abstractmethod
    def commit(self) -> None:
        """``txn`` committed: the writes staged into it are now the store's state.

        Raises :class:`StateError` if there are writes but nothing was staged
        (they would exist in memory only).
        """

    @abstractmethod
    def rollback(self) -> None:
        """``txn`` failed or was never committed: forget every write since the last commit."""


class StateBackend(ABC):
    """Opens partition stores for one log; chosen by the log's type."""

    @abstractmethod
    def required_topics(self, spec: StoreSpec, partitions: int) -> list[TopicSpec]:
        """Topics this backend needs for ``spec`` over an input of ``partitions`` partitions
        (e.g. a compacted changelog); create them before :meth:`open`."""

    @abstractmethod
    def open(
        self, spec: StoreSpec, partition: TopicPartition, committed_offset: int | None
    ) -> PartitionStore:
        """The store's committed state for ``partition``, restored if needed.

        ``committed_offset`` is the group's committed input offset: writes recorded
        with a later source offset were never committed and are skipped. ``None``
        (no offset known: never committed, expired, or not this consumer's) skips
        nothing: under exactly-once every readable write was committed, and under
        at-least-once a repeat is allowed, whereas dropping state never is. Backends
        whose writes commit atomically with the offsets (memory, SQLite) skip nothing.
        """

    def drop(self, spec: StoreSpec) -> None:
        """Delete every committed key of ``spec`` (all input topics and partitions): the
        store starts empty. Stores open meanwhile keep their in-memory copy; reopen them."""
        raise StateError(f"{type(self).__name__} cannot drop stores")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


_MISSING: Any = object()
