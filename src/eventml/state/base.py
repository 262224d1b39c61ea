"""The state-store contract: keyed state per (store, input partition), committed with the batch.

A worker keeps one :class:`PartitionStore` per stateful operator and input
partition. Reads see the batch's own writes at once; the writes become durable
only through :meth:`PartitionStore.stage` inside the batch's log transaction
(:class:`eventml.log.Transaction`), then :meth:`PartitionStore.commit` folds them
into what later reads see. If the transaction fails, :meth:`PartitionStore.rollback`
drops them, so state always matches the committed input offsets.

Keys are strings; values are any picklable Python value. Time-to-live is in
event time: :meth:`PartitionStore.expire` drops keys whose last write is older
than ``ttl_ms`` at the given stream time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from eventml.log.base import TopicPartition, Transaction


class StateError(Exception):
    """A state store failed; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """A named store of one application; ``ttl_ms`` (event time) drops idle keys."""

    app: str
    name: str
    ttl_ms: int | None = None

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "._-" for c in self.name):
            raise StateError(f"invalid store name {self.name!r}: use [a-zA-Z0-9._-]")
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
        """Whether there are staged-but-uncommitted writes."""

    @abstractmethod
    def stage(self, txn: Transaction, source_offset: int) -> None:
        """Put this batch's writes into ``txn``; ``source_offset`` is the next input offset
        the batch commits (changelog records carry it)."""

    @abstractmethod
    def commit(self) -> None:
        """``txn`` committed: the staged writes are now the store's state."""

    @abstractmethod
    def rollback(self) -> None:
        """``txn`` failed or was never committed: forget the writes since the last commit."""


class StateBackend(ABC):
    """Opens partition stores for one log; chosen by the log's type."""

    @abstractmethod
    def required_topics(self, spec: StoreSpec, partitions: int) -> list[Any]:
        """Topics (``eventml.log.TopicSpec``) this backend needs for ``spec`` (e.g. a changelog)."""

    @abstractmethod
    def open(
        self, spec: StoreSpec, partition: TopicPartition, committed_offset: int | None
    ) -> PartitionStore:
        """The store's committed state for ``partition``, restored if needed.

        ``committed_offset`` is the group's committed input offset: writes recorded
        with a later source offset were never committed and are skipped.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


_MISSING: Any = object()
