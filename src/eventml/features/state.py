"""The pure per-entity logic of a feature view: fold events in, read values as of a time.

One :class:`EntityState` per entity key. ``update(value, time_ms)`` folds an event in;
``values_at(t)`` returns every feature as of ``t``, using only events at or before
``t`` (events later than ``t`` already folded in are excluded tile by tile, so asking
for a past time never leaks the future). Online serving and historical retrieval both
run this class, which is what keeps them equal.

Windows keep one accumulator per tile (partial aggregates): a 24 h window of 24 min
tiles holds at most 61 of them per feature, however many events the entity has.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterable
from typing import Any

from eventml.features.spec import Feature, FeatureView


class _Tiles:
    """Tile index → accumulator for one windowed feature of one entity; times sorted."""

    __slots__ = ("acc", "agg", "feature", "order", "tile", "tiles")

    def __init__(self, feature: Feature) -> None:
        assert feature.aggregator is not None
        self.feature = feature
        self.agg = feature.aggregator
        self.tile = feature.tile  # cached: the hot path reads them per event
        self.tiles = feature.tiles
        self.acc: dict[int, Any] = {}
        self.order: list[int] = []  # tile indexes, ascending

    def add(self, value: Any, time_ms: int) -> None:
        tile = time_ms // self.tile
        acc = self.acc.get(tile)
        if acc is None:
            acc = self.agg.initialize()
            if not self.order or tile > self.order[-1]:
                self.order.append(tile)
            else:
                insort(self.order, tile)
        self.acc[tile] = self.agg.add(acc, value)

    def value_at(self, time_ms: int) -> Any:
        """The window ending at ``time_ms``: the tiles from ``window/tile - 1`` before
        ``time_ms``'s tile up to it (the caller guarantees no event after ``time_ms``
        has been folded in, so the last tile holds only events at or before it)."""
        agg = self.agg
        last = time_ms // self.tile
        order = self.order
        lo = bisect_right(order, last - self.tiles)
        hi = bisect_right(order, last)
        acc = agg.initialize()
        for tile in order[lo:hi]:
            acc = agg.merge(acc, self.acc[tile])
        return agg.result(acc)

    def expire(self, before_tile: int) -> None:
        cut = bisect_right(self.order, before_tile - 1)
        for tile in self.order[:cut]:
            del self.acc[tile]
        del self.order[:cut]


class EntityState:
    """All features of ``view`` for one entity key.

    Events should come in event-time order per key (the log's order for a keyed
    topic). ``values_at(t)`` for ``t`` earlier than an event already folded in raises
    :class:`ValueError`: a state only answers for times at or after its newest event,
    or it would include that event. Historical retrieval therefore sweeps each key's
    events and requested times in time order.
    """

    __slots__ = ("_fold_plan", "_tiles", "fields", "last_ms", "previous_ms", "view")

    def __init__(self, view: FeatureView) -> None:
        self.view = view
        self._tiles = [_Tiles(f) if f.kind == "window" else None for f in view.features]
        #: the distinct value fields the features read; :meth:`project` keeps only these
        self.fields: tuple[str, ...] = tuple(dict.fromkeys(f.field for f in view.features if f.field))
        where = {name: i for i, name in enumerate(self.fields)}
        self._fold_plan = [
            (tiles, None if f.field is None else where[f.field])
            for tiles, f in zip(self._tiles, view.features, strict=True)
            if tiles is not None
        ]
        self.last_ms: int | None = None  # the newest event folded in
        self.previous_ms: int | None = None  # the one before it

    def project(self, value: Any) -> tuple[Any, ...]:
        """What the features read of an event: its :attr:`fields`, in order."""
        return tuple(value[name] for name in self.fields)

    def update(self, value: Any, time_ms: int) -> None:
        """Fold one event (its decoded value, its event time) in."""
        self.fold(self.project(value), time_ms)

    def fold(self, projected: tuple[Any, ...], time_ms: int) -> None:
        """Fold one event given as :meth:`project` made it (historical retrieval keeps
        events in this slim form)."""
        for tiles, index in self._fold_plan:
            tiles.add(None if index is None else projected[index], time_ms)
        if self.last_ms is None or time_ms >= self.last_ms:
            self.previous_ms, self.last_ms = self.last_ms, time_ms
        elif self.previous_ms is None or time_ms > self.previous_ms:
            self.previous_ms = time_ms

    def values_at(self, time_ms: int) -> dict[str, Any]:
        """Every feature as of ``time_ms`` (None for all of them if the entity's newest
        event is older than the view's TTL, or there is none)."""
        if self.last_ms is not None and time_ms < self.last_ms:
            raise ValueError(
                f"asked for time {time_ms}, but an event at {self.last_ms} is already folded in"
            )
        names = self.view.feature_names
        ttl = self.view.ttl_ms
        if self.last_ms is None or (ttl is not None and time_ms - self.last_ms > ttl):
            return dict.fromkeys(names)
        out: dict[str, Any] = {}
        for name, tiles in zip(names, self._tiles, strict=True):
            out[name] = self._since(time_ms) if tiles is None else tiles.value_at(time_ms)
        return out

    def exact_values_at(self, time_ms: int) -> dict[str, Any]:
        """Only the features that change with every millisecond (time since last):
        cheap, for callers that cache the windowed values per tile."""
        return {f.name: self._since(time_ms) for f in self.view.features if f.kind != "window"}

    def _since(self, time_ms: int) -> float | None:
        """Seconds from the latest event strictly before ``time_ms`` (needs an event)."""
        assert self.last_ms is not None
        before = self.last_ms if time_ms > self.last_ms else self.previous_ms
        return None if before is None else (time_ms - before) / 1000

    def raw(self) -> RawState:
        """The state as plain Python data, cheap to take (C-level copies): for state
        stores, which pickle it. :meth:`snapshot` is the JSON form."""
        return (
            self.last_ms,
            self.previous_ms,
            tuple(None if t is None else (tuple(t.order), dict(t.acc)) for t in self._tiles),
        )

    @classmethod
    def from_raw(cls, view: FeatureView, raw: RawState) -> EntityState:
        """The state :meth:`raw` took, for ``view`` (the same features)."""
        state = cls(view)
        state.last_ms, state.previous_ms, saved = raw
        if len(saved) != len(state._tiles):
            raise ValueError(f"state of {len(saved)} features, view {view.name!r} has {len(state._tiles)}")
        for tiles, kept in zip(state._tiles, saved, strict=True):
            if tiles is not None and kept is not None:
                tiles.order, tiles.acc = list(kept[0]), dict(kept[1])
        return state

    def snapshot(self) -> dict[str, Any]:
        """The state as JSON-able data (no references to the view): per windowed
        feature its ``[tile, accumulator]`` pairs, and the two newest event times."""
        return json_snapshot(self.raw())

    @classmethod
    def restore(cls, view: FeatureView, snap: dict[str, Any]) -> EntityState:
        """The state :meth:`snapshot` described, for ``view`` (the same features)."""
        state = cls(view)
        state.last_ms, state.previous_ms = snap["last"], snap["prev"]
        if len(snap["tiles"]) != len(state._tiles):
            raise ValueError(f"snapshot of {len(snap['tiles'])} features, view {view.name!r} has {len(state._tiles)}")
        for tiles, saved in zip(state._tiles, snap["tiles"], strict=True):
            if tiles is None or saved is None:
                continue
            for i, acc in saved:
                tiles.acc[i] = _acc_in(acc)
                tiles.order.append(i)
        return state

    def compact(self, now_ms: int) -> None:
        """Drop tiles no window ending at or after ``now_ms`` can need."""
        for tiles in self._tiles:
            if tiles is not None:
                tiles.expire(now_ms // tiles.tile - tiles.tiles + 1)


RawState = tuple[int | None, int | None, tuple[tuple[tuple[int, ...], dict[int, Any]] | None, ...]]


def json_snapshot(raw: RawState) -> dict[str, Any]:
    """:meth:`EntityState.raw` as the JSON form :meth:`EntityState.restore` reads."""
    last, previous, saved = raw
    tiles = [None if kept is None else [[i, _acc_out(kept[1][i])] for i in kept[0]] for kept in saved]
    return {"v": 1, "last": last, "prev": previous, "tiles": tiles}


def _acc_out(acc: Any) -> Any:
    """An accumulator as JSON: tuples as lists, sets as sorted ``{"set": [...]}``."""
    if isinstance(acc, frozenset):
        return {"set": sorted(acc, key=repr)}
    if isinstance(acc, tuple):
        return list(acc)
    return acc


def _acc_in(obj: Any) -> Any:
    if isinstance(obj, dict) and "set" in obj:
        return frozenset(obj["set"])
    if isinstance(obj, list):
        return tuple(obj)
    return obj


def replay(view: FeatureView, events: Iterable[tuple[Any, int]], at_ms: int) -> dict[str, Any]:
    """The view's values for one entity after ``events`` ((value, time) pairs), at ``at_ms``."""
    state = EntityState(view)
    for value, t in events:
        if t <= at_ms:
            state.update(value, t)
    return state.values_at(at_ms)
