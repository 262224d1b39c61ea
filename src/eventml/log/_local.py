"""A consumer shared by the in-process backends (memory, embedded).

Backends provide storage and group bookkeeping through :class:`LocalBackend`;
this class keeps positions, applies rebalances, and fetches batches fairly
across the assigned partitions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

from eventml.clock import ClockMs
from eventml.log.base import (
    Consumer,
    ConsumerConfig,
    LogError,
    RebalanceListener,
    Record,
    TopicPartition,
)


class LocalBackend(Protocol):
    """What a local log offers its consumers."""

    clock: ClockMs

    def group_sync(
        self, group: str, member: str, topics: Sequence[str], config: ConsumerConfig
    ) -> tuple[frozenset[TopicPartition], bool]:
        """Heartbeat ``member``; return the partitions it owns now, and whether it (re)joined:
        true when it was not a member (new, or expired and back), so whatever it held
        before may have been processed and committed by others meanwhile."""
        ...

    def group_leave(self, group: str, member: str) -> None: ...

    def commit_offsets(self, group: str, member: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Store offsets; raise :class:`CommitFailed` if ``member`` no longer owns a partition."""
        ...

    def committed_offsets(
        self, group: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int | None]: ...

    def read(self, tp: TopicPartition, offset: int, max_records: int) -> list[Record]: ...

    def topic_epoch(self, topic: str) -> int | None:
        """Changes when ``topic`` is deleted and created again (``None`` while it is absent)."""
        ...

    def start_offsets(self, topic: str) -> dict[int, int]: ...

    def end_offsets(self, topic: str) -> dict[int, int]: ...

    def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[int, int]: ...

    def wait_for_append(self, timeout_s: float, topics: Collection[str] | None = None) -> None:
        """Block until something may have been appended (to one of ``topics``; None: to
        any), or ``timeout_s`` passes."""
        ...


