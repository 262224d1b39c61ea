"""The in-memory log: same semantics as the others, nothing on disk. For tests."""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from eventml.clock import ClockMs, system_clock_ms
from eventml.log import _retention
from eventml.log._buffered import BufferedTransaction, LocalProducer, fenced
from eventml.log._groups import assign_partitions
from eventml.log._local import LocalConsumer
from eventml.log.base import (
    CommitFailed,
    Consumer,
    ConsumerConfig,
    Log,
    Message,
    RebalanceListener,
    Record,
    RecordMetadata,
    TopicDescription,
    TopicExists,
    TopicPartition,
    TopicSpec,
    UnknownTopic,
)
from eventml.log.partitioner import partition_for
from eventml.log.registry import BrokerUrl


@dataclass
class _Partition:
    offsets: list[int] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    next_offset: int = 0
    start: int = 0  # the log start: moved by retention, never by compaction (as Kafka)


_EPOCHS = itertools.count(1)


@dataclass
class _Topic:
    spec: TopicSpec
    partitions: list[_Partition]
    epoch: int = field(default_factory=lambda: next(_EPOCHS))  # this incarnation of the name
    round_robin: itertools.count[int] = field(default_factory=itertools.count)


@dataclass
class _Member:
    topics: tuple[str, ...]
    last_poll_ms: int
    max_poll_interval_ms: int


@dataclass
class _Group:
    members: dict[str, _Member] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    owners: dict[TopicPartition, str] = field(default_factory=dict)


