"""Feature views in a pipeline, and the online store that serves them.

:func:`materialize` adds a view to an :class:`~eventml.engine.App`: each event of the
view's source folds into its entity's :class:`~eventml.features.state.EntityState`,
kept in a state store that commits with the batch (exactly-once), and the new state
goes to a compacted topic ``<app>-features-<view>`` in the same transaction. With
``log_served=True`` the values computed for each event (what a model scoring that
event sees) also go to ``<app>-features-<view>-served``, the record
:func:`~eventml.features.verify.verify_served` compares with historical retrieval.

:class:`OnlineStore` tails the compacted topic (any process, any machine that reaches
the log) and answers ``get_online_features(keys)`` from memory, as of the view's
stream time (the newest event time seen) or a time given.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from eventml.engine import App, KeyState
from eventml.features.spec import FeatureView
from eventml.features.state import EntityState, json_snapshot
from eventml.log.base import Log, LogError, TopicPartition
from eventml.state._tail import read_rows


@dataclass(frozen=True, slots=True)
class FeatureTopics:
    """Where a materialized view writes: its online state and, optionally, served values."""

    online: str
    served: str | None
    store: str


def online_topic(app: str, view: FeatureView) -> str:
    return f"{app}-features-{view.name}"


def materialize(app: App, view: FeatureView, *, log_served: bool = False, rekey: bool = False) -> FeatureTopics:
    """Compute ``view`` in ``app``. The source must be keyed by the entity, or pass
    ``rekey=True`` to re-key it through a repartition topic first."""
    source = app.topics.get(view.source) or app.topic(view.source)
    store = f"features-{view.name}"
    topics = FeatureTopics(
        online_topic(app.name, view),
        f"{online_topic(app.name, view)}-served" if log_served else None,
        store,
    )
    stream = app.stream(source)
    if rekey:
        stream = stream.key_by(view.key_of)

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
        entity.update(value, t)
        assert entity.last_ms is not None
        entity.compact(entity.last_ms)
        raw = entity.raw()
        state["s"] = raw
        live[state.key] = (raw, entity)
        return {"entity": state.key, "t": t, "raw": raw,
                "values": entity.values_at(max(t, entity.last_ms))}

    def newest_per_entity(values: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """One online record per entity and batch (its newest state, as JSON)."""
        last = {v["entity"]: i for i, v in enumerate(values)}
        return [
            {"entity": v["entity"], "t": v["t"], "state": json_snapshot(v["raw"])}
            if last[v["entity"]] == i else None
            for i, v in enumerate(values)
        ]

    folded = stream.process(fold, state=store)
    online = app.topic(topics.online, partitions=source.partitions, compact=True)
    folded.map_batch(newest_per_entity).filter(lambda v: v is not None).to(online)
    if topics.served is not None:
        served = app.topic(topics.served, partitions=source.partitions)
        folded.map(lambda v: {"entity": v["entity"], "t": v["t"], "values": v["values"]}).to(served)
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
        # per key: (time bucket, values) — windowed values only change when the asked
        # time crosses a tile boundary, so a bucket of the tiles' gcd can be reused
        self._values: dict[str, tuple[int, dict[str, Any]]] = {}
        tiles = [f.tile for f in view.features if f.kind == "window"]
        self._bucket_ms = math.gcd(*tiles) if tiles else 1
        self._exact = [f.name for f in view.features if f.kind != "window"]
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
                    self._values.pop(entity, None)
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
            values = self._values_of(str(key), at_ms)
            out.append(dict.fromkeys(names) if values is None else {n: values[n] for n in names})
        return out

    def _values_of(self, key: str, at_ms: int | None) -> dict[str, Any] | None:
        entity = self._state(key)
        if entity is None or entity.last_ms is None:
            return None
        at = at_ms if at_ms is not None else (self.stream_time_ms or entity.last_ms)
        at = max(at, entity.last_ms)
        ttl = self.view.ttl_ms
        if ttl is not None and at - entity.last_ms > ttl:
            return None
        bucket = at // self._bucket_ms
        hit = self._values.get(key)
        if hit is not None and hit[0] == bucket:
            if not self._exact:
                return hit[1]
            values = dict(hit[1])
            values.update(entity.exact_values_at(at))  # since_last: the exact time
            return values
        values = entity.values_at(at)
        self._values[key] = (bucket, values)
        return values

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
