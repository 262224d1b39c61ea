"""Read a partition and say how far the read got: the position the next read starts at.

The local logs apply a transaction in one step, so a read up to the end offset saw
everything before it. On Kafka the end offset may include records of a transaction
still in flight (or whose commit marker has not landed yet); a ``read_committed`` read
stops at the last stable offset, and the position must stay there, or those records
would be skipped for good once they commit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from eventml.log.base import Log, TopicPartition
from eventml.state._readers import read_partition
from eventml.state.base import StateError

Row = tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]] | None]
_BATCH = 10_000


def read_rows(
    log: Log, tp: TopicPartition, timeout_s: float, start: int, end: int
) -> tuple[list[Row], int]:
    """The committed rows of ``tp`` in ``[start, end)`` and the position reached."""
    if end <= start:
        return [], start
    if type(log).__name__ == "KafkaLog":
        return _read_kafka(log, tp, timeout_s, start, end)
    rows = [row for batch in read_partition(log, tp, timeout_s, start, end) for row in batch]
    return rows, end


def _read_kafka(
    log: Any, tp: TopicPartition, timeout_s: float, start: int, end: int
) -> tuple[list[Row], int]:
    from confluent_kafka import Consumer, KafkaError, KafkaException
    from confluent_kafka import TopicPartition as RdTp

    from eventml.log.kafka import config as cfg
    from eventml.state._kafka_reader import _conf

    try:
        c = Consumer(_conf(log), **cfg.client_kwargs())
    except KafkaException as exc:
        raise cfg.bad_setting(exc, "the event store reader") from None
    rows: list[Row] = []
    position = start
    try:
        c.assign([RdTp(tp.topic, tp.partition, start)])
        deadline = time.monotonic() + timeout_s
        while position < end:
            msgs = c.consume(_BATCH, 0.02)
            if not msgs:
                if time.monotonic() > deadline:
                    raise StateError(
                        f"reading {tp.topic}[{tp.partition}] got nothing for {timeout_s:g} s "
                        f"(at offset {position} of {end}): is the broker reachable?"
                    )
                continue
            deadline = time.monotonic() + timeout_s
            for m in msgs:
                err = m.error()
                offset = m.offset() or 0
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return rows, max(position, min(offset, end))  # the last stable offset
                    raise StateError(f"reading {tp.topic}[{tp.partition}] failed: {err.str()}")
                if offset >= end:
                    return rows, end
                rows.append((m.key(), m.value(), m.headers()))  # type: ignore[arg-type]  # (str, bytes) pairs
                position = offset + 1
        return rows, position
    finally:
        c.close()
