"""From an entity's state to the values an online store serves: one place for the rules.

Every online store (:class:`~eventml.features.online.OnlineStore` in memory,
:class:`~eventml.features.redis_store.RedisOnlineStore` over Redis) answers the same
way, so they share this: the time asked defaults to the view's stream time, is never
earlier than the entity's newest event (the state cannot answer for earlier), a state
past the TTL serves ``None``, and windowed values are cached per time bucket.
"""

from __future__ import annotations

import math
from typing import Any

from eventml.features.spec import FeatureView
from eventml.features.state import EntityState


class ServedValues:
    """The values of ``view`` per entity as of a time, with a per-entity cache.

    Windowed values only change when the asked time crosses a tile boundary, so one
    bucket of the tiles' gcd is reused; time-since-last features are recomputed at the
    exact time. Call :meth:`forget` when an entity's state changes.
    """

    __slots__ = ("_bucket_ms", "_exact", "_values", "view")

    def __init__(self, view: FeatureView) -> None:
        self.view = view
        self._values: dict[str, tuple[int, dict[str, Any]]] = {}  # key -> (bucket, values)
        tiles = [f.tile for f in view.features if f.kind == "window"]
        self._bucket_ms = math.gcd(*tiles) if tiles else 1
        self._exact = [f.name for f in view.features if f.kind != "window"]

    def values_of(
        self, key: str, entity: EntityState | None, at_ms: int | None, stream_time_ms: int | None
    ) -> dict[str, Any] | None:
        """``key``'s values as of ``at_ms`` (default: ``stream_time_ms``), or None when it
        has no state or is past the TTL."""
        if entity is None or entity.last_ms is None:
            return None
        at = at_ms if at_ms is not None else (stream_time_ms or entity.last_ms)
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

    def forget(self, key: str) -> None:
        """Drop ``key``'s cached values (its state changed)."""
        self._values.pop(key, None)


def select(values: dict[str, Any] | None, names: list[str]) -> dict[str, Any]:
    """One output row: the ``names`` asked for, all ``None`` when there are no values."""
    return dict.fromkeys(names) if values is None else {n: values[n] for n in names}
