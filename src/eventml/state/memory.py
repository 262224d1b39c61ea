"""State stores for the memory log: committed state kept beside the log, in this process.

Committed state lives on an object attached to the :class:`~eventml.log.memory.MemoryLog`
(by a weak reference: it goes away with the log), so a partition that moves to
another consumer of the same log, in this process, finds its state. Writes reach
it through a hook of the batch's transaction, applied under the log's lock in
the same step as the appends and offsets: exactly-once, as on the other logs.
Values are pickled on the way in, like the durable backends, so a value that
cannot be stored fails here too, and later changes to a put object never leak
into committed state.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from eventml.log._buffered import BufferedTransaction
from eventml.log.base import TopicPartition, TopicSpec, Transaction
from eventml.log.memory import MemoryLog
from eventml.state import _codec
from eventml.state._store import BufferedStore
from eventml.state._table import Table, Writes
from eventml.state.base import PartitionStore, StateBackend, StateError, StoreSpec

_Key = tuple[str, str, str, int]  # app, store, topic, partition
_Row = tuple[bytes, int | None]  # pickled value, time_ms


@dataclass
class _Committed:
    """One memory log's committed state: pickled rows per (app, store, topic, partition)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    partitions: dict[_Key, dict[str, _Row]] = field(default_factory=dict)


_BY_LOG: weakref.WeakKeyDictionary[MemoryLog, _Committed] = weakref.WeakKeyDictionary()
_BY_LOG_LOCK = threading.Lock()


def _committed_for(log: MemoryLog) -> _Committed:
    with _BY_LOG_LOCK:
        found = _BY_LOG.get(log)
        if found is None:
            found = _BY_LOG[log] = _Committed()
        return found


class MemoryStateBackend(StateBackend):
    """Partition stores whose committed state stays with ``log`` (tests, demos)."""

    def __init__(self, log: MemoryLog) -> None:
        if not isinstance(log, MemoryLog):
            raise StateError(f"MemoryStateBackend needs a MemoryLog, got {type(log).__name__}")
        self.log = log
        self._committed = _committed_for(log)

    def required_topics(self, spec: StoreSpec, partitions: int) -> list[TopicSpec]:
        return []

    def drop(self, spec: StoreSpec) -> None:
        committed = self._committed
        with committed.lock:
            for key, rows in committed.partitions.items():
                if key[:2] == (spec.app, spec.name):
                    rows.clear()  # stores open on it write into this dict

    def open(
        self, spec: StoreSpec, partition: TopicPartition, committed_offset: int | None
    ) -> PartitionStore:
        key: _Key = (spec.app, spec.name, partition.topic, partition.partition)
        committed = self._committed
        with committed.lock:
            rows = committed.partitions.setdefault(key, {})
            snapshot = list(rows.items())
        loads = _codec.loads_value
        values: dict[str, Any] = {k: loads(v) for k, (v, _) in snapshot}
        times = {k: t for k, (_, t) in snapshot if t is not None}
        return _MemoryStore(spec, partition, Table(values, times), committed.lock, rows)


class _MemoryStore(BufferedStore):
    def __init__(
        self,
        spec: StoreSpec,
        partition: TopicPartition,
        table: Table,
        lock: threading.Lock,
        rows: dict[str, _Row],
    ) -> None:
        super().__init__(spec, partition, table)
        self._lock = lock
        self._rows = rows

    def _write_through(self, txn: Transaction, writes: Writes, source_offset: int) -> None:
        if not isinstance(txn, BufferedTransaction):
            raise StateError(
                "the memory state backend needs a transaction of the memory log: "
                "log.transactional_producer(id).begin(consumer)"
            )
        dump = _codec.dump
        changes = [
            (k, None if e is None else (dump(e[0]), e[1])) for k, e in writes.items()
        ]  # pickled now, outside the log's lock
        lock, rows = self._lock, self._rows

        def apply(_: object) -> None:
            with lock:
                for k, row in changes:
                    if row is None:
                        rows.pop(k, None)
                    else:
                        rows[k] = row

        txn.add_hook(apply)
