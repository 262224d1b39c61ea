"""Reading and replaying dead-letter topics.

:func:`replay` appends each dead letter's original key, value and headers back to
where it came from, exactly once: it reads the dead-letter topic as the
consumer group :data:`REPLAY_GROUP` and commits the group's offsets in the same
transaction as the appends. A second replay finds nothing new; a replay that
dies midway leaves whole batches done and the rest for the next run. Dead letters
replayed one by one (``POST /v1/topics/{topic}/dlq/replay`` with ids) are recorded in
the topic's ledger (:mod:`eventml.deadletter.ledger`): a replay skips them and
tombstones their records in the same transaction.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from eventml.deadletter.parse import DeadLetter, InvalidDeadLetter, parse_dead_letter
from eventml.deadletter.record import dead_letter_topic
from eventml.log.base import (
    Consumer,
    ConsumerConfig,
    Log,
    LogError,
    Message,
    Record,
    TopicPartition,
    UnknownTopic,
)

REPLAY_GROUP = "eventml-dlq-replay"
"""The consumer group whose committed offsets on a dead-letter topic mark what was replayed."""
REPLAY_OF = "eventml.replay.of"
"""Header on a replayed message: ``<dead-letter topic>:<partition>:<offset>`` it came from."""
DLQ_SUFFIX = ".dlq"


def resolve_topics(log: Log, topic: str) -> tuple[str, str]:
    """``(dead-letter topic, source topic)`` for ``topic``, given as either one.

    A name ending in ``.dlq`` is the dead-letter topic itself. Raises
    :class:`UnknownTopic` when the dead-letter topic does not exist.
    """
    if topic.endswith(DLQ_SUFFIX):
        log.describe_topic(topic)
        return topic, topic[: -len(DLQ_SUFFIX)]
    dlq = dead_letter_topic(topic)
    try:
        log.describe_topic(dlq)
    except UnknownTopic:
        log.describe_topic(topic)  # unknown topic: say so about the name given
        raise UnknownTopic(
            f"topic {topic!r} has no dead letters (there is no topic {dlq!r})"
        ) from None
    return dlq, topic


def replay_message(dead: DeadLetter) -> Message:
    """The message a replay appends: the original, marked with :data:`REPLAY_OF`.

    A mark from an earlier replay is replaced, so a message carries one. The
    partition is chosen by key, as for any append.
    """
    mark = (REPLAY_OF, f"{dead.topic}:{dead.partition}:{dead.offset}".encode())
    headers = (*(h for h in dead.headers if h[0] != REPLAY_OF), mark)
    return Message(value=dead.value, key=dead.key, headers=headers)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did: dead letters appended per target topic, records skipped because
    they carry no provenance (they are not dead letters; still marked done), and dead
    letters passed over because a replay by id had already replayed them."""

    replayed: Mapping[str, int] = field(default_factory=dict)
    skipped: int = 0
    already_replayed: int = 0

    @property
    def total(self) -> int:
        return sum(self.replayed.values())


