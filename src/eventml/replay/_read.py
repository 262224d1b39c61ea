"""Reading a topic from its beginning to its end offsets as of now (thin I/O)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping

from eventml.log.base import Consumer, ConsumerConfig, Log, Record, TopicPartition, UnknownTopic
from eventml.replay._errors import ReplayError


def require_topics(log: Log, topics: list[str] | tuple[str, ...]) -> None:
    """Raise :class:`ReplayError` naming the first of ``topics`` that does not exist."""
    existing = set(log.list_topics())
    for topic in topics:
        if topic not in existing:
            raise ReplayError(f"topic {topic!r} does not exist (see `eventml topics list`)")


def read_all(log: Log, topic: str, *, timeout_s: float = 120.0) -> Iterator[Record]:
    """Every record of ``topic`` up to its end offsets when called (a throwaway consumer
    group that commits nothing)."""
    try:
        ends = log.end_offsets(topic)
    except UnknownTopic:
        raise ReplayError(f"topic {topic!r} does not exist (see `eventml topics list`)") from None
    targets = {TopicPartition(topic, p): end for p, end in ends.items()}
    consumer = log.consumer(
        f"eventml-replay-read-{uuid.uuid4().hex[:12]}", [topic],
        config=ConsumerConfig(auto_offset_reset="earliest"),
    )
    deadline = time.monotonic() + timeout_s
    try:
        while not reached(consumer, targets):
            if time.monotonic() > deadline:
                raise ReplayError(f"reading {topic!r} took more than {timeout_s:.0f} s: is the broker healthy?")
            for record in consumer.poll(5000, 0.1):
                if record.offset < targets[TopicPartition(record.topic, record.partition)]:
                    yield record
    finally:
        consumer.close()


def reached(consumer: Consumer, targets: Mapping[TopicPartition, int]) -> bool:
    """Whether ``consumer`` owns every partition of ``targets`` and has read up to its offset."""
    assigned = consumer.assignment()
    return all(tp in assigned and consumer.position(tp) >= end for tp, end in targets.items())
