"""Placing a batch of messages: partition, offset, timestamp, stored headers (pure; no I/O).

:func:`place_batch` turns ``Message``s into the rows of a records table. The
common batch (every message keyed or every message unkeyed, no explicit
partition, timestamp or headers) is placed with C-level iterator pipelines;
any other batch goes through a per-message loop with the same result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import count, repeat
from operator import attrgetter, mod
from typing import Any

from eventml.log.base import Message
from eventml.log.embedded.headers import encode_headers
from eventml.log.partitioner import partition_for

Row = tuple[int, int, int, bytes | None, bytes | None, bytes | None]
"""(partition, offset, timestamp_ms, key, value, stored headers): a records-table row."""

_route = lru_cache(maxsize=1 << 16)(partition_for)  # C-level cache hit on (key, partitions)
_keys = attrgetter("key")
_values = attrgetter("value")
_partitions = attrgetter("partition")
_timestamps = attrgetter("timestamp_ms")
_headers = attrgetter("headers")


@dataclass(frozen=True, slots=True)
class PlacedBatch:
    partitions: list[int]  # per message, in input order
    offsets: list[int]  # per message, in input order
    rows: Iterable[Row]  # per message, in input order; may be iterable only once
    next_offsets: list[int]  # per partition, after the batch
    round_robin: int  # the unkeyed-message counter after the batch
    last_header: dict[int, int]  # per partition, the highest offset given headers


def place_batch(
    topic: str,
    messages: Sequence[Message],
    next_offsets: Sequence[int],
    round_robin: int,
    now_ms: int,
) -> PlacedBatch:
    """Place ``messages`` after ``next_offsets`` (one per partition), as the memory log does.

    Explicit ``partition`` wins (``ValueError`` when out of range), else the key's
    murmur2 partition, else round-robin from ``round_robin``; a missing timestamp
    becomes ``now_ms``.
    """
    n = len(next_offsets)
    size = len(messages)
    keys = list(map(_keys, messages))
    null_keys = keys.count(None)
    if (
        (null_keys == 0 or null_keys == size)
        and list(map(_partitions, messages)).count(None) == size
        and list(map(_timestamps, messages)).count(None) == size
        and not any(map(_headers, messages))
    ):
        if null_keys:
            parts = list(map(mod, range(round_robin, round_robin + size), repeat(n)))
            round_robin += size
        else:
            parts = list(map(_route, keys, repeat(n)))
        counters = [count(o) for o in next_offsets]
        offsets = list(map(next, map(counters.__getitem__, parts)))
        # rows are made as the insert consumes them: fewer live objects for the GC
        rows = zip(parts, offsets, repeat(now_ms), keys, map(_values, messages), repeat(None))
        return PlacedBatch(parts, offsets, rows, [next(c) for c in counters], round_robin, {})
    return _place_each(topic, messages, list(next_offsets), round_robin, now_ms)


def _place_each(
    topic: str, messages: Sequence[Message], nexts: list[int], rr: int, now_ms: int
) -> PlacedBatch:
    n = len(nexts)
    rows: list[Any] = []
    add_row = rows.append
    parts: list[int] = []
    offsets: list[int] = []
    last_header: dict[int, int] = {}
    for value, key, headers, ts, p in messages:
        if p is None:
            if key is None:
                p = rr % n
                rr += 1
            else:
                p = _route(key, n)
        elif not 0 <= p < n:
            raise ValueError(f"partition {p} out of range for {topic!r} ({n})")
        o = nexts[p]
        nexts[p] = o + 1
        parts.append(p)
        offsets.append(o)
        if headers:
            add_row((p, o, now_ms if ts is None else ts, key, value, encode_headers(headers)))
            last_header[p] = o
        else:
            add_row((p, o, now_ms if ts is None else ts, key, value, None))
    return PlacedBatch(parts, offsets, rows, nexts, rr, last_header)
