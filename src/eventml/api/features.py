"""Online features over HTTP: ``GET /v1/features/{view}?keys=...``.

A request is a lookup in memory: the :class:`~eventml.features.OnlineStore` of each
served view never reads the log on the request path (its ``stale_after_s`` is
infinite); :class:`FeatureRefresher` catches every store up with its online topic
every ``interval_s`` instead: it asks the log in a worker thread whether the topic
grew, then refreshes that store as a task on the server's event loop, between
requests, so a lookup never sees a store half-way through a refresh (the store is
not thread-safe); the routes are ``async`` for the same reason (no thread pool).
The first catch-up happens at start-up, before the server answers.

Endpoints:

* ``GET /v1/features``: the served views: name, entity, source, online topic,
  feature names, entities held, stream time, seconds since the last refresh;
* ``GET /v1/features/{view}?keys=a&keys=b`` (or ``keys=a,b``), optional ``at_ms``
  (default: the view's stream time) and ``features`` (names, repeated or
  comma-separated): ``{"view", "stream_time_ms", "rows": [{"key": ..., <feature>: ...}]}``,
  one row per key in the order asked; a key without events (or past the TTL) has
  ``null`` values. 404 (40441) for an unknown view, 422 for no keys, more than
  ``max_keys`` or an unknown feature.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from eventml.api.errors import (
    FEATURE_VIEW_NOT_FOUND,
    INVALID_REQUEST,
    ApiError,
    ApiRoute,
    JSONResponse,
)
from eventml.features.online import OnlineStore

log = logging.getLogger("eventml.api")

MAX_KEYS = 1000
REFRESH_INTERVAL_S = 0.2


class FeatureRefresher:
    """Keeps ``stores`` caught up with their online topics, every ``interval_s``.

    Each tick first asks the log, in a worker thread, whether a store's topic grew
    (its end offsets moved); only those stores are refreshed, on the event loop (the
    store is not thread-safe, so reading new records blocks the loop for as long as
    it takes). Every ``force_every_s`` all stores are refreshed regardless.

    ``freeze_gc``: after each catch-up, move every object alive to the garbage
    collector's permanent generation (:func:`gc.freeze`, after collecting the young
    generations). The stores hold millions of small objects (~70 per entity); a full
    collection scanning them stalls every request for hundreds of ms. Frozen objects
    are still freed when their last reference goes (the stores' state holds no
    cycles); only cyclic garbage that reached the oldest generation between two
    catch-ups is never collected. It acts on the whole process: ``eventml serve`` sets
    it, an app embedding these routes decides for itself.
    """

    def __init__(
        self, stores: Mapping[str, OnlineStore], *, interval_s: float = REFRESH_INTERVAL_S,
        freeze_gc: bool = False, force_every_s: float = 5.0,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.stores = dict(stores)
        self.interval_s, self.force_every_s = interval_s, force_every_s
        self.freeze_gc = freeze_gc
        self.refreshed_at: dict[str, float] = {}  # time.monotonic() it was last known current
        self._ends: dict[str, object] = {}  # each topic's end offsets at the last check
        self._failing: set[str] = set()
        self._frozen_once = False

    def refresh(self, names: Iterable[str] | None = None) -> int:
        """Catch ``names`` (default: every store) up; returns the records read. A store
        whose log fails keeps serving what it holds (logged once until it recovers)."""
        try:
            return self._refresh(self.stores if names is None else names)
        finally:
            self._freeze()

    def _freeze(self) -> None:
        if self.freeze_gc:
            gc.collect(1 if self._frozen_once else 2)  # in full once, at start-up
            gc.freeze()
            self._frozen_once = True

    def _refresh(self, names: Iterable[str]) -> int:
        read = 0
        for name in names:
            try:
                read += self.stores[name].refresh()
            except Exception as e:
                if name not in self._failing:
                    log.warning("eventml api: refreshing feature view %r failed (%s: %s); "
                                "serving its last values", name, type(e).__name__, e)
                    self._failing.add(name)
                continue
            self._failing.discard(name)
            self.refreshed_at[name] = time.monotonic()
        return read

    @property
    def failing(self) -> set[str]:
        """The stores whose last refresh failed."""
        return set(self._failing)

    def changed(self) -> list[str]:
        """The stores whose topic's end offsets moved since the last check (any thread)."""
        out = []
        now = time.monotonic()
        for name, store in self.stores.items():
            try:
                ends: object = sorted(store.log.end_offsets(store.topic).items())
            except Exception:
                ends = None  # not there yet, or the log fails: let refresh() say so
            if ends is None or ends != self._ends.get(name):
                out.append(name)
            else:
                self.refreshed_at[name] = now
            self._ends[name] = ends
        return out

    async def run(self) -> None:
        """Refresh until cancelled (a task on the serving loop)."""
        forced = time.monotonic()
        while True:
            await asyncio.sleep(self.interval_s)
            names = await asyncio.to_thread(self.changed)
            if time.monotonic() - forced >= self.force_every_s:
                names, forced = list(self.stores), time.monotonic()
            if names:
                self.refresh(names)
            else:
                self._freeze()  # what lookups restored since the last tick, too


