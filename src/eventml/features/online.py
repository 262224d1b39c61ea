"""Feature views in a pipeline, and the online store that serves them.

:func:`materialize` adds a view to an :class:`~eventml.engine.App`: each event of the
view's source folds into its entity's :class:`~eventml.features.state.EntityState`,
kept in a state store that commits with the batch (exactly-once), and the new state
goes to a compacted topic ``<app>-features-<view>`` in the same transaction. With
``log_served=True`` the values computed for each event (what a model scoring that
event sees) also go to ``<app>-features-<view>-served``, the record
:func:`~eventml.features.verify.verify_served` compares with historical retrieval.

Events fold in log (arrival) order per entity; one later than the view's
``allowed_lateness_ms`` behind the entity's newest event is dropped for the view: it
still gets a served record (the values as they stand, marked ``"late": true``), and
it is counted per entity in the state and per process in
``FeatureTopics.stats.late``. Dropped events are not dead-lettered: the source topic
keeps them, and :attr:`~eventml.features.state.EntityState.late` says how many.

:class:`OnlineStore` tails the compacted topic (any process, any machine that reaches
the log) and answers ``get_online_features(keys)`` from memory, as of the view's
stream time (the newest event time seen) or a time given.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from eventml.engine import App, KeyState, Stream
from eventml.features._serving import ServedValues, select
from eventml.features.spec import FeatureView
from eventml.features.state import EntityState, json_snapshot_bytes
from eventml.log.base import Log, LogError, TopicPartition
from eventml.state._tail import read_rows


@dataclass(slots=True)
class FeatureStats:
    """Counters of a materialized view in this process, since it started (a batch
    retried after a failure counts again; the per-entity counts in the state are exact)."""

    late: int = 0  # events dropped for arriving later than the view's allowed lateness


@dataclass(frozen=True, slots=True)
class FeatureTopics:
    """Where a materialized view writes: its online state and, optionally, served values."""

    online: str
    served: str | None
    store: str
    stats: FeatureStats = field(default_factory=FeatureStats, compare=False)
    values: Stream | None = field(default=None, compare=False)  # each event with its values


def online_topic(app: str, view: FeatureView) -> str:
    return f"{app}-features-{view.name}"


_MATERIALIZED: weakref.WeakKeyDictionary[App, dict[str, tuple[FeatureView, FeatureTopics]]] = (
    weakref.WeakKeyDictionary()
)


def materialized(app: App) -> dict[str, tuple[FeatureView, FeatureTopics]]:
    """The views :func:`materialize` added to ``app``, by name, with their topics (what
    ``eventml serve --app`` serves)."""
    return dict(_MATERIALIZED.get(app, {}))


def materialize(
    app: App, view: FeatureView, *, log_served: bool = False, rekey: bool = False,
    stream: Stream | None = None,
) -> FeatureTopics:
    """Compute ``view`` in ``app``. The source must be keyed by the entity, or pass
    ``rekey=True`` to re-key it through a repartition topic first.

    ``stream`` (a stream of ``view.source``, keyed by the entity) is where to fold, when
    the app scores on the view: :attr:`FeatureTopics.values` is then the stream of each
    event with the values it was served (``{"event", "entity", "t", "values", ...}``),
    so a model reads exactly what the online store and the skew check see."""
    source = app.topics.get(view.source) or app.topic(view.source)
    store = f"features-{view.name}"
    if stream is None:
        stream = app.stream(source)
        if rekey:
            stream = stream.key_by(view.key_of)

    stats = FeatureStats()
    # the live EntityState per key, reused while the store still holds the very state
    # object it last wrote (after a rollback or a restore it holds another: rebuild)
    live: dict[str, tuple[object, EntityState]] = {}

    def fold(value: Any, state: KeyState) -> dict[str, Any]:
        t = view.time_of(value, state.time_ms)
        raw = state.get("s")
        hit = live.pop(state.key, None)  # back only once this event is folded in whole
        if hit is not None and raw is not None and hit[0] is raw:
            entity = hit[1]
        else:
            entity = EntityState(view) if raw is None else EntityState.from_raw(view, raw)
        accepted = entity.update(value, t)
        if not accepted:
            stats.late += 1
        last_ms = entity.last_ms
        assert last_ms is not None
        entity.compact(last_ms)
        # pickled: one bytes object per event, not a tree of tuples and dicts that the
        # garbage collector would walk until the store drops it
        raw = entity.packed()
        state["s"] = raw
        live[state.key] = (raw, entity)
        return {"entity": state.key, "t": t, "raw": raw, "n": entity.seen, "late": not accepted,
                "values": entity.values_at(t if t > last_ms else last_ms), "event": value}

    def newest_per_entity(values: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """One online record per entity and batch (its newest state, as JSON: serialized
        here, embedded as is when the record is)."""
        last = {v["entity"]: i for i, v in enumerate(values)}
        return [
            {"entity": v["entity"], "t": v["t"], "state": orjson.Fragment(json_snapshot_bytes(v["raw"]))}
            if last[v["entity"]] == i else None
            for i, v in enumerate(values)
        ]

    folded = stream.process(fold, state=store)
    topics = FeatureTopics(
        online_topic(app.name, view),
        f"{online_topic(app.name, view)}-served" if log_served else None,
        store,
        stats,
        folded,
    )
    online = app.topic(topics.online, partitions=source.partitions, compact=True)
    folded.map_batch(newest_per_entity).filter(lambda v: v is not None).to(online)
    if topics.served is not None:
        served = app.topic(topics.served, partitions=source.partitions)
        # "n": the event's place in its entity's arrivals, which verify_served replays to
        folded.map(lambda v: {"entity": v["entity"], "t": v["t"], "n": v["n"], "late": v["late"],
                              "values": v["values"]}).to(served)
    _MATERIALIZED.setdefault(app, {})[view.name] = (view, topics)
    return topics


class OnlineStore:
    """The latest state of every entity of ``view``, read from its online topic."""

    def __init__(
        self, log: Log, view: FeatureView, topic: str, *, stale_after_s: float = 0.5,
        timeout_s: float = 30.0,
    ) -> None:
        self.log, self.view, self.topic = log, view, topic
        self.stale_after_s, self.timeout_s = stale_after_s, timeout_s
        self._snaps: dict[str, dict[str, Any]] = {}
        self._states: dict[str, EntityState] = {}
        self._served = ServedValues(view)  # the serving rules, shared with RedisOnlineStore
        self._positions: dict[int, int] = {}
        self.stream_time_ms: int | None = None
        self._lock = threading.Lock()
        self._refreshed = -float("inf")

    def refresh(self) -> int:
        """Read what was appended since the last refresh; returns the records read."""
        with self._lock:
            read = 0
            try:
                ends = self.log.end_offsets(self.topic)
            except LogError:
                return 0  # not created yet: nothing to serve
            for partition, end in ends.items():
                start = self._positions.get(partition, 0)
                if end <= start:
                    continue
                tp = TopicPartition(self.topic, partition)
                rows, position = read_rows(self.log, tp, self.timeout_s, start, end)
                for key, value, _headers in rows:
                    read += 1
                    if key is None or value is None:
                        continue
                    record = orjson.loads(value)
                    entity = key.decode()
                    self._snaps[entity] = record["state"]
                    self._states.pop(entity, None)
                    self._served.forget(entity)
                    t = int(record["t"])
                    if self.stream_time_ms is None or t > self.stream_time_ms:
                        self.stream_time_ms = t
                self._positions[partition] = position  # a transaction still committing is read next time
            self._refreshed = time.monotonic()
            return read

    def get_online_features(
        self, keys: Iterable[Any], *, at_ms: int | None = None, features: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """Per key, the view's values as of ``at_ms`` (default: the stream time); a key
        with no events (or past the TTL) gets ``None`` values."""
        if time.monotonic() - self._refreshed > self.stale_after_s:
            self.refresh()
        names = list(features) if features is not None else self.view.feature_names
        out = []
        for key in keys:
            entity = str(key)
            values = self._served.values_of(entity, self._state(entity), at_ms, self.stream_time_ms)
            out.append(select(values, names))
        return out

    def _state(self, key: str) -> EntityState | None:
        state = self._states.get(key)
        if state is None:
            snap = self._snaps.get(key)
            if snap is None:
                return None
            state = self._states[key] = EntityState.restore(self.view, snap)
        return state

    def __len__(self) -> int:
        return len(self._snaps)
