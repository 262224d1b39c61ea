"""Read one partition of a changelog from its start to its current end, in large batches.

:func:`read_partition` picks a reader by log class (see :mod:`eventml.state._resolve`):

* in-process logs (memory, embedded) read the partition directly (their
  ``read(tp, offset, max_records)``), with no consumer group at all;
* Kafka uses a consumer assigned to the one partition, never subscribed
  (:mod:`eventml.state._kafka_reader`): no group join, no rebalance;
* any other log: a throwaway consumer group of its own (``eventml-restore-<id>``,
  never committed), positioned by seeks.

None of them joins the application's group, so restoring never disturbs it.
Readers yield lists of ``(key, value, headers)``, oldest first.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from eventml.log.base import ConsumerConfig, Log, TopicPartition
from eventml.state._codec import Row
from eventml.state._resolve import lookup
from eventml.state.base import StateError

BATCH = 10_000
_IDLE_POLLS = 5
Reader = Callable[..., Iterator[list[Row]]]


class _Readable(Protocol):
    def read(self, tp: TopicPartition, offset: int, max_records: int) -> list[Any]: ...


def read_local(
    log: Log, tp: TopicPartition, timeout_s: float, start: int | None = None, end: int | None = None
) -> Iterator[list[Row]]:
    """Memory and embedded logs: straight reads, offset by offset, up to the end seen first."""
    readable: _Readable = log  # type: ignore[assignment]
    end = log.end_offsets(tp.topic)[tp.partition] if end is None else end
    offset = max(start or 0, log.start_offsets(tp.topic)[tp.partition])
    while offset < end:
        records = readable.read(tp, offset, min(BATCH, end - offset))
        if not records:
            return
        yield [(r.key, r.value, r.headers) for r in records if r.offset < end]
        offset = records[-1].offset + 1


def read_by_group(
    log: Log, tp: TopicPartition, timeout_s: float, start: int | None = None, end: int | None = None
) -> Iterator[list[Row]]:
    """Any log: a consumer in a fresh group of its own, moved by seeks, never committed.

    Stops at the end offset seen first, or once the partition gives nothing for
    ``_IDLE_POLLS`` polls in a row (records past a compaction gap may never come).
    """
    end = log.end_offsets(tp.topic)[tp.partition] if end is None else end
    position = max(start or 0, log.start_offsets(tp.topic)[tp.partition])
    if end <= position:
        return
    group = f"eventml-restore-{uuid.uuid4().hex[:12]}"
    config = ConsumerConfig(auto_offset_reset="earliest")
    deadline = time.monotonic() + timeout_s
    with log.consumer(group, [tp.topic], config=config) as consumer:
        positioned = False
        idle = 0
        while position < end and idle < _IDLE_POLLS:
            batch: list[Row] = []
            for r in consumer.poll(max_records=BATCH, timeout_s=0.2):
                if r.partition == tp.partition and position <= r.offset < end:
                    batch.append((r.key, r.value, r.headers))
                    position = r.offset + 1
            if batch:
                idle = 0
                yield batch
            elif positioned:
                idle += 1
            if not positioned and tp in consumer.assignment():
                others = [p for p in consumer.assignment() if p != tp]
                if others:
                    consumer.seek_to_end(others)  # fetch nothing but this partition
                consumer.seek(tp, position)
                positioned = True
            if time.monotonic() > deadline:
                raise StateError(
                    f"restoring from {tp.topic}[{tp.partition}] stopped at offset {position} "
                    f"of {end} after {timeout_s:g} s: is the log reachable?"
                )


_READERS: dict[str, Any] = {
    "MemoryLog": read_local,
    "EmbeddedLog": read_local,
    "KafkaLog": "eventml.state._kafka_reader:read_kafka",
}


def read_partition(
    log: Log, tp: TopicPartition, timeout_s: float, start: int | None = None, end: int | None = None
) -> Iterator[list[Row]]:
    """Records of ``tp`` from ``start`` (default: the partition start) up to ``end``
    (default: the end offset when reading starts), oldest first, in batches."""
    reader: Reader = lookup(_READERS, log) or read_by_group
    return reader(log, tp, timeout_s, start, end)