def _entity(store: OnlineStore) -> str:
    entity = store.view.entity
    return entity if isinstance(entity, str) else getattr(entity, "__name__", repr(entity))


def _split(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated values, flattened, blanks dropped."""
    out: list[str] = []
    for v in values or ():
        out.extend(p for p in v.split(",") if p)
    return out


def _param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


# the lookup reads its query itself (FastAPI's list-parameter handling costs more than
# the lookup); these describe it in /docs
_LOOKUP_PARAMETERS = {"parameters": [
    _param("keys", "Entity keys: repeat the parameter (keys=a&keys=b) or separate by commas.",
           {"type": "array", "items": {"type": "string"}}),
    _param("at_ms", "As of this time, ms since the epoch (default: the view's stream time).",
           {"type": "integer"}),
    _param("features", "Only these features (repeated or comma-separated; default: all).",
           {"type": "array", "items": {"type": "string"}}),
]}


def features_router(
    stores: Mapping[str, OnlineStore],
    *,
    refresher: FeatureRefresher | None = None,
    max_keys: int = MAX_KEYS,
) -> APIRouter:
    """``/v1/features`` routes over ``stores`` (by view name)."""
    stores = dict(stores)
    api = APIRouter(prefix="/v1/features", route_class=ApiRoute, default_response_class=JSONResponse,
                    tags=["features"])

    def store_of(view: str) -> OnlineStore:
        store = stores.get(view)
        if store is None:
            known = ", ".join(sorted(stores)) or "none (serve an app that materializes views: --app)"
            raise ApiError(404, FEATURE_VIEW_NOT_FOUND, f"no feature view {view!r}; served: {known}")
        return store

    @api.get("")
    async def list_feature_views() -> Response:
        """The feature views served, with their entities held and freshness."""
        now = time.monotonic()
        out = []
        for name, store in sorted(stores.items()):
            at = refresher.refreshed_at.get(name) if refresher is not None else None
            out.append({
                "name": name, "entity": _entity(store), "source": store.view.source,
                "topic": store.topic, "features": list(store.view.feature_names),
                "entities": len(store), "stream_time_ms": store.stream_time_ms,
                "refreshed_s_ago": None if at is None else round(now - at, 3),
            })
        return JSONResponse({"features": out})

    @api.get("/{view}", openapi_extra=_LOOKUP_PARAMETERS)
    async def get_online_features(request: Request, view: str) -> Response:
        """Online values of ``keys``, one row per key, in the order asked."""
        store = store_of(view)
        query = request.query_params
        wanted = _split(query.getlist("keys"))
        if not wanted:
            raise ApiError(422, INVALID_REQUEST,
                           f"give at least one key: /v1/features/{view}?keys=KEY (repeat or comma-separate)")
        if len(wanted) > max_keys:
            raise ApiError(422, INVALID_REQUEST,
                           f"too many keys: {len(wanted)} (at most {max_keys} per request)")
        at_ms: int | None = None
        raw_at = query.get("at_ms")
        if raw_at is not None:
            try:
                at_ms = int(raw_at)
            except ValueError:
                raise ApiError(422, INVALID_REQUEST,
                               f"at_ms: give a time in ms since the epoch, got {raw_at!r}") from None
        names: list[str] | None = None
        if "features" in query:
            names = _split(query.getlist("features"))
            known = store.view.feature_names
            unknown = [n for n in names if n not in known]
            if unknown or not names:
                raise ApiError(422, INVALID_REQUEST,
                               f"unknown feature(s) {', '.join(unknown) or '(none given)'} of {view!r}; "
                               f"its features: {', '.join(known)}")
        rows = store.get_online_features(wanted, at_ms=at_ms, features=names)
        body: dict[str, Any] = {
            "view": view, "stream_time_ms": store.stream_time_ms,
            "rows": [{"key": k, **row} for k, row in zip(wanted, rows, strict=True)],
        }
        return JSONResponse(body)

    return api
