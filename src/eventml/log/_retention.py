"""Pure retention and compaction rules, shared by the local logs."""

from __future__ import annotations

from collections.abc import Sequence

from eventml.log.base import Record, TopicSpec


def record_size(r: Record) -> int:
    """Bytes a record counts for under ``retention_bytes``: key, value and headers."""
    size = len(r.key or b"") + len(r.value or b"")
    for name, value in r.headers:
        size += len(name) + len(value)
    return size


def records_to_keep(spec: TopicSpec, records: Sequence[Record], now_ms: int) -> list[Record]:
    """The records of one partition (in offset order) that survive retention or compaction.

    ``delete``: advance the log start past records older than ``retention_ms`` and
    past the oldest bytes beyond ``retention_bytes`` (a prefix, as Kafka drops whole
    segments: a newer-stamped record stops time-based deletion). ``compact``: keep the latest record per key (keyless records
    are kept; a tombstone, ``value=None``, is kept as the key's latest record so
    readers learn of the deletion).
    """
    if spec.cleanup_policy == "compact":
        latest = {r.key: r.offset for r in records if r.key is not None}
        return [r for r in records if r.key is None or latest[r.key] == r.offset]
    keep = list(records)
    if spec.retention_ms is not None:
        cutoff = now_ms - spec.retention_ms
        first = 0
        while first < len(keep) and keep[first].timestamp_ms < cutoff:
            first += 1
        keep = keep[first:]
    if spec.retention_bytes is not None:
        total = sum(record_size(r) for r in keep)
        drop = 0
        while drop < len(keep) and total > spec.retention_bytes:
            total -= record_size(keep[drop])
            drop += 1
        keep = keep[drop:]
    return keep
