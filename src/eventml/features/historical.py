"""Point-in-time feature retrieval: each entity row gets the view's values as they were
at the row's time, computed by replaying the source topic through the same
:class:`~eventml.features.state.EntityState` that serves online.

"As they were at ``T``" means what the pipeline held for the key once the key's
stream reached ``T``. Each key's events are replayed in log (arrival) order, late ones
dropped by the view's ``allowed_lateness_ms`` exactly as online; a row ``(key, T)`` is
answered just before the first event later than ``T`` is folded in. So a row sees
every accepted event at or before ``T`` that arrived before the stream passed ``T``:
never an event after ``T``, and never one that arrived (late) after the stream had
passed ``T``, which the pipeline could not have known then either. With events in time
order this is simply "every event at or before ``T``". A topic not keyed by the
entity has no arrival order across partitions: its entities' events are taken in
event-time order (none is late). Then the TTL applies, as in Feast.

Entity rows are ``(key, time_ms)`` pairs, or a pandas DataFrame / pyarrow Table with
the entity column (the view's entity) and a timestamp column (``event_timestamp``: int
ms or datetimes of any unit; naive means UTC); other columns (labels...) are carried
through, in row order. :class:`HistoricalFeatures` converts to Arrow, pandas and
Parquet (``pip install 'eventml[offline]'``).
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from eventml.features import _frames
from eventml.features.spec import FeatureView
from eventml.features.state import EntityState
from eventml.log.base import ConsumerConfig, Log, Record, TopicPartition
from eventml.state._readers import read_partition

EntityRow = tuple[Any, int]  # (entity key, time in ms)
TIMESTAMP_COLUMN = "event_timestamp"


@dataclass(frozen=True)
class HistoricalFeatures:
    """One row per entity row, in the order asked: the entity rows' columns (for
    ``(key, time)`` pairs: ``entity`` and ``event_timestamp_ms``), then the features
    (``None`` where there is no value: no event yet, or past the TTL)."""

    view: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    events_read: int
    #: the feature columns (the last ones)
    features: list[str] = field(default_factory=list)
    #: the entity rows as a pyarrow Table, when they were given as a DataFrame or Table
    entity_rows: Any = field(default=None, repr=False, compare=False)
    _view: FeatureView | None = field(default=None, repr=False, compare=False)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table``: the entity rows' columns unchanged, then the features
        (counts as int64, means and times as float64, nulls where there is no value)."""
        pa = _frames.pyarrow()
        lead = len(self.columns) - len(self.features)
        columns = list(zip(*self.rows, strict=True)) if self.rows else [()] * len(self.columns)
        if self.entity_rows is not None:
            table = self.entity_rows
        else:
            table = pa.table({self.columns[0]: pa.array(columns[0]),
                              self.columns[1]: pa.array(columns[1], type=pa.int64())})
        view = self._view
        if view is None:  # pragma: no cover - always set by get_historical_features
            arrays = [pa.array(c) for c in columns[lead:]]
        else:
            arrays = _frames.feature_arrays(view, self.features, columns[lead:])
        for name, array in zip(self.features, arrays, strict=True):
            table = table.append_column(name, array)
        return table

    def to_pandas(self) -> Any:
        """A pandas DataFrame (via :meth:`to_arrow`: missing numbers are NaN)."""
        return self.to_arrow().to_pandas()

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_arrow` to a Parquet file; returns its path."""
        _frames.pyarrow()
        import pyarrow.parquet as pq

        pq.write_table(self.to_arrow(), str(path))
        return Path(path)


def get_historical_features(
    log: Log,
    view: FeatureView,
    entity_rows: Sequence[EntityRow] | Any,
    *,
    features: Sequence[str] | None = None,
    entity_column: str | None = None,
    timestamp_column: str = TIMESTAMP_COLUMN,
    decode: Callable[[bytes], Any] = orjson.loads,
    timeout_s: float = 120.0,
    workers: int | None = None,
    from_offsets: Mapping[int, int] | None = None,
) -> HistoricalFeatures:
    """The values of ``features`` (default: all of ``view``'s) at each entity row.

    ``entity_rows``: ``(key, time_ms)`` pairs (times may also be aware datetimes), or
    a pandas DataFrame / pyarrow Table with columns ``entity_column`` (default: the
    view's entity) and ``timestamp_column`` (int ms, or datetimes of any unit; naive
    means UTC); its other columns are carried through. Reads ``view.source`` from its
    start (every partition), keeps the asked keys' events (only the fields the
    features read), and replays each key's events in log order (see the module's
    docstring). Keys are swept by ``workers`` forked processes (default: one per CPU)
    when there are many events. ``from_offsets`` (partition → offset) skips what came
    before, e.g. to replay only one run of a pipeline.
    """
    wanted = list(features) if features is not None else view.feature_names
    unknown = sorted(set(wanted) - set(view.feature_names))
    if unknown:
        raise ValueError(f"feature view {view.name!r} has no features {unknown}: it has {view.feature_names}")
    table = _frames.as_table(entity_rows)
    if table is None:
        keys, times = _pairs(entity_rows)
    else:
        keys, times = _frames.keys_and_times(
            table, _frames.entity_column_of(view, entity_column), timestamp_column, wanted
        )
    by_key: dict[Any, list[tuple[int, int]]] = defaultdict(list)
    for i, (key, t) in enumerate(zip(keys, times, strict=True)):
        by_key[key].append((t, i))
    values, read = _retrieve(log, view, wanted, by_key, "time", decode, timeout_s, workers, dict(from_offsets or {}))
    nones = (None,) * len(wanted)
    if table is None:
        rows = [(key, t, *(values.get(i) or nones)) for i, (key, t) in enumerate(zip(keys, times, strict=True))]
        return HistoricalFeatures(view.name, ["entity", "event_timestamp_ms", *wanted], rows, read,
                                  wanted, None, view)
    lead = [table.column(name).to_pylist() for name in table.column_names]
    found = [values.get(i) or nones for i in range(len(keys))]
    rows = list(zip(*lead, *zip(*found, strict=True), strict=True)) if keys else []
    return HistoricalFeatures(view.name, [*table.column_names, *wanted], rows, read, wanted, table, view)


def _pairs(entity_rows: Any) -> tuple[list[Any], list[int]]:
    """Keys and int-ms times of ``(key, time)`` pairs (times: numbers or datetimes)."""
    keys: list[Any] = []
    times: list[int] = []
    try:
        for key, t in entity_rows:
            keys.append(key)
            times.append(t if type(t) is int else _ms(t))
    except (TypeError, ValueError) as e:
        at = len(times)  # the row that failed
        raise ValueError(f"entity row {at}: want (key, time in ms or a datetime), got {_nth(entity_rows, at)!r} ({e})") from None
    return keys, times


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _ms(t: Any) -> int:
    if isinstance(t, datetime):
        aware = t if t.tzinfo is not None else t.replace(tzinfo=UTC)  # naive means UTC
        return (aware - _EPOCH) // _MS  # floored: exact, no float
    if isinstance(t, (bool, str, bytes)) or t is None:
        raise TypeError(f"a time must be int ms or a datetime, not {type(t).__name__}")
    return int(t)


def _nth(rows: Any, i: int) -> Any:
    try:
        return rows[i]
    except Exception:
        return "?"


def _historical_by_arrival(
    log: Log, view: FeatureView, asks: Sequence[tuple[Any, int]], *,
    decode: Callable[[bytes], Any] = orjson.loads, timeout_s: float = 120.0,
    from_offsets: Mapping[int, int] | None = None,
) -> tuple[list[tuple[Any, ...]], int]:
    """Per ``(key, n)``: the view's values once the key's first ``n`` events (from
    ``from_offsets``) have been offered, at its stream time then: what the pipeline
    served for its ``n``-th event (served records carry ``n``). Returns the feature
    tuples in ``view.feature_names`` order, and the records read."""
    wanted = view.feature_names
    by_key: dict[Any, list[tuple[int, int]]] = defaultdict(list)
    for i, (key, n) in enumerate(asks):
        by_key[key].append((int(n), i))
    values, read = _retrieve(log, view, wanted, by_key, "arrival", decode, timeout_s, None, dict(from_offsets or {}))
    nones = (None,) * len(wanted)
    return [values.get(i) or nones for i in range(len(asks))], read


def _retrieve(
    log: Log, view: FeatureView, wanted: list[str], by_key: dict[Any, list[tuple[int, int]]], mode: str,
    decode: Callable[[bytes], Any], timeout_s: float, workers: int | None, starts: dict[int, int],
) -> tuple[dict[int, tuple[Any, ...]], int]:
    """Row index → feature values (rows of keys without events are left out), and the
    records read."""
    done = _by_partition(log, view, wanted, by_key, decode, timeout_s, workers, starts, mode)
    if done is None:  # one process: read everything, then sweep
        events, read, keyed = _load_events(log, view, set(by_key), decode, timeout_s, starts=starts)
        done = (_SWEEPS[mode](view, wanted, list(by_key), events, by_key, keyed), read)
    rows, read = done
    return dict(rows), read


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
        for record in _records(log, view.source, timeout_s):
            if record.offset < starts.get(record.partition, 0):
                continue
            read += 1
            if record.value is None:
                continue
            value = decode(record.value)
            key = view.key_of(value)
            if keyed and record.key != str(key).encode():
                keyed = False
            if key in keys:
                events[key].append((view.time_of(value, record.timestamp_ms), project(value)))
    return events, read, keyed


def _by_partition(
    log: Log, view: FeatureView, wanted: list[str], by_key: dict[Any, list[tuple[int, int]]],
    decode: Callable[[bytes], Any], timeout_s: float, workers: int | None,
    starts: Mapping[int, int], mode: str = "time",
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
    _SHARED = (log.url, view, wanted, by_key, decode, timeout_s, starts, mode)
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

    url, view, wanted, by_key, decode, timeout_s, starts, mode = _SHARED
    log = open_log(url)  # a connection of this process's own
    events, read, keyed = _load_events(log, view, set(by_key), decode, timeout_s, partitions, starts)
    if not keyed:
        return [], read, False
    return _SWEEPS[mode](view, wanted, list(events), events, by_key, True), read, True


def _sweep(
    view: FeatureView, wanted: list[str], keys: list[Any], events: Events,
    by_key: dict[Any, list[tuple[int, int]]], in_log_order: bool,
) -> Rows:
    """For each key: its events in log order (else stably by time), each asked time
    answered just before the first event later than it is folded in (the stream
    passing it), late events dropped as online."""
    out: Rows = []
    append = out.append
    first = itemgetter(0)
    for key in keys:
        asks = sorted(by_key[key])
        evs = events.get(key)
        if not evs:
            continue  # every value None: filled by the caller
        if not in_log_order:
            evs = sorted(evs, key=first)
        state = EntityState(view)
        fold, values_at = state.fold, state.values_at
        k, m = 0, len(asks)
        upto = asks[0][0]  # the next asked time
        for t, projected in evs:
            if t > upto:  # the stream passes asked times: answer them before this event
                while k < m and asks[k][0] < t:
                    at, i = asks[k]
                    values = values_at(at)
                    append((i, tuple([values[name] for name in wanted])))
                    k += 1
                if k == m:
                    break
                upto = asks[k][0]
            fold(projected, t)
        for at, i in asks[k:]:
            values = values_at(at)
            append((i, tuple([values[name] for name in wanted])))
    return out


def _sweep_arrivals(
    view: FeatureView, wanted: list[str], keys: list[Any], events: Events,
    by_key: dict[Any, list[tuple[int, int]]], in_log_order: bool,
) -> Rows:
    """For each key: its events in log order; an ask ``(n, i)`` is answered once ``n``
    events have been offered, at the stream time then (what online served)."""
    out: Rows = []
    first = itemgetter(0)
    for key in keys:
        asks = sorted(by_key[key])
        evs = events.get(key) or []
        if not in_log_order:
            evs = sorted(evs, key=first)
        state = EntityState(view)
        k, m = 0, len(asks)
        for t, projected in evs:
            if k == m:
                break
            state.fold(projected, t)
            while k < m and asks[k][0] <= state.seen:
                out.append((asks[k][1], _at_stream_time(state, wanted)))
                k += 1
        out.extend((i, _at_stream_time(state, wanted)) for _, i in asks[k:])  # more than were read
    return out


def _at_stream_time(state: EntityState, wanted: list[str]) -> tuple[Any, ...]:
    if state.last_ms is None:
        return (None,) * len(wanted)
    values = state.values_at(state.last_ms)
    return tuple([values[name] for name in wanted])


_SWEEPS: dict[str, Callable[..., Rows]] = {"time": _sweep, "arrival": _sweep_arrivals}


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
