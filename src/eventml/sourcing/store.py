"""An event store on the log: one stream per aggregate id, optimistic concurrency, snapshots.

Events of one store live in ``<name>-events`` (keyed by aggregate id, so an aggregate's
stream is one partition, in order); every record carries ``ce_type``, ``ce_id``,
``ce_time`` and ``eventml.aggregate.version`` (the aggregate's version after the event,
1-based) headers, and the event's data as JSON (framed by a schema contract when its type
has one). Snapshots go to the compacted ``<name>-snapshots`` (same key and partition),
in the same transaction as the events that cross a multiple of ``snapshot_every``.

Concurrency without a server
----------------------------
Writers are serialized per partition by the log's transactional producer fencing, as
the schema registry does (:mod:`eventml.schema.store`): a store opens the producer
``eventml-es-<name>-<partition>``, which fences every older producer with that id, then
reads the partition up to its end, and checks ``expected_version`` against what it
read. It keeps the producer open for later appends and reopens it only once fenced.

Why a successful commit is never based on a stale version: a commit succeeds only if
no other producer with the id opened since this one did (otherwise it raises
:class:`~eventml.log.base.Fenced`); every write to the partition goes through that id,
so everything written since this store opened was written by this store, which folds
its own commits into its index. Right after opening, the store read the partition to
its end, and opening completes or aborts the previous holder's transaction (Kafka's
``init_transactions``; the local logs apply a transaction in one step). So at commit
the index holds every event of the partition, and the version check was made against
the true current version. A fenced store reopens (fencing the other), catches up and
checks again: a conflict then surfaces as :class:`ConcurrencyConflict`, and nothing
was appended. (Writes to the topics that bypass the store break this argument.)

Memory: per partition an index (see :mod:`eventml.sourcing._index`) of every aggregate
seen: its version, the raw latest snapshot and the raw events after it, so ``load``
never scans the topic. Without snapshots that is every event, held as bytes.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson

from eventml.clock import ClockMs, system_clock_ms
from eventml.events.ids import new_event_id
from eventml.log.base import CommitFailed, Fenced, Log, LogError, Message, TopicPartition, TopicSpec
from eventml.log.partitioner import partition_for
from eventml.schema.contract import BoundContract, contract_of
from eventml.schema.errors import SchemaError
from eventml.schema.wire import decode_frame
from eventml.sourcing._index import (
    VERSION,
    Entry,
    RawEvent,
    crosses,
    event_headers,
    header,
    raw_event,
)
from eventml.sourcing.aggregate import Aggregate, DomainEvent, StoredEvent
from eventml.sourcing.errors import ConcurrencyConflict, SourcingError
from eventml.state._tail import Row, read_rows
from eventml.state.base import StateError

S = TypeVar("S")
_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    """An aggregate rebuilt: its state at ``version``, from the snapshot at
    ``snapshot_version`` (0: none) plus ``replayed`` events."""

    aggregate_id: str
    state: S
    version: int
    snapshot_version: int
    replayed: int


@dataclass(slots=True)
class StoreStats:
    """Counters for tests and benchmarks."""

    appends: int = 0
    fenced: int = 0
    opens: int = 0
    records_read: int = 0
    snapshots_written: int = 0


@dataclass(slots=True)
class _Partition:
    index: dict[str, Entry] = field(default_factory=dict)
    events_position: int = 0
    snapshots_position: int = 0
    producer: Any = None  # the open TransactionalProducer, None until opened or after fencing


class EventStore:
    """Events of one aggregate type on ``log``: ``append``, ``read``, ``load``.

    ``partitions`` applies when the topics are created (existing topics keep theirs).
    ``snapshot_every``: write a snapshot when an append passes a multiple of it (the
    append must bring the state, as :class:`~eventml.sourcing.Repository` does).
    ``schemas`` maps event types to a schema (JSON Schema or Avro, anything
    :func:`~eventml.schema.contract_of` takes), registered under ``<name>-<type>``:
    those events are validated and framed when written, and read back upcast to the
    latest schema (JSON defaults filled in). Thread-safe; one store per process is enough.
    """

    def __init__(
        self,
        log: Log,
        name: str,
        *,
        partitions: int = 4,
        snapshot_every: int | None = None,
        schemas: Mapping[str, Any] | None = None,
        clock: ClockMs = system_clock_ms,
        timeout_s: float = 30.0,
    ) -> None:
        if snapshot_every is not None and snapshot_every < 1:
            raise ValueError(f"snapshot_every must be >= 1 or None, got {snapshot_every}")
        self.log, self.name, self.snapshot_every = log, name, snapshot_every
        self.events_topic, self.snapshots_topic = f"{name}-events", f"{name}-snapshots"
        self.clock, self.timeout_s = clock, timeout_s
        self.stats = StoreStats()
        self._lock = threading.RLock()
        self._parts: dict[int, _Partition] = {}
        self._check_versions = True  # off only in tests: shows the checkers catching lost updates
        try:
            log.create_topic(TopicSpec(self.events_topic, partitions=partitions), exist_ok=True)
            self.partitions = log.describe_topic(self.events_topic).spec.partitions
            log.create_topic(
                TopicSpec(
                    self.snapshots_topic, partitions=self.partitions, cleanup_policy="compact"
                ),
                exist_ok=True,
            )
        except LogError as e:
            raise SourcingError(f"cannot open the topics of event store {name!r}: {e}") from None
        self._contracts: dict[str, BoundContract] = {}
        if schemas:
            from eventml.schema.registry import SchemaRegistry

            registry = SchemaRegistry(log)
            for event_type, schema in schemas.items():
                contract = contract_of(schema, subject=f"{name}-{event_type}")
                try:
                    self._contracts[event_type] = contract.bind(registry, self.events_topic)
                except SchemaError as e:
                    raise SourcingError(
                        f"event store {name!r}: the schema of {event_type!r}: {e}"
                    ) from None

    # -- writing -----------------------------------------------------------------------

    def append(
        self,
        aggregate_id: str,
        events: Sequence[DomainEvent],
        expected_version: int,
        *,
        snapshot: Callable[[], Any] | None = None,
    ) -> list[StoredEvent]:
        """Append ``events`` to the aggregate's stream if it is at ``expected_version``.

        Raises :class:`ConcurrencyConflict` (appending nothing) if it is not; a schema
        violation raises :class:`~eventml.schema.ContractViolation` before any write.
        ``snapshot`` returns the aggregate's state after these events as JSON-able data;
        it is called, and written with the events, only when a snapshot is due.
        """
        if not events:
            return []
        key = aggregate_id.encode()
        p = partition_for(key, self.partitions)
        now = self.clock()
        raws = [
            RawEvent(expected_version + i, e.type, new_event_id(), now, self._encode(e))
            for i, e in enumerate(events, 1)
        ]
        last = raws[-1].version
        messages = [Message(r.value, key, tuple(event_headers(r)), now, p) for r in raws]
        with self._lock:
            part = self._part(p)
            for attempt in range(_ATTEMPTS):
                if attempt:
                    time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))
                fresh = part.producer is None
                if fresh:
                    self._open(p, part)
                self._check(p, part, aggregate_id, expected_version, fresh)
                snap = None
                if snapshot is not None and crosses(self.snapshot_every, expected_version, last):
                    snap = orjson.dumps({"version": last, "state": snapshot()})
                try:
                    txn = part.producer.begin()
                    txn.append(self.events_topic, messages)
                    if snap is not None:
                        headers = ((VERSION, str(last).encode()),)
                        txn.append(self.snapshots_topic, [Message(snap, key, headers, now, p)])
                    txn.commit()
                except (Fenced, CommitFailed):
                    self.stats.fenced += 1
                    self._drop_producer(part)
                    continue  # another store opened after us: reopen, catch up, check again
                except LogError as e:
                    self._drop_producer(part)
                    raise SourcingError(f"cannot append to {self.events_topic!r}: {e}") from None
                entry = part.index.setdefault(aggregate_id, Entry())
                for r in raws:
                    entry.add_event(r)
                if snap is not None:
                    entry.add_snapshot(last, snap)
                    self.stats.snapshots_written += 1
                self.stats.appends += 1
                return [self._stored(aggregate_id, r) for r in raws]
            raise SourcingError(
                f"gave up appending to {aggregate_id!r}: other writers fenced this one {_ATTEMPTS} times"
            )

    def _open(self, p: int, part: _Partition) -> None:
        try:
            part.producer = self.log.transactional_producer(f"eventml-es-{self.name}-{p}")
        except LogError as e:
            raise SourcingError(f"cannot write to {self.events_topic!r}: {e}") from None
        self.stats.opens += 1
        self._catch_up(p, part)

    def _check(
        self, p: int, part: _Partition, aggregate_id: str, expected: int, fresh: bool
    ) -> None:
        if not self._check_versions:
            return
        actual = self._version(part, aggregate_id)
        if actual != expected and expected > actual and not fresh:
            self._catch_up(p, part)  # expected came from a newer read than our index
            actual = self._version(part, aggregate_id)
        if actual != expected:
            raise ConcurrencyConflict(aggregate_id, expected, actual)

    @staticmethod
    def _version(part: _Partition, aggregate_id: str) -> int:
        entry = part.index.get(aggregate_id)
        return 0 if entry is None else entry.version

    @staticmethod
    def _drop_producer(part: _Partition) -> None:
        producer, part.producer = part.producer, None
        with contextlib.suppress(LogError):
            producer.close()

    # -- reading -----------------------------------------------------------------------

    def version(self, aggregate_id: str) -> int:
        """The aggregate's current version (0: no events)."""
        p = self._partition_of(aggregate_id)
        with self._lock:
            part = self._part(p)
            self._catch_up(p, part)
            return self._version(part, aggregate_id)

    def read(self, aggregate_id: str, after_version: int = 0) -> list[StoredEvent]:
        """The aggregate's events after ``after_version``, oldest first.

        Served from memory when they are after the latest snapshot; older history is
        read from the partition (a scan of it).
        """
        p = self._partition_of(aggregate_id)
        with self._lock:
            part = self._part(p)
            self._catch_up(p, part)
            entry = part.index.get(aggregate_id)
            if entry is None:
                return []
            if after_version >= entry.snapshot_version:
                raws = [r for r in entry.tail if r.version > after_version]
            else:
                raws = self._scan(p, aggregate_id, after_version, part.events_position)
        return [self._stored(aggregate_id, r) for r in raws]

    def load(self, aggregate: Aggregate[S, Any], aggregate_id: str) -> Loaded[S]:
        """The aggregate's state: its latest snapshot plus the events after it."""
        p = self._partition_of(aggregate_id)
        with self._lock:
            part = self._part(p)
            self._catch_up(p, part)
            entry = part.index.get(aggregate_id) or Entry()
            snapshot, snapshot_version, tail, version = (
                entry.snapshot,
                entry.snapshot_version,
                list(entry.tail),
                entry.version,
            )
        state = (
            aggregate.initial()
            if snapshot is None
            else aggregate.restore(orjson.loads(snapshot)["state"])
        )
        for raw in tail:
            state = aggregate.apply(state, self._stored(aggregate_id, raw))
        return Loaded(aggregate_id, state, version, snapshot_version, len(tail))

    def close(self) -> None:
        """Close the open producers (the log stays open)."""
        with self._lock:
            for part in self._parts.values():
                if part.producer is not None:
                    self._drop_producer(part)

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------

    def _partition_of(self, aggregate_id: str) -> int:
        return partition_for(aggregate_id.encode(), self.partitions)

    def _part(self, p: int) -> _Partition:
        part = self._parts.get(p)
        if part is None:
            part = self._parts[p] = _Partition()
        return part

    def _catch_up(self, p: int, part: _Partition) -> None:
        """Fold in what was appended to partition ``p`` since the last call.

        Snapshots' end is taken first: each snapshot read then has its events within
        the events' end (same transaction); on Kafka, where a transaction becomes visible
        partition by partition, an early snapshot waits in its entry until its events come.
        """
        try:
            snapshots_end = self.log.end_offsets(self.snapshots_topic)[p]
            events_end = self.log.end_offsets(self.events_topic)[p]
            rows, reached = self._rows(self.events_topic, p, part.events_position, events_end)
            for key, value, headers in rows:
                raw = raw_event(value, headers)
                if raw is not None and key is not None:
                    part.index.setdefault(key.decode(), Entry()).add_event(raw)
            part.events_position = max(part.events_position, reached)
            rows, reached = self._rows(
                self.snapshots_topic, p, part.snapshots_position, snapshots_end
            )
            for key, value, headers in rows:
                version = header(headers, VERSION)
                if version is not None and value is not None and key is not None:
                    part.index.setdefault(key.decode(), Entry()).add_snapshot(int(version), value)
            part.snapshots_position = max(part.snapshots_position, reached)
        except (LogError, StateError) as e:
            raise SourcingError(f"cannot read event store {self.name!r}: {e}") from None

    def _rows(self, topic: str, p: int, start: int, end: int) -> tuple[list[Row], int]:
        rows, reached = read_rows(self.log, TopicPartition(topic, p), self.timeout_s, start, end)
        self.stats.records_read += len(rows)
        return rows, reached

    def _scan(self, p: int, aggregate_id: str, after_version: int, end: int) -> list[RawEvent]:
        key, out, version = aggregate_id.encode(), [], after_version
        try:
            for k, value, headers in self._rows(self.events_topic, p, 0, end)[0]:
                raw = raw_event(value, headers) if k == key else None
                if raw is not None and raw.version > version:  # as the index folds them
                    out.append(raw)
                    version = raw.version
        except (LogError, StateError) as e:
            raise SourcingError(f"cannot read event store {self.name!r}: {e}") from None
        return out

    def _encode(self, event: DomainEvent) -> bytes:
        contract = self._contracts.get(event.type)
        if contract is not None:
            return contract.encode(event.data)
        try:
            return orjson.dumps(event.data)
        except TypeError as e:
            raise ValueError(f"the data of event {event.type!r} is not JSON-able: {e}") from None

    def _stored(self, aggregate_id: str, raw: RawEvent) -> StoredEvent:
        contract = self._contracts.get(raw.type)
        if contract is not None:
            data = contract.decode(raw.value)
        elif raw.value[:1] == b"\x00":  # framed by a schema this store was not given: no upcast
            data = orjson.loads(decode_frame(raw.value).payload)
        else:
            data = orjson.loads(raw.value)
        return StoredEvent(aggregate_id, raw.version, raw.type, data, raw.event_id, raw.time_ms)
