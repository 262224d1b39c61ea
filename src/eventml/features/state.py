"""The pure per-entity logic of a feature view: fold events in, read values as of a time.

One :class:`EntityState` per entity key. ``update(value, time_ms)`` folds an event in;
``values_at(t)`` returns every feature as of ``t``, for ``t`` at or after the newest
event folded in (so asking never includes a later event). Online serving and
historical retrieval both run this class, which is what keeps them equal.

Events are offered in log (arrival) order. The entity's stream time is the newest event
time offered so far (:attr:`EntityState.last_ms`); an event older than
``stream time - view.allowed_lateness_ms`` is dropped and counted
(:attr:`EntityState.late`), any other is folded into the tile of its own time, late or
not. Values are only ever read at or after the stream time, so compaction keeps exactly
the tiles a window ending there can hold; a late event in an older tile could only
change windows that ended before the stream time, which nobody can ask for any more
(:meth:`EntityState.compact` explains why no extra tiles are kept for lateness).

Windows keep one accumulator per tile (partial aggregates): a 24 h window of 24 min
tiles holds at most 61 of them per feature, however many events the entity has.
Features whose windows have the same tiles share one list of tile indexes (a *lane*):
an event finds its tile once per lane, and a read slices the window's tiles once per lane.
"""

from __future__ import annotations

import pickle
import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from functools import reduce
from operator import add, itemgetter
from typing import Any, NamedTuple

import orjson

from eventml.features.spec import CountDistinct, FeatureView
from eventml.windows import Count, Max, Mean, Min, Sum

Reducer = Callable[[dict[int, Any], list[int]], Any]


def _reducer(agg: Any) -> Reducer:
    """``result(merge(...merge(initialize(), acc[t0])..., acc[tn]))`` over the tiles ``ts``
    for ``agg``: C-level for the built-in aggregators (the very same operations in the
    same order, so the same values to the last bit), else by the aggregator's methods."""
    kind = type(agg)
    if kind is Count or kind is Sum:  # merge is a + b from 0
        return lambda acc, ts: reduce(add, map(acc.__getitem__, ts), 0)
    if kind is Mean:  # (count, sum) merged member-wise from (0, 0.0)
        first, second = itemgetter(0), itemgetter(1)

        def mean(acc: dict[int, Any], ts: list[int]) -> Any:
            accs = list(map(acc.__getitem__, ts))
            n = reduce(add, map(first, accs), 0)
            return reduce(add, map(second, accs), 0.0) / n if n else None
        return mean
    if kind is Max or kind is Min:  # None is the identity; else the first extreme wins, as max()/min()
        pick = max if kind is Max else min

        def extreme(acc: dict[int, Any], ts: list[int]) -> Any:
            values = [v for v in map(acc.__getitem__, ts) if v is not None]
            return pick(values) if values else None
        return extreme
    if kind is CountDistinct:  # the size of the union
        return lambda acc, ts: len(frozenset().union(*map(acc.__getitem__, ts)))
    initialize, merge, result = agg.initialize, agg.merge, agg.result
    return lambda acc, ts: result(reduce(merge, map(acc.__getitem__, ts), initialize()))


class _Lane(NamedTuple):
    """The windowed features sharing one tile length and window: they hold the same
    tiles, so an entity keeps one sorted list of tile indexes for all of them."""

    tile: int
    tiles: int
    members: tuple[int, ...]  # indexes in the view's features
    #: per member: its add, its initialize, and where its field is in a projection
    plan: tuple[tuple[Callable[[Any, Any], Any], Callable[[], Any], int | None], ...]


class _Layout:
    """What every :class:`EntityState` of one view shares (built once per view): the
    lanes, and per feature its lane and its reducer (None: since_last)."""

    __slots__ = ("__weakref__", "lanes", "reads")

    def __init__(self, view: FeatureView, fields: tuple[str, ...]) -> None:
        where = {name: i for i, name in enumerate(fields)}
        grouped: dict[tuple[int, int], list[int]] = {}
        for i, f in enumerate(view.features):
            if f.kind == "window":
                grouped.setdefault((f.tile, f.tiles), []).append(i)
        lanes = []
        for (tile, tiles), members in grouped.items():
            aggs = [view.features[i].aggregator for i in members]
            lanes.append(_Lane(tile, tiles, tuple(members), tuple(
                (agg.add, agg.initialize, None if (fld := view.features[i].field) is None else where[fld])
                for i, agg in zip(members, aggs, strict=True) if agg is not None
            )))
        self.lanes = tuple(lanes)
        lane_of = {i: n for n, lane in enumerate(self.lanes) for i in lane.members}
        self.reads = tuple(
            None if f.kind != "window" else (lane_of[i], _reducer(f.aggregator))
            for i, f in enumerate(view.features)
        )