def replay(
    log: Log,
    dlq_topic: str,
    *,
    to: str | None = None,
    default_source: str | None = None,
    group: str = REPLAY_GROUP,
    batch_size: int = 500,
    timeout_s: float = 30.0,
) -> ReplayResult:
    """Replay the dead letters of ``dlq_topic`` not replayed before; return what was done.

    Each goes to ``to`` if given, else to its ``eventml.dlq.source.topic``, else
    to ``default_source``. Runs until it has read what the topic held when the
    replay started; each batch is one transaction (appends + ``group``'s offsets).
    Raises :class:`LogError` if a target does not exist, or if the group's
    partitions stay held by another member (a concurrent replay) for ``timeout_s``.
    """
    if to == dlq_topic:
        raise LogError(f"cannot replay {dlq_topic!r} into itself: pick another --to")
    if to is not None:
        log.describe_topic(to)
    from eventml.deadletter.ledger import format_id, ledger_topic, read_ledger

    ends = log.end_offsets(dlq_topic)
    ledger = read_ledger(log, dlq_topic)
    already = 0
    producer = log.transactional_producer(f"{group}.{dlq_topic}")
    consumer = log.consumer(group, [dlq_topic], config=ConsumerConfig(auto_offset_reset="earliest"))
    counts: dict[str, int] = {}
    skipped = 0
    known: set[str] = set()
    try:
        deadline = time.monotonic() + timeout_s
        while not _reached(consumer, dlq_topic, ends):
            records = consumer.poll(max_records=batch_size, timeout_s=0.1)
            if not records:
                if time.monotonic() > deadline:
                    raise LogError(
                        f"could not read all of {dlq_topic!r} within {timeout_s:g}s as group "
                        f"{group!r}: is another replay of it running?"
                    )
                continue
            deadline = time.monotonic() + timeout_s
            batch: dict[str, list[Message]] = {}
            offsets: dict[TopicPartition, int] = {}
            passed: list[Message] = []  # tombstones for ledger records the offsets now cover
            for r in records:
                offsets[TopicPartition(r.topic, r.partition)] = r.offset + 1
                if (r.partition, r.offset) in ledger:
                    passed.append(Message(None, format_id(r.partition, r.offset).encode(), partition=0))
                    continue
                try:
                    dead = parse_dead_letter(r)
                except InvalidDeadLetter:
                    skipped += 1
                    continue
                target = to or dead.source_topic or default_source
                if target is None:
                    raise LogError(
                        f"{r.topic}[{r.partition}]@{r.offset} names no source topic: use --to"
                    )
                batch.setdefault(target, []).append(replay_message(dead))
            for target in batch.keys() - known:
                log.describe_topic(target)  # UnknownTopic before anything is written
                known.add(target)
            with producer.begin(consumer) as txn:
                for target, messages in batch.items():
                    txn.append(target, messages)
                if passed:
                    txn.append(ledger_topic(dlq_topic), passed)
                txn.commit_offsets(offsets)
            already += len(passed)
            for target, messages in batch.items():
                counts[target] = counts.get(target, 0) + len(messages)
    finally:
        consumer.close()
        producer.close()
    return ReplayResult(replayed=counts, skipped=skipped, already_replayed=already)


def _reached(consumer: Consumer, topic: str, ends: Mapping[int, int]) -> bool:
    assigned = consumer.assignment()
    for partition, end in ends.items():
        tp = TopicPartition(topic, partition)
        if tp not in assigned or consumer.position(tp) < end:
            return False
    return True


def read_records(
    log: Log,
    topic: str,
    ranges: Mapping[int, tuple[int, int]] | None = None,
    *,
    timeout_s: float = 30.0,
) -> Iterator[Record]:
    """Records of ``topic`` with ``start <= offset < end`` per partition, partition by
    partition in offset order (default: everything held now). Commits nothing.

    Reads as a fresh consumer group of its own, so it never moves anyone's offsets.
    """
    if ranges is None:
        starts, ends = log.start_offsets(topic), log.end_offsets(topic)
        ranges = {p: (starts[p], ends[p]) for p in ends}
    wanted = {p: r for p, r in sorted(ranges.items()) if r[0] < r[1]}
    if not wanted:
        return
    consumer = log.consumer(f"eventml-dlq-read-{uuid.uuid4().hex[:12]}", [topic])
    try:
        tps = {TopicPartition(topic, p) for p in wanted}
        deadline = time.monotonic() + timeout_s
        while not tps <= consumer.assignment():
            if time.monotonic() > deadline:
                raise LogError(f"could not get the partitions of {topic!r} within {timeout_s:g}s")
            consumer.poll(max_records=1, timeout_s=0.1)
        for partition, (start, end) in wanted.items():
            yield from _read_partition(consumer, TopicPartition(topic, partition), start, end,
                                       timeout_s)
    finally:
        consumer.close()


def _read_partition(
    consumer: Consumer, tp: TopicPartition, start: int, end: int, timeout_s: float
) -> Iterator[Record]:
    consumer.seek_to_end([t for t in consumer.assignment() if t != tp])
    consumer.seek(tp, start)
    deadline = time.monotonic() + timeout_s
    while consumer.position(tp) < end:
        records = consumer.poll(max_records=500, timeout_s=0.1)
        if records:
            deadline = time.monotonic() + timeout_s
        elif time.monotonic() > deadline:
            raise LogError(f"{tp.topic}[{tp.partition}]: offsets up to {end} did not arrive")
        for r in records:
            if r.partition == tp.partition and start <= r.offset < end:
                yield r
