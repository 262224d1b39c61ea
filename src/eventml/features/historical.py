"""Point-in-time feature retrieval: each entity row gets the view's values as they were
at the row's time, computed by replaying the source topic through the same
:class:`~eventml.features.state.EntityState` that serves online.

For a row ``(key, t)`` only the key's events with event time ``<= t`` are folded in
(then the TTL applies), so no row ever sees its future: the sweep goes through each
key's events and rows in time order and reads the state before any later event.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from eventml.features.spec import FeatureView
from eventml.features.state import EntityState
from eventml.log.base import ConsumerConfig, Log, Record, TopicPartition

EntityRow = tuple[Any, int]  # (entity key, time in ms)


@dataclass(frozen=True)
class HistoricalFeatures:
    """One row per entity row, in the order asked: the key, the time, then the features."""

    view: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    events_read: int

    def to_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]


def get_historical_features(
    log: Log,
    view: FeatureView,
    entity_rows: Sequence[EntityRow],
    *,
    features: Sequence[str] | None = None,
    decode: Callable[[bytes], Any] = orjson.loads,
    timeout_s: float = 120.0,
) -> HistoricalFeatures:
    """The values of ``features`` (default: all of ``view``'s) at each ``(key, time_ms)``.

    Reads ``view.source`` from its start (every partition), groups events by entity
    key (``view.key_of``) and replays them in event-time order.
    """
    wanted = list(features) if features is not None else view.feature_names
    unknown = sorted(set(wanted) - set(view.feature_names))
    if unknown:
        raise ValueError(f"feature view {view.name!r} has no features {unknown}: it has {view.feature_names}")
    keys = {key for key, _ in entity_rows}
    events: dict[Any, list[tuple[int, int, Any]]] = defaultdict(list)
    read = 0
    for seq, record in enumerate(_records(log, view.source, timeout_s)):
        read += 1
        if record.value is None:
            continue
        value = decode(record.value)
        key = view.key_of(value)
        if key in keys:
            events[key].append((view.time_of(value, record.timestamp_ms), seq, value))
    by_key: dict[Any, list[tuple[int, int]]] = defaultdict(list)
    for i, (key, t) in enumerate(entity_rows):
        by_key[key].append((int(t), i))
    out: list[tuple[Any, ...] | None] = [None] * len(entity_rows)
    for key, asks in by_key.items():
        asks.sort()
        evs = sorted(events.get(key, ()), key=lambda e: (e[0], e[1]))
        state = EntityState(view)
        j = 0
        for t, i in asks:
            while j < len(evs) and evs[j][0] <= t:
                state.update(evs[j][2], evs[j][0])
                j += 1
            values = state.values_at(t)
            out[i] = (key, t, *(values[name] for name in wanted))
    return HistoricalFeatures(
        view.name, ["entity", "event_timestamp_ms", *wanted], [r for r in out if r is not None], read
    )


def _records(log: Log, topic: str, timeout_s: float) -> Iterator[Record]:
    """Every record of ``topic`` up to its end offsets now, through a throwaway group."""
    ends = {TopicPartition(topic, p): end for p, end in log.end_offsets(topic).items()}
    starts = log.start_offsets(topic)
    if all(end <= starts[tp.partition] for tp, end in ends.items()):
        return
    group = f"eventml-features-{uuid.uuid4().hex[:12]}"
    config = ConsumerConfig(auto_offset_reset="earliest")
    deadline = time.monotonic() + timeout_s
    with log.consumer(group, [topic], config=config) as consumer:
        while True:
            for record in consumer.poll(max_records=10_000, timeout_s=0.2):
                if record.offset < ends[TopicPartition(record.topic, record.partition)]:
                    yield record
            owned = consumer.assignment()
            if len(owned) == len(ends) and all(consumer.position(tp) >= ends[tp] for tp in owned):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic!r} for features took over {timeout_s:g} s")