_LAYOUTS: dict[int, tuple[weakref.ref[FeatureView], tuple[str, ...], _Layout]] = {}


def _layout_of(view: FeatureView) -> tuple[tuple[str, ...], _Layout]:
    """The fields and layout of ``view``, built on first use (and forgotten with it)."""
    hit = _LAYOUTS.get(id(view))
    if hit is not None and hit[0]() is view:
        return hit[1], hit[2]
    fields = tuple(dict.fromkeys(f.field for f in view.features if f.field))
    layout = _Layout(view, fields)
    key = id(view)
    _LAYOUTS[key] = (weakref.ref(view), fields, layout)
    weakref.finalize(view, _LAYOUTS.pop, key, None)
    return fields, layout


class _Tiles(NamedTuple):
    """One windowed feature's tiles (a view for tests and debugging): the lane's tile
    indexes, ascending, and the feature's accumulator per tile."""

    order: list[int]
    acc: dict[int, Any]


class EntityState:
    """All features of ``view`` for one entity key.

    Events come in log (arrival) order per key; one later than the allowed lateness
    behind :attr:`last_ms` is dropped (``update``/``fold`` return ``False``).
    ``values_at(t)`` for ``t`` earlier than an event already folded in raises
    :class:`ValueError`: a state only answers for times at or after its newest event,
    or it would include that event. Historical retrieval therefore answers each asked
    time before the first event that takes the stream time past it.
    """

    # per entity only its data: per lane its tile indexes, per feature its accumulators
    # (None: since_last); what the view's states share is in the view's _Layout
    __slots__ = ("_accs", "_layout", "_orders", "fields", "last_ms", "late", "previous_ms", "seen",
                 "view")

    def __init__(self, view: FeatureView) -> None:
        self.view = view
        #: the distinct value fields the features read; :meth:`project` keeps only these
        self.fields: tuple[str, ...]
        self.fields, self._layout = _layout_of(view)
        self._orders: list[list[int]] = [[] for _ in self._layout.lanes]
        self._accs: list[dict[int, Any] | None] = [None if r is None else {} for r in self._layout.reads]
        self.last_ms: int | None = None  # the newest event folded in: the entity's stream time
        self.previous_ms: int | None = None  # the one before it
        #: events offered (folded or dropped): the position in the entity's arrivals
        self.seen = 0
        #: events dropped for arriving later than the view's allowed lateness
        self.late = 0

    @property
    def _tiles(self) -> list[_Tiles | None]:
        """Per feature its tiles (None: not windowed)."""
        lanes = {i: n for n, lane in enumerate(self._layout.lanes) for i in lane.members}
        return [None if acc is None else _Tiles(self._orders[lanes[i]], acc) for i, acc in enumerate(self._accs)]

    def project(self, value: Any) -> tuple[Any, ...]:
        """What the features read of an event: its :attr:`fields`, in order."""
        return tuple(value[name] for name in self.fields)

    def update(self, value: Any, time_ms: int) -> bool:
        """Fold one event (its decoded value, its event time) in; ``False`` if it came
        later than the allowed lateness and was dropped."""
        return self.fold(self.project(value), time_ms)

    def fold(self, projected: tuple[Any, ...], time_ms: int) -> bool:
        """Fold one event given as :meth:`project` made it (historical retrieval keeps
        events in this slim form); ``False`` if it was dropped as too late."""
        self.seen += 1
        last = self.last_ms
        if last is not None and time_ms < last - self.view.allowed_lateness_ms:
            self.late += 1
            return False
        accs = self._accs
        for lane, order in zip(self._layout.lanes, self._orders, strict=True):
            tile = time_ms // lane.tile
            if order and tile == order[-1]:
                new = False
            elif not order or tile > order[-1]:
                order.append(tile)
                new = True
            else:
                at = bisect_left(order, tile)
                new = order[at] != tile
                if new:
                    order.insert(at, tile)
            for i, (add_, initialize, index) in zip(lane.members, lane.plan, strict=True):
                acc = accs[i]
                assert acc is not None
                acc[tile] = add_(initialize() if new else acc[tile], None if index is None else projected[index])
        if last is None or time_ms >= last:
            self.previous_ms, self.last_ms = last, time_ms
        elif self.previous_ms is None or time_ms > self.previous_ms:
            self.previous_ms = time_ms
        return True

    def values_at(self, time_ms: int) -> dict[str, Any]:
        """Every feature as of ``time_ms`` (None for all of them if the entity's newest
        event is older than the view's TTL, or there is none)."""
        last = self.last_ms
        if last is not None and time_ms < last:
            raise ValueError(
                f"asked for time {time_ms}, but an event at {last} is already folded in"
            )
        view = self.view
        names = view.feature_names
        ttl = view.ttl_ms
        if last is None or (ttl is not None and time_ms - last > ttl):
            return dict.fromkeys(names)
        windows = []  # per lane the tiles of its window, sliced once for all its features
        for lane, order in zip(self._layout.lanes, self._orders, strict=True):
            end = time_ms // lane.tile
            if order and order[-1] <= end and order[0] > end - lane.tiles:
                windows.append(order)  # all of them (only read)
            else:
                windows.append(order[bisect_right(order, end - lane.tiles):bisect_right(order, end)])
        return dict(zip(names, [
            self._since(time_ms) if read is None or acc is None else read[1](acc, windows[read[0]])
            for read, acc in zip(self._layout.reads, self._accs, strict=True)
        ], strict=True))

    def exact_values_at(self, time_ms: int) -> dict[str, Any]:
        """Only the features that change with every millisecond (time since last):
        cheap, for callers that cache the windowed values per tile."""
        return {f.name: self._since(time_ms) for f in self.view.features if f.kind != "window"}

    def _since(self, time_ms: int) -> float | None:
        """Seconds from the latest event strictly before ``time_ms`` (needs an event)."""
        assert self.last_ms is not None
        before = self.last_ms if time_ms > self.last_ms else self.previous_ms
        return None if before is None else (time_ms - before) / 1000

    def _saved(self, order: Callable[[list[int]], Any], acc: Callable[[dict[int, Any]], Any]) -> RawState:
        lanes = [order(o) for o in self._orders]
        lane_of = {i: n for n, lane in enumerate(self._layout.lanes) for i in lane.members}
        return (
            self.last_ms,
            self.previous_ms,
            tuple(None if a is None else (lanes[lane_of[i]], acc(a)) for i, a in enumerate(self._accs)),
            self.seen,
            self.late,
        )

    def raw(self) -> RawState:
        """The state as plain Python data, cheap to take (C-level copies): for state
        stores, which pickle it. :meth:`snapshot` is the JSON form, :meth:`packed` the
        pickled one."""
        return self._saved(tuple, dict)

    def packed(self) -> bytes:
        """:meth:`raw` pickled, taken without copying anything first: one bytes object
        (which the garbage collector need not track) for a state store to keep;
        :meth:`from_raw` restores it."""
        return _pack(self._saved(_same, _same), pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_raw(cls, view: FeatureView, raw: RawState | OldRawState | bytes) -> EntityState:
        """The state :meth:`raw` (or :meth:`packed`) took, for ``view`` (the same
        features); a raw state taken before the counters existed restores with them at 0."""
        # packed: our own state, from our own state store
        data: RawState | OldRawState = pickle.loads(raw) if isinstance(raw, bytes) else raw
        state = cls(view)
        state.last_ms, state.previous_ms, saved = data[0], data[1], data[2]
        if len(data) == 5:
            state.seen, state.late = data[3], data[4]
        state._keep(saved, "state")
        return state

    def _keep(self, saved: Sequence[tuple[Iterable[int], dict[int, Any]] | None], what: str) -> None:
        """Restore each feature's tiles: (tile indexes, accumulator per tile) or None."""
        if len(saved) != len(self._accs):
            raise ValueError(f"{what} of {len(saved)} features, view {self.view.name!r} has {len(self._accs)}")
        for lane, order in zip(self._layout.lanes, self._orders, strict=True):
            for n, i in enumerate(lane.members):
                kept, acc = saved[i], self._accs[i]
                if kept is None or acc is None:
                    continue
                tiles = list(kept[0])
                if not n:
                    order[:] = tiles
                elif tiles != order:
                    raise ValueError(f"feature {self.view.features[i].name!r}: tiles {tiles} differ "
                                     f"from those of its window's other features ({order})")
                acc.update(kept[1])

    def snapshot(self) -> dict[str, Any]:
        """The state as JSON-able data (no references to the view): per windowed
        feature its ``[tile, accumulator]`` pairs, and the two newest event times."""
        return json_snapshot(self.raw())

    @classmethod
    def restore(cls, view: FeatureView, snap: dict[str, Any]) -> EntityState:
        """The state :meth:`snapshot` described, for ``view`` (the same features)."""
        state = cls(view)
        state.last_ms, state.previous_ms = snap["last"], snap["prev"]
        state.seen, state.late = snap.get("n", 0), snap.get("late", 0)
        state._keep([None if saved is None else ([i for i, _ in saved], {i: _acc_in(acc) for i, acc in saved})
                     for saved in snap["tiles"]], "snapshot")
        return state

    def compact(self, now_ms: int) -> None:
        """Drop tiles no window ending at or after ``now_ms`` can need.

        Called with the stream time (:attr:`last_ms`), this keeps every tile a value
        can still be read from (values are read at or after the stream time). A late
        but allowed event whose tile is already gone re-creates it, but only windows
        that ended before the stream time hold that tile, so it is never read and the
        next compaction drops it: allowed lateness needs no extra retention here,
        unlike windows that emit when they close (retention >= size + grace).
        """
        for lane, order in zip(self._layout.lanes, self._orders, strict=True):
            before = now_ms // lane.tile - lane.tiles + 1
            if not order or order[0] >= before:
                continue  # nothing to drop: the common case
            cut = bisect_left(order, before)
            for i in lane.members:
                acc = self._accs[i]
                assert acc is not None
                for tile in order[:cut]:
                    del acc[tile]
            del order[:cut]


def _same(obj: Any) -> Any:
    return obj


_pack = pickle.dumps
_SavedTiles = tuple[tuple[tuple[int, ...], dict[int, Any]] | None, ...]
#: newest event time, the one before it, per feature its tiles, events seen, events dropped
RawState = tuple[int | None, int | None, _SavedTiles, int, int]
OldRawState = tuple[int | None, int | None, _SavedTiles]  # before the counters


def json_snapshot(raw: RawState | OldRawState) -> dict[str, Any]:
    """:meth:`EntityState.raw` as the JSON form :meth:`EntityState.restore` reads."""
    last, previous, saved = raw[0], raw[1], raw[2]
    tiles = [None if kept is None else [[i, _acc_out(kept[1][i])] for i in kept[0]] for kept in saved]
    snap = {"v": 1, "last": last, "prev": previous, "tiles": tiles}
    if len(raw) == 5:
        snap["n"], snap["late"] = raw[3], raw[4]
    return snap


def json_snapshot_bytes(raw: RawState | OldRawState | bytes) -> bytes:
    """:func:`json_snapshot` of a raw (or packed) state, serialized: the same JSON, made
    without building it as lists first (``orjson.Fragment`` embeds it in a record)."""
    data: RawState | OldRawState = pickle.loads(raw) if isinstance(raw, bytes) else raw
    last, previous, saved = data[0], data[1], data[2]
    snap: dict[str, Any] = {"v": 1, "last": last, "prev": previous,
            "tiles": [None if kept is None else list(zip(kept[0], map(kept[1].__getitem__, kept[0]), strict=True))
                      for kept in saved]}  # tuples are JSON arrays too
    if len(data) == 5:
        snap["n"], snap["late"] = data[3], data[4]
    return orjson.dumps(snap, default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, frozenset):
        return _acc_out(obj)
    raise TypeError(f"type {type(obj).__name__} is not JSON serializable")


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
    """The view's values for one entity at ``at_ms``, from its ``events`` ((value, time)
    pairs) in arrival order: those that arrived before the first one later than
    ``at_ms`` (the point the entity's stream passed ``at_ms``), late ones dropped."""
    state = EntityState(view)
    for value, t in events:
        if t > at_ms:
            break
        state.update(value, t)
    return state.values_at(at_ms)
