"""Feature views as data: what to compute per entity, over which windows, kept how long.

>>> view = FeatureView(
...     "card_activity", entity="card_id", source="transactions", ttl_ms=DAY,
...     features=[count("tx_10m", 10 * MINUTE), mean("amount_mean_1h", "amount", HOUR),
...               distinct("merchants_24h", "merchant_id", DAY), since_last("secs_since_last")])
>>> [f.name for f in view.features]
['tx_10m', 'amount_mean_1h', 'merchants_24h', 'secs_since_last']

A view is configuration only; :class:`~eventml.features.state.EntityState` is the
pure logic built from it, shared by online serving and historical retrieval, so both
compute every value with the same code.

Late events (``allowed_lateness_ms``, a.k.a. grace). Each entity's events are taken in
log (arrival) order; the entity's stream time is the newest event time seen so far. An
event at least as new as ``stream time - allowed_lateness_ms`` is folded into the tile
of its own time, so it counts in every window that holds that time from then on
(values already served are not rewritten); an older one is dropped for the view and
counted (:attr:`~eventml.features.state.EntityState.late`). The default, 0, accepts
events in time order (ties included) and drops any that arrive behind the entity's
newest: the default of eventml's own windows (``grace_ms=0``), of Flink's allowed
lateness and of Kafka Streams' ``ofSizeWithNoGrace``. Set it to the out-of-orderness
the source really has (e.g. ``5 * MINUTE`` for mobile clients that batch their sends).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventml.windows import Aggregator, Count, Max, Mean, Min, Sum

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
TILES_PER_WINDOW = 60  # a 24 h window keeps 60 partial aggregates of 24 min, not every event


@dataclass(frozen=True, slots=True)
class CountDistinct:
    """Exact number of distinct values; the accumulator is a frozenset (merge = union)."""

    def initialize(self) -> frozenset[Any]:
        return frozenset()

    def add(self, acc: frozenset[Any], value: Any) -> frozenset[Any]:
        return acc if value in acc else acc | {value}

    def merge(self, a: frozenset[Any], b: frozenset[Any]) -> frozenset[Any]:
        return a | b

    def result(self, acc: frozenset[Any]) -> int:
        return len(acc)


@dataclass(frozen=True, slots=True)
class Feature:
    """One feature: ``aggregator`` over ``field`` of the events within ``window_ms``.

    The window at time ``t`` is sliding at tile granularity: it holds the events at or
    before ``t`` whose tile (``time // tile_ms``) is one of the ``window_ms / tile_ms``
    tiles ending with ``t``'s. ``field=None`` aggregates the events themselves (count).
    ``kind="since_last"`` (no window) is the time since the entity's latest event
    strictly before the asked time, in seconds.
    """

    name: str
    aggregator: Aggregator[Any, Any, Any] | None
    field: str | None = None
    window_ms: int | None = None
    tile_ms: int | None = None
    kind: str = "window"

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"feature name {self.name!r}: use a Python identifier")
        if self.kind == "window":
            if self.window_ms is None or self.window_ms <= 0:
                raise ValueError(f"feature {self.name!r}: window_ms must be > 0")
            tile = self.tile
            if self.window_ms % tile:
                raise ValueError(
                    f"feature {self.name!r}: tile_ms {tile} must divide window_ms {self.window_ms}"
                )

    @property
    def tile(self) -> int:
        """Tile length: given, or the window split in :data:`TILES_PER_WINDOW` (>= 1 ms)."""
        if self.tile_ms is not None:
            return self.tile_ms
        assert self.window_ms is not None
        return max(1, self.window_ms // TILES_PER_WINDOW) if self.window_ms % TILES_PER_WINDOW == 0 else 1

    @property
    def tiles(self) -> int:
        assert self.window_ms is not None
        return self.window_ms // self.tile


def _window(name: str, agg: Aggregator[Any, Any, Any], field: str | None, window_ms: int,
            tile_ms: int | None) -> Feature:
    return Feature(name, agg, field, window_ms, tile_ms)


def count(name: str, window_ms: int, *, tile_ms: int | None = None) -> Feature:
    """Events in the window."""
    return _window(name, Count(), None, window_ms, tile_ms)


def total(name: str, field: str, window_ms: int, *, tile_ms: int | None = None) -> Feature:
    """Sum of ``field`` over the window."""
    return _window(name, Sum(), field, window_ms, tile_ms)


def mean(name: str, field: str, window_ms: int, *, tile_ms: int | None = None) -> Feature:
    return _window(name, Mean(), field, window_ms, tile_ms)


def maximum(name: str, field: str, window_ms: int, *, tile_ms: int | None = None) -> Feature:
    return _window(name, Max(), field, window_ms, tile_ms)


def minimum(name: str, field: str, window_ms: int, *, tile_ms: int | None = None) -> Feature:
    return _window(name, Min(), field, window_ms, tile_ms)


def distinct(name: str, field: str, window_ms: int, *, tile_ms: int | None = None) -> Feature:
    """Distinct values of ``field`` in the window (exact)."""
    return _window(name, CountDistinct(), field, window_ms, tile_ms)


def since_last(name: str) -> Feature:
    """Seconds since the entity's latest event strictly before the asked time (at an
    event's own time: since the one before it, 0 if both share that time; None if
    there is none). A late event counts if it was accepted and is the newest before."""
    return Feature(name, None, kind="since_last")


@dataclass(frozen=True)
class FeatureView:
    """Named features of one entity, computed from one source topic.

    ``entity`` names the field of an event's value holding the entity key (or is a
    function of the value); ``time`` likewise the event time in ms (default: the
    record's timestamp). ``ttl_ms``: a value older than this (the entity's last
    event before the asked time) is not served (``None``), as in Feast.
    ``allowed_lateness_ms``: how far behind the entity's newest event time an event
    may arrive and still count (see the module's docstring); older ones are dropped.
    """

    name: str
    entity: str | Callable[[Any], Any]
    source: str
    features: Sequence[Feature]
    ttl_ms: int | None = None
    time: str | Callable[[Any], int] | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    allowed_lateness_ms: int = 0

    def __post_init__(self) -> None:
        if self.allowed_lateness_ms < 0:
            raise ValueError(
                f"feature view {self.name!r}: allowed_lateness_ms must be >= 0, got {self.allowed_lateness_ms}"
            )
        names = [f.name for f in self.features]
        if not names:
            raise ValueError(f"feature view {self.name!r} has no features")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature view {self.name!r}: duplicate feature names {dupes}")
        object.__setattr__(self, "features", tuple(self.features))

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def key_of(self, value: Any) -> Any:
        return self.entity(value) if callable(self.entity) else value[self.entity]

    def time_of(self, value: Any, record_time_ms: int) -> int:
        if self.time is None:
            return record_time_ms
        return int(self.time(value) if callable(self.time) else value[self.time])
