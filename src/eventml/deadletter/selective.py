"""Replaying dead letters by id or all, exactly once (``POST /v1/topics/{topic}/dlq/replay``).

``eventml dlq replay`` (:func:`eventml.deadletter.replay`) marks what it replayed with the
committed offsets of the consumer group ``eventml-dlq-replay`` on the dead-letter topic,
in the same transaction as the appends: everything below them was replayed. A selection
cannot be marked that way (it leaves holes), so the dead letters replayed by id are also
recorded in a compacted topic ``TOPIC.dlq.replayed`` (key ``PARTITION:OFFSET``, value
``{"to", "at_ms"}``), in the same transaction as their appends. A dead letter below the
group's offsets or recorded there is never appended again. Replaying all starts at the
group's offsets, skips the recorded ones and removes their records (tombstones: the
group's offsets now cover them), and commits the offsets with each batch.

Each replay holds every partition of the dead-letter topic as a member of the group and
writes under the transactional id ``eventml dlq replay`` uses, so of two replays of one
topic the later fences the earlier (:class:`ReplayBusy`, nothing of its batch appended).

:func:`eventml.deadletter.replay` (``eventml dlq replay``) reads the same ledger
(:mod:`eventml.deadletter.ledger`): it skips what was replayed by id and tombstones it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from eventml.clock import ClockMs, system_clock_ms
from eventml.deadletter.ledger import ID_PATTERN, Id, format_id, ledger_topic, read_ledger
from eventml.deadletter.parse import DeadLetter, InvalidDeadLetter, parse_dead_letter
from eventml.deadletter.record import dead_letter_topic
from eventml.deadletter.replay import REPLAY_GROUP, replay_message
from eventml.log import (
    CommitFailed,
    Consumer,
    ConsumerConfig,
    Log,
    LogError,
    Message,
    Record,
    TopicPartition,
    TopicSpec,
    TransactionalProducer,
    UnknownTopic,
)

MAX_REPLAY_ALL = 10_000

__all__ = ["ID_PATTERN", "MAX_REPLAY_ALL", "Id", "NotDeadLetters", "NotFound", "ReplayBusy",
           "ReplayOutcome", "format_id", "ledger_topic", "read_ledger", "replay_dead_letters"]


def _exists(log: Log, topic: str) -> bool:
    try:
        log.describe_topic(topic)
    except UnknownTopic:
        return False
    return True


class ReplayBusy(LogError):
    """Another replay of the dead-letter topic holds it or took over."""


class NotFound(LogError):
    """No dead letter at an id, or (``topic_missing``) the topic a dead letter came from
    does not exist."""

    def __init__(self, message: str, *, topic_missing: bool = False) -> None:
        super().__init__(message)
        self.topic_missing = topic_missing


class NotDeadLetters(LogError):
    pass


@dataclass
class ReplayOutcome:
    """What a replay did (the answer's body, see :meth:`to_dict`)."""

    replayed: dict[str, int] = field(default_factory=dict)
    ids: list[str] | None = None
    already_replayed: list[str] = field(default_factory=list)
    skipped: int = 0
    remaining: int = 0

    def to_dict(self, topic: str, dlq: str) -> dict[str, Any]:
        return {"topic": topic, "dead_letter_topic": dlq, "replayed": self.replayed,
                "total": sum(self.replayed.values()), "ids": self.ids,
                "already_replayed": self.already_replayed, "skipped": self.skipped,
                "remaining": self.remaining}


class _Replay:
    """One replay of ``dlq``: as group :data:`REPLAY_GROUP` holding every partition, under
    the transactional id ``eventml dlq replay`` uses (see the module docstring)."""

    def __init__(self, log: Log, dlq: str, source: str, *, timeout_s: float, clock_ms: ClockMs,
                 batch_size: int = 500) -> None:
        self.log, self.dlq, self.source = log, dlq, source
        self.timeout_s, self.clock_ms, self.batch_size = timeout_s, clock_ms, batch_size
        self.ledger_name = ledger_topic(dlq)
        self.known_targets: set[str] = set()

    def __enter__(self) -> _Replay:
        self.producer: TransactionalProducer = self.log.transactional_producer(
            f"{REPLAY_GROUP}.{self.dlq}")
        try:
            self.consumer: Consumer = self.log.consumer(
                REPLAY_GROUP, [self.dlq], config=ConsumerConfig(auto_offset_reset="earliest"))
        except BaseException:
            self.producer.close()
            raise
        try:
            self._hold_every_partition()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.consumer.close()
        finally:
            self.producer.close()

    def _hold_every_partition(self) -> None:
        self.ends = self.log.end_offsets(self.dlq)
        self.starts = self.log.start_offsets(self.dlq)
        self.tps = [TopicPartition(self.dlq, p) for p in sorted(self.ends)]
        deadline = time.monotonic() + self.timeout_s
        while not set(self.tps) <= self.consumer.assignment():
            if time.monotonic() > deadline:
                raise ReplayBusy(f"another replay of {self.dlq} holds it (consumer group "
                                 f"{REPLAY_GROUP}): retry when it is done")
            self.consumer.poll(max_records=1, timeout_s=0.1)
        committed = self.consumer.committed(self.tps)
        self.marks = {tp.partition: max(self.starts[tp.partition], committed.get(tp) or 0)
                      for tp in self.tps}
        self.committed = {tp: o for tp, o in committed.items() if o is not None}
        self.ledger = read_ledger(self.log, self.dlq)

    def _replayed(self, key: Id) -> bool:
        return key[1] < self.marks.get(key[0], 0) or key in self.ledger

    def _target(self, dead: DeadLetter) -> str:
        target = dead.source_topic or self.source
        if target not in self.known_targets:
            try:
                self.log.describe_topic(target)
            except UnknownTopic:
                raise NotFound(f"dead letter {format_id(dead.partition, dead.offset)} came from "
                               f"topic {target!r}, which does not exist: neither it nor the dead "
                               "letters after it were replayed (create the topic first)",
                               topic_missing=True) from None
            self.known_targets.add(target)
        return target

    def _commit(self, appends: Mapping[str, Sequence[Message]], ledger: Sequence[Message],
                offsets: Mapping[TopicPartition, int]) -> None:
        if ledger:
            self.log.create_topic(TopicSpec(self.ledger_name, 1, cleanup_policy="compact"),
                                  exist_ok=True)
        try:
            with self.producer.begin(self.consumer) as txn:
                for target, messages in appends.items():
                    txn.append(target, messages)
                if ledger:
                    txn.append(self.ledger_name, ledger)
                if offsets:
                    txn.commit_offsets(offsets)
        except CommitFailed:  # Fenced too: a newer replay of the topic took over
            raise ReplayBusy(f"another replay of {self.dlq} took over: nothing of this batch "
                             "was replayed; retry") from None

    def selected(self, ids: Sequence[Id]) -> ReplayOutcome:
        """Replay the dead letters ``ids`` that were not replayed before (all or nothing)."""
        missing = [i for i in ids if i[0] not in self.ends
                   or not self.starts[i[0]] <= i[1] < self.ends[i[0]]]
        if missing:
            raise NotFound(_listed(f"no dead letter in {self.dlq} at", missing)
                           + ": nothing was replayed (GET .../dlq lists them)")
        outcome = ReplayOutcome(ids=[])
        wanted = [i for i in ids if not self._replayed(i)]
        outcome.already_replayed = [format_id(*i) for i in ids if self._replayed(i)]
        found = self._read(wanted)
        gone = [i for i in wanted if i not in found]
        if gone:
            raise NotFound(_listed(f"no dead letter in {self.dlq} at", gone)
                           + ": nothing was replayed")
        dead: list[DeadLetter] = []
        invalid = []
        for i in wanted:
            try:
                dead.append(parse_dead_letter(found[i]))
            except InvalidDeadLetter:
                invalid.append(i)
        if invalid:
            raise NotDeadLetters(_listed(f"not dead letters (no provenance headers) in {self.dlq}:",
                                         invalid) + ": nothing was replayed")
        appends: dict[str, list[Message]] = {}
        ledger = []
        now = self.clock_ms()
        for d in dead:
            target = self._target(d)
            appends.setdefault(target, []).append(replay_message(d))
            ledger.append(Message(orjson.dumps({"to": target, "at_ms": now}),
                                  format_id(d.partition, d.offset).encode(), partition=0))
        if dead:  # the offsets unchanged: the commit checks that the group still holds them
            self._commit(appends, ledger, self.committed)
        outcome.replayed = {t: len(m) for t, m in appends.items()}
        outcome.ids = [format_id(d.partition, d.offset) for d in dead]
        outcome.remaining = self._remaining(extra=len(dead))
        return outcome

    def everything(self, max_records: int) -> ReplayOutcome:
        """Replay from the group's offsets to the ends seen at the start, skipping what was
        replayed by id; at most about ``max_records``."""
        outcome = ReplayOutcome()
        for tp in self.tps:
            self.consumer.seek(tp, self.marks[tp.partition])
        deadline = time.monotonic() + self.timeout_s
        total = 0
        while not self._reached() and total < max_records:
            records = self.consumer.poll(max_records=min(self.batch_size, max_records - total),
                                         timeout_s=0.1)
            if not records:
                if time.monotonic() > deadline:
                    raise ReplayBusy(f"could not read {self.dlq} within {self.timeout_s:g}s: is "
                                     "another replay of it running?")
                continue
            deadline = time.monotonic() + self.timeout_s
            appends: dict[str, list[Message]] = {}
            tombstones: list[Id] = []
            offsets: dict[TopicPartition, int] = {}
            for r in records:
                offsets[TopicPartition(r.topic, r.partition)] = r.offset + 1
                if (r.partition, r.offset) in self.ledger:
                    tombstones.append((r.partition, r.offset))
                    continue
                try:
                    d = parse_dead_letter(r)
                except InvalidDeadLetter:
                    outcome.skipped += 1
                    continue
                appends.setdefault(self._target(d), []).append(replay_message(d))
            self._commit(appends, [Message(None, format_id(*i).encode(), partition=0)
                                   for i in tombstones], offsets)
            for tp, o in offsets.items():
                self.marks[tp.partition] = o
            for i in tombstones:
                self.ledger.pop(i, None)
            for target, messages in appends.items():
                outcome.replayed[target] = outcome.replayed.get(target, 0) + len(messages)
                total += len(messages)
        outcome.remaining = self._remaining()
        return outcome

    def _reached(self) -> bool:
        return all(self.consumer.position(tp) >= self.ends[tp.partition] for tp in self.tps)

    def _remaining(self, extra: int = 0) -> int:
        """Records of the topic not replayed yet (as of the ends seen at the start)."""
        ends = self.ends
        behind = sum(max(0, ends[p] - mark) for p, mark in self.marks.items())
        recorded = sum(1 for p, o in self.ledger if o >= self.marks.get(p, 0) and o < ends.get(p, 0))
        return max(0, behind - recorded - extra)

    def _read(self, ids: Sequence[Id]) -> dict[Id, Record]:
        """The records at ``ids`` (absent: none there, e.g. a transaction marker on Kafka)."""
        found: dict[Id, Record] = {}
        by_partition: dict[int, list[int]] = {}
        for p, o in sorted(set(ids)):
            by_partition.setdefault(p, []).append(o)
        for p, offsets in by_partition.items():
            tp = TopicPartition(self.dlq, p)
            self.consumer.seek_to_end([t for t in self.tps if t != tp])
            for record in _at_offsets(self.consumer, tp, offsets, self.timeout_s):
                found[(p, record.offset)] = record
        return found


def _at_offsets(consumer: Consumer, tp: TopicPartition, offsets: Sequence[int],
                timeout_s: float) -> Iterator[Record]:
    """The records of ``tp`` at the sorted ``offsets``: a seek to each not read on the way."""
    wanted = set(offsets)
    i = 0
    while i < len(offsets):
        consumer.seek(tp, offsets[i])
        deadline = time.monotonic() + timeout_s
        mine: list[Record] = []
        while not mine:
            mine = [r for r in consumer.poll(max_records=500, timeout_s=0.1)
                    if r.partition == tp.partition]
            if not mine and time.monotonic() > deadline:
                raise LogError(f"{tp.topic}[{tp.partition}]: offset {offsets[i]} did not arrive")
        yield from (r for r in mine if r.offset in wanted)
        last = mine[-1].offset
        while i < len(offsets) and offsets[i] <= last:
            i += 1


def _listed(what: str, ids: Sequence[Id], shown: int = 5) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return f"{what} {', '.join(format_id(*i) for i in ids[:shown])}{more}"


def replay_dead_letters(log: Log, topic: str, *, ids: Sequence[Id] | None, max_records: int =
                        MAX_REPLAY_ALL, timeout_s: float = 10.0,
                        clock_ms: ClockMs = system_clock_ms) -> dict[str, Any]:
    """Replay ``topic``'s dead letters ``ids`` (None: all), as ``POST
    /v1/topics/{topic}/dlq/replay`` does; its answer's body."""
    log.describe_topic(topic)  # UnknownTopic: 404
    dlq = dead_letter_topic(topic)
    if not _exists(log, dlq):
        if ids:
            raise NotFound(f"topic {topic!r} has no dead letters (there is no topic {dlq!r}): "
                           "nothing was replayed")
        return ReplayOutcome(ids=None if ids is None else []).to_dict(topic, dlq)
    with _Replay(log, dlq, topic, timeout_s=timeout_s, clock_ms=clock_ms) as run:
        outcome = run.everything(max_records) if ids is None else run.selected(ids)
    return outcome.to_dict(topic, dlq)
