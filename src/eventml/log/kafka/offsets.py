"""Offset look-ups (watermarks, offsets for times) through a confluent-kafka consumer handle."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer as _RdConsumer
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as _RdTp

from eventml.log.base import BrokerUnavailable, LogError, UnknownTopic
from eventml.log.kafka import config as cfg

_EARLIEST = -2  # ListOffsets' logical timestamps
_LATEST = -1


def watermarks(
    handle: _RdConsumer, topic: str, partitions: Iterable[int], timeout_s: float
) -> dict[int, tuple[int, int]]:
    """Per partition ``(start, end)``: log start offset and end (next) offset, in two requests."""
    parts = list(partitions)
    start = _list_offsets(handle, topic, parts, _EARLIEST, timeout_s)
    end = _list_offsets(handle, topic, parts, _LATEST, timeout_s)
    return {p: (start[p], end[p]) for p in parts}


def _list_offsets(
    handle: _RdConsumer, topic: str, partitions: list[int], timestamp: int, timeout_s: float
) -> dict[int, int]:
    if not partitions:
        return {}
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            found = handle.offsets_for_times(
                [_RdTp(topic, p, timestamp) for p in partitions], timeout=timeout_s
            )
            errors = [tp for tp in found if tp.error is not None]
            if not errors:
                return {tp.partition: tp.offset for tp in found}
            failure: LogError = _partition_error(topic, errors[0])
            transient = all(_transient(tp.error) for tp in errors)
        except KafkaException as exc:
            failure = _offsets_error(topic, exc)
            transient = _transient(cfg.error_of(exc))
        # e.g. NOT_LEADER_FOR_PARTITION while a new topic's leaders settle: retry
        if not transient or time.monotonic() + delay > deadline:
            raise failure
        time.sleep(delay)
        delay = min(0.5, delay * 2)


def _transient(err: KafkaError | None) -> bool:
    if err is None or err.code() in _UNKNOWN:
        return False
    return err.retriable() or err.code() in _RETRY


def for_time(
    handle: _RdConsumer, topic: str, partitions: Iterable[int], timestamp_ms: int, timeout_s: float
) -> dict[int, int]:
    """Per partition, the first offset with timestamp >= ``timestamp_ms`` (end offset if none)."""
    parts = list(partitions)
    out = _list_offsets(handle, topic, parts, max(0, timestamp_ms), timeout_s)
    missing = [p for p, offset in out.items() if offset < 0]
    out.update(_list_offsets(handle, topic, missing, _LATEST, timeout_s))
    return out


_RETRY = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.FENCED_LEADER_EPOCH,
        KafkaError.UNKNOWN_LEADER_EPOCH,
        KafkaError.OFFSET_NOT_AVAILABLE,
        KafkaError.REPLICA_NOT_AVAILABLE,
        KafkaError._TRANSPORT,
    }
)
_UNKNOWN = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}
)


def _partition_error(topic: str, tp: _RdTp) -> LogError:
    err = tp.error
    if err is not None and err.code() in _UNKNOWN:
        return UnknownTopic(f"unknown topic {topic!r}: create it first")
    return LogError(f"offset look-up on {topic}[{tp.partition}] failed: {err}")


def _offsets_error(topic: str, exc: KafkaException) -> LogError:
    err = cfg.error_of(exc)
    if err is not None and err.code() in _UNKNOWN:
        return UnknownTopic(f"unknown topic {topic!r}: create it first")
    if err is not None and err.code() in (KafkaError._TIMED_OUT, KafkaError._TRANSPORT):
        return BrokerUnavailable(f"offset look-up on {topic!r} failed: {err.str()}")
    return LogError(f"offset look-up on {topic!r} failed: {err.str() if err else exc}")
