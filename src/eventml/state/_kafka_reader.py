"""Read one changelog partition on Kafka with an assigned (never subscribed) consumer.

``assign`` skips the group protocol entirely: no join, no rebalance, nothing
committed, so restoring costs one connection and the fetches. The consumer reads
``read_committed``: records of aborted transactions never come back, and it
stops at the partition end seen when it started (or at end-of-partition).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer as _RdConsumer
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Message as _RdMessage
from confluent_kafka import TopicPartition as _RdTp

from eventml.log.base import Log, TopicPartition
from eventml.log.kafka import config as cfg
from eventml.state._codec import Row
from eventml.state.base import StateError

BATCH = 10_000
_WAIT_S = 0.02


def _conf(log: Any) -> dict[str, Any]:
    conf: dict[str, Any] = cfg.common(log.bootstrap, log.options)
    conf.update(
        {
            "group.id": f"eventml-restore-{uuid.uuid4().hex[:12]}",  # required, never joined
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "isolation.level": "read_committed",
            "enable.partition.eof": "true",
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
            "fetch.wait.max.ms": 50,
            "fetch.queue.backoff.ms": 0,
        }
    )
    return conf


def read_kafka(
    log: Log, tp: TopicPartition, timeout_s: float, start: int | None = None, end: int | None = None
) -> Iterator[list[Row]]:
    """``log`` is a :class:`~eventml.log.kafka.KafkaLog` (``bootstrap`` and ``options`` used)."""
    try:
        c = _RdConsumer(_conf(log), **cfg.client_kwargs())
    except KafkaException as exc:
        raise cfg.bad_setting(exc, "the changelog restore consumer") from None
    rdtp = _RdTp(tp.topic, tp.partition)
    try:
        try:
            low, high = c.get_watermark_offsets(rdtp, timeout=timeout_s)
        except KafkaException as exc:
            raise StateError(f"could not read the offsets of {tp.topic}[{tp.partition}]: {exc}") from None
        start = low if start is None else max(start, low)
        end = high if end is None else end
        if end <= start:
            return
        c.assign([_RdTp(tp.topic, tp.partition, start)])
        yield from _consume(c, tp, end, timeout_s)
    finally:
        c.close()


def _consume(c: _RdConsumer, tp: TopicPartition, end: int, timeout_s: float) -> Iterator[list[Row]]:
    deadline = time.monotonic() + timeout_s
    while True:
        # consume() waits for a full batch or the timeout: keep it short, or every
        # restore ends with a wait for records that will never come
        msgs = c.consume(BATCH, _WAIT_S)
        if not msgs:
            if time.monotonic() > deadline:
                raise StateError(
                    f"restoring from {tp.topic}[{tp.partition}] got nothing for {timeout_s:g} s "
                    f"(end offset {end}): is the broker reachable?"
                )
            continue
        deadline = time.monotonic() + timeout_s
        done = False
        if any(map(_error, msgs)):  # rare: end of partition, or a failure
            msgs, done = _until_eof(msgs, tp)
        last = msgs[-1].offset() if msgs else None
        if last is not None and last >= end - 1:  # reached the end seen at the start
            msgs = [m for m in msgs if (m.offset() or 0) < end]  # later writes are not ours
            done = True
        if msgs:
            # three C-level passes instead of a Python loop over every message; a consumed
            # record's headers are a list of (str, bytes) pairs, or None
            headers = map(_headers, msgs)
            yield list(zip(map(_key, msgs), map(_value, msgs), headers, strict=True))  # type: ignore[arg-type]
        if done:
            return


_error, _key, _value, _headers = _RdMessage.error, _RdMessage.key, _RdMessage.value, _RdMessage.headers


def _until_eof(msgs: list[_RdMessage], tp: TopicPartition) -> tuple[list[_RdMessage], bool]:
    """The records before end-of-partition, and whether it came; raises on real errors."""
    out: list[_RdMessage] = []
    for m in msgs:
        err = m.error()
        if err is None:
            out.append(m)
        elif err.code() == KafkaError._PARTITION_EOF:
            return out, True  # nothing committed past here (the rest is aborted or in flight)
        else:
            raise StateError(f"restoring from {tp.topic}[{tp.partition}] failed: {err.str()}")
    return out, False