class LocalConsumer(Consumer):
    def __init__(
        self,
        backend: LocalBackend,
        group: str,
        topics: Sequence[str],
        config: ConsumerConfig,
        listener: RebalanceListener | None,
    ) -> None:
        if not topics:
            raise ValueError("subscribe to at least one topic")
        self.group = group
        self.member_id = f"{group}-{uuid.uuid4().hex[:12]}"
        self._backend = backend
        self._topics = tuple(topics)
        self._wait_topics = frozenset(self._topics)  # sleep through appends to other topics
        self._config = config
        self._listener = listener or RebalanceListener()
        self._assignment: frozenset[TopicPartition] = frozenset()
        self._positions: dict[TopicPartition, int] = {}
        self._next_start = 0  # round-robin start among partitions, for fairness
        self._epochs: dict[str, int] = {}  # topic -> incarnation seen (see topic_epoch)
        self._closed = False

    # -- group membership -------------------------------------------------
    def _sync(self) -> None:
        owned, joined = self._backend.group_sync(
            self.group, self.member_id, self._topics, self._config
        )
        recreated = self._recreated_topics(owned)
        if owned == self._assignment and not joined and not recreated:
            return
        # a member that rejoins after expiring lost everything it held, even if it gets the
        # same partitions back: others may have processed and committed them meanwhile;
        # a topic deleted and created again is a new log whose old positions mean nothing
        stale = self._assignment if joined else {
            tp for tp in self._assignment if tp.topic in recreated}
        lost = stale | (self._assignment - owned)
        gained = (owned - self._assignment) | (stale & owned)
        if lost:
            if self._listener.on_revoke:
                self._listener.on_revoke(frozenset(lost))
            for tp in lost:
                self._positions.pop(tp, None)
        self._assignment = owned
        if gained:
            self._init_positions(gained)
            if self._listener.on_assign:
                self._listener.on_assign(frozenset(gained))

    def _recreated_topics(self, owned: frozenset[TopicPartition]) -> set[str]:
        """Topics of ``owned`` whose incarnation changed since this member last looked."""
        recreated = set()
        for topic in {tp.topic for tp in owned}:
            epoch = self._backend.topic_epoch(topic)
            seen = self._epochs.get(topic)
            if seen is not None and epoch != seen:
                recreated.add(topic)
            if epoch is not None:
                self._epochs[topic] = epoch
        return recreated

    def _init_positions(self, tps: Iterable[TopicPartition]) -> None:
        tps = list(tps)
        committed = self._backend.committed_offsets(self.group, tps)
        for tp in tps:
            start = self._backend.start_offsets(tp.topic).get(tp.partition, 0)
            end = self._backend.end_offsets(tp.topic).get(tp.partition, 0)
            offset = committed.get(tp)
            if offset is None or offset < start or offset > end:
                offset = start if self._config.auto_offset_reset == "earliest" else end
            self._positions[tp] = offset

    # -- reading --------------------------------------------------------------
    def poll(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        self._check_open()
        deadline = time.monotonic() + timeout_s
        while True:
            self._sync()
            batch = self._fetch(max_records)
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0:
                return batch
            self._backend.wait_for_append(min(remaining, 0.05), self._wait_topics)

    def _fetch(self, max_records: int) -> list[Record]:
        tps = sorted(self._assignment)
        if not tps:
            return []
        out: list[Record] = []
        n = len(tps)
        first = self._next_start % n
        self._next_start += 1
        for i in range(n):
            if len(out) >= max_records:
                break
            tp = tps[(first + i) % n]
            records = self._backend.read(tp, self._positions[tp], max_records - len(out))
            if records:
                out.extend(records)
                self._positions[tp] = records[-1].offset + 1
        return out

    def assignment(self) -> frozenset[TopicPartition]:
        return self._assignment

    def position(self, tp: TopicPartition) -> int:
        try:
            return self._positions[tp]
        except KeyError:
            raise ValueError(f"{tp.topic}[{tp.partition}] is not assigned to this consumer") from None

    # -- offsets ----------------------------------------------------------
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._check_open()
        to_commit = dict(self._positions if offsets is None else offsets)
        if not to_commit:
            return
        self._backend.commit_offsets(self.group, self.member_id, to_commit)

    def committed(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int | None]:
        tps = list(self._assignment if partitions is None else partitions)
        return self._backend.committed_offsets(self.group, tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position(tp)  # raises when not assigned
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        self._positions[tp] = offset

    def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        for tp in self._targets(partitions):
            self.seek(tp, self._backend.start_offsets(tp.topic).get(tp.partition, 0))

    def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        for tp in self._targets(partitions):
            self.seek(tp, self._backend.end_offsets(tp.topic).get(tp.partition, 0))

    def seek_to_time(
        self, timestamp_ms: int, partitions: Iterable[TopicPartition] | None = None
    ) -> None:
        for tp in self._targets(partitions):
            self.seek(tp, self._backend.offsets_for_time(tp.topic, timestamp_ms)[tp.partition])

    def lag(self) -> dict[TopicPartition, int]:
        committed = self._backend.committed_offsets(self.group, list(self._assignment))
        result: dict[TopicPartition, int] = {}
        for tp in self._assignment:
            end = self._backend.end_offsets(tp.topic).get(tp.partition, 0)
            base = committed.get(tp)
            result[tp] = max(0, end - (self._positions[tp] if base is None else base))
        return result

    def close(self) -> None:
        if self._closed:
            return
        try:  # the listener may still commit what it processed
            if self._assignment and self._listener.on_revoke:
                self._listener.on_revoke(self._assignment)
        finally:
            self._closed = True
        self._backend.group_leave(self.group, self.member_id)
        self._assignment = frozenset()
        self._positions.clear()

    def _targets(self, partitions: Iterable[TopicPartition] | None) -> list[TopicPartition]:
        return list(self._assignment if partitions is None else partitions)

    def _check_open(self) -> None:
        if self._closed:
            raise LogError("consumer is closed: create a new one with log.consumer(...)")
