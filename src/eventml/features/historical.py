"""Point-in-time feature retrieval: each entity row gets the view's values as they were
at the row's time, computed by replaying the source topic through the same
:class:`~eventml.features.state.EntityState` that serves online.

For a row ``(key, t)`` only the key's events with event time ``<= t`` are folded in
(then the TTL applies), so no row ever sees its future: the sweep goes through each
key's events and rows in time order and reads the state before any later event.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson

from eventml.features.spec import FeatureView
from eventml.features.state import EntityState
from eventml.log.base import ConsumerConfig, Log, Record, TopicPartition
from eventml.state._readers import read_partition

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
    workers: int | None = None,
    from_offsets: Mapping[int, int] | None = None,
) -> HistoricalFeatures:
    """The values of ``features`` (default: all of ``view``'s) at each ``(key, time_ms)``.

    Reads ``view.source`` from its start (every partition), keeps the asked keys'
    events (only the fields the features read), and replays each key's events in
    event-time order, reading the state at each asked time before any later event.
    Keys are swept by ``workers`` forked processes (default: one per CPU) when there
    are many events. ``from_offsets`` (partition → offset) skips what came before, e.g.
    to replay only one run of a pipeline.
    """
    wanted = list(features) if features is not None else view.feature_names
    unknown = sorted(set(wanted) - set(view.feature_names))
    if unknown:
        raise ValueError(f"feature view {view.name!r} has no features {unknown}: it has {view.feature_names}")
    by_key: dict[Any, list[tuple[int, int]]] = defaultdict(list)
    for i, (key, t) in enumerate(entity_rows):
        by_key[key].append((int(t), i))
    out: list[tuple[Any, ...] | None] = [None] * len(entity_rows)
    starts = dict(from_offsets or {})
    done = _by_partition(log, view, wanted, by_key, decode, timeout_s, workers, starts)
    if done is None:  # one process: read everything, then sweep
        events, read, _ = _load_events(log, view, set(by_key), decode, timeout_s, starts=starts)
        done = (_sweep(view, wanted, list(by_key), events, by_key), read)
    rows, read = done
    for i, row in rows:
        out[i] = row
    empty = EntityState(view)  # keys without events: every value None
    for key, asks in by_key.items():
        for t, i in asks:
            if out[i] is None:
                values = empty.values_at(t)
                out[i] = (key, t, *(values[name] for name in wanted))
    return HistoricalFeatures(
        view.name, ["entity", "event_timestamp_ms", *wanted], [r for r in out if r is not None], read
    )


_PARALLEL_FROM = 200_000  # events: below this a fork costs more than it saves
_SHARED: Any = None  # what forked workers inherit (nothing is pickled to them)
Events = dict[Any, list[tuple[int, Any]]]
Rows = list[tuple[int, tuple[Any, ...]]]


def _load_events(
    log: Log, view: FeatureView, keys: set[Any], decode: Callable[[bytes], Any], timeout_s: float,
    partitions: Sequence[int] | None = None, starts: Mapping[int, int] | None = None,
) -> tuple[Events, int, bool]:
    """Per asked key, its events as ``(event time, projected fields)`` in log order;
    records read; and whether every record's key was its entity (the topic is keyed
    by the entity, so each entity's events are in one partition)."""
    project = EntityState(view).project
    events: Events = defaultdict(list)
    read = 0
    keyed = True
    starts = starts or {}
    if view.time is not None:  # event time is in the value: read partitions in bulk
        time_of = view.time if callable(view.time) else _field(view.time)
        for partition in partitions if partitions is not None else sorted(log.end_offsets(view.source)):
            tp = TopicPartition(view.source, partition)
            for batch in read_partition(log, tp, timeout_s, starts.get(partition)):
                read += len(batch)
                for record_key, raw, _headers in batch:
                    if raw is None:
                        continue
                    value = decode(raw)
                    key = view.key_of(value)
                    if keyed and record_key != str(key).encode():
                        keyed = False
                    if key in keys:
                        events[key].append((int(time_of(value)), project(value)))
    else:  # the record timestamps are needed: read through a throwaway group
        keyed = False
        for record in _records(log, view.source, timeout_s):
            if record.offset < starts.get(record.partition, 0):
                continue
            read += 1
            if record.value is None:
                continue
            value = decode(record.value)
            key = view.key_of(value)
            if key in keys:
                events[key].append((view.time_of(value, record.timestamp_ms), project(value)))
    return events, read, keyed


def _by_partition(
    log: Log, view: FeatureView, wanted: list[str], by_key: dict[Any, list[tuple[int, int]]],
    decode: Callable[[bytes], Any], timeout_s: float, workers: int | None,
    starts: Mapping[int, int],
) -> tuple[Rows, int] | None:
    """Forked workers each read, group and sweep some partitions (a topic keyed by the
    entity keeps each entity in one partition); ``None`` when that does not apply."""
    if view.time is None:
        return None
    firsts, ends = log.start_offsets(view.source), log.end_offsets(view.source)
    partitions = sorted(ends)
    procs = min(workers if workers is not None else (os.cpu_count() or 1), len(partitions))
    size = sum(ends[p] - max(firsts[p], starts.get(p, 0)) for p in partitions)
    if procs < 2 or size < _PARALLEL_FROM:
        return None
    global _SHARED
    _SHARED = (log.url, view, wanted, by_key, decode, timeout_s, starts)
    try:
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            parts = pool.map(_partition_job, [partitions[k::procs] for k in range(procs)])
    finally:
        _SHARED = None
    if not all(keyed for _, _, keyed in parts):
        return None  # an entity may span partitions: do it in one process
    return [row for rows, _, _ in parts for row in rows], sum(read for _, read, _ in parts)


def _partition_job(partitions: list[int]) -> tuple[Rows, int, bool]:
    from eventml.log.registry import open_log

    url, view, wanted, by_key, decode, timeout_s, starts = _SHARED
    log = open_log(url)  # a connection of this process's own
    events, read, keyed = _load_events(log, view, set(by_key), decode, timeout_s, partitions, starts)
    if not keyed:
        return [], read, False
    return _sweep(view, wanted, list(events), events, by_key), read, True


def _sweep(
    view: FeatureView,
    wanted: list[str],
    keys: list[Any],
    events: dict[Any, list[tuple[int, Any]]],
    by_key: dict[Any, list[tuple[int, int]]],
) -> list[tuple[int, tuple[Any, ...]]]:
    """For each key: its events (stably sorted by time: a key's events share a
    partition, so log order breaks ties) folded up to each asked time, in order."""
    out: list[tuple[int, tuple[Any, ...]]] = []
    first = itemgetter(0)
    for key in keys:
        asks = sorted(by_key[key])
        evs = sorted(events.get(key, ()), key=first)
        state = EntityState(view)
        fold = state.fold
        j, n = 0, len(evs)
        for t, i in asks:
            while j < n and evs[j][0] <= t:
                fold(evs[j][1], evs[j][0])
                j += 1
            values = state.values_at(t)
            out.append((i, (key, t, *(values[name] for name in wanted))))
    return out


def _field(name: str) -> Callable[[Any], Any]:
    def get(value: Any) -> Any:
        return value[name]

    return get


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
