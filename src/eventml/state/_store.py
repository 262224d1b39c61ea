"""The partition store every backend shares: committed :class:`Table` plus a write buffer.

Backends differ only in how a batch's writes reach durable storage
(:meth:`BufferedStore._write_through`, called by :meth:`BufferedStore.stage`): a
transaction hook (memory, SQLite) or changelog records (Kafka). Reads, TTL and
the commit/rollback bookkeeping live here, without I/O.
"""

from __future__ import annotations

import heapq
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any

from eventml.log.base import TopicPartition, Transaction
from eventml.state._table import Entry, Table, Writes
from eventml.state.base import PartitionStore, StateError, StoreSpec

_ABSENT: Any = object()


class BufferedStore(PartitionStore):
    """Committed keys in a :class:`Table`; writes since the last commit in ``_pending``."""

    def __init__(self, spec: StoreSpec, partition: TopicPartition, table: Table) -> None:
        self.spec = spec
        self.partition = partition
        self._table = table
        self._pending: dict[str, Entry | None] = {}  # None: deleted
        self._staged: dict[str, Entry | None] | None = None  # what the open transaction holds
        self._expiring: list[tuple[int, str]] = []  # heap entries taken by expire since commit

    @abstractmethod
    def _write_through(self, txn: Transaction, writes: Writes, source_offset: int) -> None:
        """Make ``writes`` part of ``txn`` (durable if and only if ``txn`` commits)."""

    # -- reads -------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        entry = self._pending.get(key, _ABSENT)
        if entry is _ABSENT:
            return self._table.values.get(key, default)
        return default if entry is None else entry[0]

    def range(self, start: str | None = None, end: str | None = None) -> Iterator[tuple[str, Any]]:
        committed = self._table.keys_between(start, end)
        values = self._table.values
        new = sorted(
            k
            for k in self._pending
            if k not in values and (start is None or k >= start) and (end is None or k < end)
        )
        keys = heapq.merge(committed, new) if new else committed
        for key in keys:
            value = self.get(key, _ABSENT)
            if value is not _ABSENT:
                yield key, value

    def __len__(self) -> int:
        """Keys held now (staged writes included)."""
        values = self._table.values
        n = len(values)
        for key, entry in self._pending.items():
            n += (entry is not None) - (key in values)
        return n

    # -- writes ------------------------------------------------------------
    def put(self, key: str, value: Any, *, time_ms: int | None = None) -> None:
        if type(key) is not str:
            raise TypeError(f"state keys are str, got {type(key).__name__}: encode the key first")
        self._pending[key] = (value, time_ms)

    def delete(self, key: str) -> None:
        if key in self._pending or key in self._table.values:
            self._pending[key] = None

    def expire(self, stream_time_ms: int) -> int:
        ttl = self.spec.ttl_ms
        if ttl is None:
            return 0
        cutoff = stream_time_ms - ttl
        pending = self._pending
        count = 0
        for key, entry in pending.items():  # written since the last commit
            if entry is not None and entry[1] is not None and entry[1] <= cutoff:
                pending[key] = None
                count += 1
        taken = self._table.pop_expired(cutoff)  # committed, as of their last write
        self._expiring.extend(taken)
        for _, key in taken:
            if key not in pending:
                pending[key] = None
                count += 1
        return count

    # -- the batch cycle ---------------------------------------------------
    @property
    def dirty(self) -> bool:
        return bool(self._pending)

    def stage(self, txn: Transaction, source_offset: int) -> None:
        writes = dict(self._pending)
        if writes:
            self._write_through(txn, writes, source_offset)
        self._staged = writes

    def commit(self) -> None:
        staged = self._staged
        if staged is None:
            if self._pending:
                raise StateError(
                    f"store {self.spec.name!r} on {self.partition.topic}[{self.partition.partition}]: "
                    "commit() without stage(txn): stage the writes into the transaction first"
                )
            return
        self._table.apply(staged)
        pending = self._pending
        for key, entry in staged.items():
            if pending.get(key, _ABSENT) is entry:  # not written again since stage
                del pending[key]
        self._staged = None
        self._table.push_back(self._expiring)  # those whose key is still alive
        self._expiring = []

    def rollback(self) -> None:
        self._pending.clear()
        self._staged = None
        self._table.push_back(self._expiring)
        self._expiring = []