class MemoryLog(Log):
    """A log held in this process's memory. ``clock`` drives timestamps, retention and liveness."""

    def __init__(self, url: str = "memory://", *, clock: ClockMs = system_clock_ms) -> None:
        self.url = url
        self.clock = clock
        self._topics: dict[str, _Topic] = {}
        self._groups: dict[str, _Group] = {}
        self._lock = threading.RLock()
        self._appended = threading.Condition(self._lock)
        self._producer_epochs: dict[str, int] = {}

    # -- topics ---------------------------------------------------------
    def create_topic(self, spec: TopicSpec, *, exist_ok: bool = False) -> None:
        with self._lock:
            if spec.name in self._topics:
                if exist_ok:
                    return
                raise TopicExists(f"topic {spec.name!r} already exists")
            self._topics[spec.name] = _Topic(spec, [_Partition() for _ in range(spec.partitions)])

    def delete_topic(self, name: str) -> None:
        with self._lock:
            self._topic(name)
            del self._topics[name]
            for group in self._groups.values():
                for tp in [tp for tp in group.committed if tp.topic == name]:
                    del group.committed[tp]
                for tp in [tp for tp in group.owners if tp.topic == name]:
                    del group.owners[tp]

    def list_topics(self) -> list[str]:
        with self._lock:
            return sorted(self._topics)

    def describe_topic(self, name: str) -> TopicDescription:
        with self._lock:
            return TopicDescription(
                self._topic(name).spec, self.start_offsets(name), self.end_offsets(name)
            )

    def _topic(self, name: str) -> _Topic:
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopic(f"unknown topic {name!r}: create it first") from None

    # -- append -----------------------------------------------------------
    def append(self, topic: str, messages: Sequence[Message]) -> list[RecordMetadata]:
        with self._lock:
            t = self._topic(topic)
            n = len(t.partitions)
            now = self.clock()
            placed: list[tuple[int, Message]] = []
            for m in messages:  # validate the whole batch before changing anything
                if m.partition is not None:
                    if not 0 <= m.partition < n:
                        raise ValueError(f"partition {m.partition} out of range for {topic!r} ({n})")
                    p = m.partition
                elif m.key is not None:
                    p = partition_for(m.key, n)
                else:
                    p = next(t.round_robin) % n
                placed.append((p, m))
            out: list[RecordMetadata] = []
            for p, m in placed:
                part = t.partitions[p]
                offset = part.next_offset
                part.next_offset += 1
                ts = now if m.timestamp_ms is None else m.timestamp_ms
                part.offsets.append(offset)
                part.records.append(Record(topic, p, offset, ts, m.key, m.value, m.headers))
                out.append(RecordMetadata(topic, p, offset))
            self._appended.notify_all()
            return out

    # -- transactions ---------------------------------------------------------
    def transactional_producer(self, transactional_id: str) -> LocalProducer:
        with self._lock:
            epoch = self._producer_epochs.get(transactional_id, 0) + 1
            self._producer_epochs[transactional_id] = epoch
        return LocalProducer(transactional_id, epoch, self._apply_transaction)

    def _apply_transaction(self, txn: BufferedTransaction) -> None:
        with self._lock:
            if self._producer_epochs.get(txn.transactional_id) != txn.epoch:
                raise fenced(txn.transactional_id)
            for topic, messages in txn.appends:  # check everything before changing anything
                n = len(self._topic(topic).partitions)
                for m in messages:
                    if m.partition is not None and not 0 <= m.partition < n:
                        raise ValueError(f"partition {m.partition} out of range for {topic!r} ({n})")
            member = txn.member
            if txn.offsets and member is not None:
                self.commit_offsets(member[0], member[1], txn.offsets)
            for topic, messages in txn.appends:
                self.append(topic, messages)
            for hook in txn.hooks:
                hook(None)

    # -- offsets ------------------------------------------------------------
    def start_offsets(self, topic: str) -> dict[int, int]:
        with self._lock:
            return {i: p.start for i, p in enumerate(self._topic(topic).partitions)}

    def end_offsets(self, topic: str) -> dict[int, int]:
        with self._lock:
            return {i: p.next_offset for i, p in enumerate(self._topic(topic).partitions)}

    def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        with self._lock:
            result = {}
            for i, p in enumerate(self._topic(topic).partitions):
                result[i] = next(
                    (r.offset for r in p.records if r.timestamp_ms >= timestamp_ms), p.next_offset
                )
            return result

    def topic_epoch(self, topic: str) -> int | None:
        with self._lock:
            t = self._topics.get(topic)
            return None if t is None else t.epoch

    def read(self, tp: TopicPartition, offset: int, max_records: int) -> list[Record]:
        with self._lock:
            topic = self._topics.get(tp.topic)
            if topic is None or tp.partition >= len(topic.partitions):
                return []
            part = topic.partitions[tp.partition]
            i = bisect.bisect_left(part.offsets, offset)
            return part.records[i : i + max_records]

    def wait_for_append(self, timeout_s: float, topics: Collection[str] | None = None) -> None:
        with self._appended:
            self._appended.wait(timeout_s)

    # -- groups -------------------------------------------------------------
    def consumer(
        self,
        group: str,
        topics: Sequence[str],
        *,
        config: ConsumerConfig | None = None,
        listener: RebalanceListener | None = None,
    ) -> Consumer:
        return LocalConsumer(self, group, topics, config or ConsumerConfig(), listener)

    def group_sync(
        self, group: str, member: str, topics: Sequence[str], config: ConsumerConfig
    ) -> tuple[frozenset[TopicPartition], bool]:
        with self._lock:
            now = self.clock()
            g = self._groups.setdefault(group, _Group())
            joined = member not in g.members
            g.members[member] = _Member(tuple(topics), now, config.max_poll_interval_ms)
            self._expire(g, now)
            target = self._assignments(g)[member]
            # hand-over: release what moved away; take a partition only once it is free
            for tp, owner in list(g.owners.items()):
                if owner == member and tp not in target:
                    del g.owners[tp]
            owned = []
            for tp in target:
                if g.owners.setdefault(tp, member) == member:
                    owned.append(tp)
            return frozenset(owned), joined

    def _expire(self, g: _Group, now: int) -> None:
        for mid, m in list(g.members.items()):
            if now - m.last_poll_ms > m.max_poll_interval_ms:
                self._remove_member(g, mid)

    def _remove_member(self, g: _Group, member: str) -> None:
        g.members.pop(member, None)
        for tp in [tp for tp, owner in g.owners.items() if owner == member]:
            del g.owners[tp]

    def _assignments(self, g: _Group) -> dict[str, frozenset[TopicPartition]]:
        sizes = {name: len(t.partitions) for name, t in self._topics.items()}
        return assign_partitions({mid: m.topics for mid, m in g.members.items()}, sizes)

    def group_leave(self, group: str, member: str) -> None:
        with self._lock:
            g = self._groups.get(group)
            if g is not None:
                self._remove_member(g, member)

    def commit_offsets(self, group: str, member: str, offsets: Mapping[TopicPartition, int]) -> None:
        with self._lock:
            g = self._groups.setdefault(group, _Group())
            self._expire(g, self.clock())
            target = self._assignments(g).get(member, frozenset())
            stray = [tp for tp in offsets if tp not in target or g.owners.get(tp) != member]
            if stray:
                raise CommitFailed(
                    f"commit refused for {group!r}: {len(stray)} partition(s) such as "
                    f"{stray[0].topic}[{stray[0].partition}] moved to another member; "
                    "poll again and reprocess from the committed offsets"
                )
            g.committed.update(offsets)

    def committed_offsets(
        self, group: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int | None]:
        with self._lock:
            g = self._groups.get(group)
            return {tp: (g.committed.get(tp) if g else None) for tp in partitions}

    # -- retention ------------------------------------------------------------
    def enforce_retention(self, now_ms: int | None = None) -> int:
        with self._lock:
            now = self.clock() if now_ms is None else now_ms
            deleted = 0
            for t in self._topics.values():
                for part in t.partitions:
                    keep = _retention.records_to_keep(t.spec, part.records, now)
                    deleted += len(part.records) - len(keep)
                    part.records = keep
                    part.offsets = [r.offset for r in keep]
                    if t.spec.cleanup_policy == "delete":
                        part.start = keep[0].offset if keep else part.next_offset
            return deleted


_NAMED: dict[str, MemoryLog] = {}


def open_memory_log(url: BrokerUrl) -> MemoryLog:
    """``memory://`` is a fresh log; ``memory://NAME`` is shared by everyone in this process."""
    if not url.location:
        return MemoryLog(url.raw)
    return _NAMED.setdefault(url.location, MemoryLog(url.raw))
