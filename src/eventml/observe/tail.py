"""The last records of a topic, read without a consumer group.

The memory and embedded logs are read directly (``read(tp, offset, n)``); Kafka through
a consumer assigned to the partitions (never subscribed: no group join, no rebalance,
``read_committed``). Nobody's offsets move.
"""

from __future__ import annotations

import time
from typing import Any, cast

from eventml.log import Log, LogError, Record, TopicPartition


def read_tail(log: Log, topic: str, count: int, *, spread: bool = False,
              timeout_s: float = 2.0) -> list[Record]:
    """Up to ``count`` of the newest records of ``topic`` (per partition the last ``count``,
    then the newest ``count`` of them by timestamp), oldest first. ``spread``: read only
    the last ``count / partitions`` of each partition (cheaper; a sample, not exactly the
    newest when partitions fill unevenly)."""
    if count < 1:
        return []
    starts, ends = log.start_offsets(topic), log.end_offsets(topic)
    held = [p for p in ends if ends[p] > starts[p]]
    each = max(1, -(-count // len(held))) if spread and held else count
    ranges = {p: (max(starts[p], ends[p] - each), ends[p]) for p in held}
    if not ranges:
        return []
    read = getattr(log, "read", None)
    if callable(read):  # MemoryLog, EmbeddedLog
        records: list[Record] = []
        for p, (start, end) in ranges.items():
            records.extend(r for r in read(TopicPartition(topic, p), start, end - start)
                           if r.offset < end)
    elif getattr(log, "bootstrap", None) is not None:
        records = _read_kafka(log, topic, ranges, timeout_s)
    else:
        raise LogError(f"cannot read the tail of {topic!r} from {type(log).__name__}")
    records.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset))
    return records[-count:]


def _read_kafka(log: Any, topic: str, ranges: dict[int, tuple[int, int]],
                timeout_s: float) -> list[Record]:
    from confluent_kafka import Consumer, KafkaError
    from confluent_kafka import TopicPartition as KafkaPartition

    from eventml.log.kafka import config as kafka_config
    from eventml.state._kafka_reader import _conf

    client = Consumer(_conf(log), **kafka_config.client_kwargs())
    out: list[Record] = []
    try:
        client.assign([KafkaPartition(topic, p, start) for p, (start, _) in ranges.items()])
        pending = dict(ranges)
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for m in client.consume(1000, 0.05):
                p, offset = m.partition() or 0, m.offset() or 0
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.pop(p, None)
                        continue
                    raise LogError(f"reading {topic}[{p}] failed: {err.str()}")
                if p in pending and offset < pending[p][1]:
                    headers = cast("list[tuple[str, bytes]]", m.headers() or [])
                    out.append(Record(topic, p, offset, m.timestamp()[1], m.key(), m.value(),
                                      tuple(headers)))
                if p in pending and offset + 1 >= pending[p][1]:
                    pending.pop(p)
    finally:
        client.close()
    return out
