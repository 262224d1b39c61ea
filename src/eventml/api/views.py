"""Read models (views) over HTTP: rows by key, simple filters, catch-up status.

Reads go to each view's store while a separate ``eventml views run`` process keeps
writing it (SQLite in WAL mode: readers never block the writer nor wait for it).
Each server thread opens its own read connection the first time it needs one; a view
whose table does not exist yet answers 503 until its runner has created it.

Endpoints (``{key}`` may hold ``/``; rows and status sit under their own segments so
no key can be mistaken for a sub-resource):

* ``GET /v1/views``: the served views: name, source topics, indexed fields,
  description, rows (``null`` while the view has no table);
* ``GET /v1/views/{view}?field=value&limit=N&offset=M``: rows whose indexed fields
  equal the values given (all must hold; a value is read as JSON when it parses as a
  number, ``true``, ``false`` or ``null``, else as text), by key:
  ``{"view", "filters", "rows": [{"key", "row"}], "next_offset"}`` (``null`` on the
  last page); 422 for a field that is not indexed (the message lists those that are);
* ``GET /v1/views/{view}/rows/{key}``: ``{"view", "key", "row"}``, 404 (40452) if absent;
* ``GET /v1/views/{view}/status``: rows, last update and per source partition the
  view's position, the log's end offset and the lag.

404 (40451) for an unknown view.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from eventml.api.errors import (
    INVALID_REQUEST,
    ROW_NOT_FOUND,
    VIEW_NOT_FOUND,
    VIEW_NOT_READY,
    ApiError,
    ApiRoute,
    JSONResponse,
)
from eventml.log import Log, LogError
from eventml.views import (
    Projection,
    RowStore,
    ViewNotFound,
    ViewStore,
    open_view_store,
    view_status,
)

MAX_LIMIT = 1000
_PAGING = frozenset({"limit", "offset"})


@dataclass(frozen=True, slots=True)
class ServedView:
    """A view to serve: its projection, how to open a read connection to its store
    (``None`` while it has no table yet), and the log its sources are on (for status)."""

    projection: Projection
    open_store: Callable[[], RowStore | None]
    log: Log
    location: str = ""
    """Where the store is, for the server's own messages (never sent to clients)."""


def sqlite_view(projection: Projection, path: str | Path, log: Log) -> ServedView:
    """A view kept in the SQLite file at ``path`` (as ``eventml views run --db`` writes it)."""
    file = Path(path)

    def open_store() -> ViewStore | None:
        return ViewStore(file) if file.exists() else None

    return ServedView(projection, open_store, log, str(file))


def stored_view(projection: Projection, target: str, log: Log) -> ServedView:
    """A view kept in a database (``postgresql://...``, as ``eventml views run --db`` writes it)."""

    def open_store() -> RowStore | None:
        try:
            return open_view_store(target, projection.name, create=False)
        except ViewNotFound:
            return None

    from eventml.views.pg_store import redact  # needs psycopg, as the store does

    return ServedView(projection, open_store, log, redact(target))


class _Readers:
    """One read connection per view and thread, opened on first use, closed together."""

    def __init__(self, served: ServedView) -> None:
        self.served = served
        self._local = threading.local()
        self._opened: list[RowStore] = []
        self._lock = threading.Lock()

    def get(self) -> RowStore | None:
        store: RowStore | None = getattr(self._local, "store", None)
        if store is None:
            store = self.served.open_store()
            if store is None:
                return None
            self._local.store = store
            with self._lock:
                self._opened.append(store)
        return store

    def require(self) -> RowStore:
        store = self.get()
        if store is None:
            name = self.served.projection.name
            raise ApiError(503, VIEW_NOT_READY,
                           f"view {name!r} has no table yet: run 'eventml views run {name}' (or rebuild)")
        return store

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for store in opened:
            store.close()


def parse_filter_value(raw: str) -> Any:
    """A filter's value: JSON when it is a number, ``true``, ``false`` or ``null``, else the text."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    return raw if isinstance(value, list | dict | str) else value


_Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Rows per page (at most {MAX_LIMIT}).")]
_Offset = Annotated[int, Query(ge=0, description="Rows to skip (the previous page's next_offset).")]


class ViewsRouter:
    """The ``/v1/views`` routes over ``views`` (its :attr:`router`); :meth:`close` closes
    the read connections."""

    def __init__(self, views: Iterable[ServedView]) -> None:
        self.readers: dict[str, _Readers] = {}
        for v in views:
            name = v.projection.name
            if name in self.readers:
                raise ValueError(f"two served views are named {name!r}")
            self.readers[name] = _Readers(v)
        self.router = self._routes()

    def close(self) -> None:
        for r in self.readers.values():
            r.close()

    def _of(self, view: str) -> _Readers:
        found = self.readers.get(view)
        if found is None:
            known = ", ".join(sorted(self.readers)) or "none (serve views with --views)"
            raise ApiError(404, VIEW_NOT_FOUND, f"no view {view!r}; served: {known}")
        return found

    def _routes(self) -> APIRouter:
        api = APIRouter(prefix="/v1/views", route_class=ApiRoute, default_response_class=JSONResponse,
                        tags=["views"])

        @api.get("")
        def list_views() -> Response:
            """The served views: name, sources, indexed fields and rows."""
            out = []
            for name, readers in sorted(self.readers.items()):
                p = readers.served.projection
                store = readers.get()
                out.append({"name": name, "topics": list(p.topics), "indexed": list(p.indexed),
                            "description": p.description,
                            "rows": None if store is None else store.count()})
            return JSONResponse({"views": out})

        @api.get("/{view}")
        def query_view(request: Request, view: str, limit: _Limit = 100, offset: _Offset = 0) -> Response:
            """Rows whose indexed fields equal the values given (``?field=value``), by key."""
            readers = self._of(view)
            indexed = readers.served.projection.indexed
            filters: dict[str, Any] = {}
            for field, raw in request.query_params.multi_items():
                if field in _PAGING:
                    continue
                if field not in indexed:
                    allowed = ", ".join(indexed) or "none (the view declares no indexed fields)"
                    raise ApiError(422, INVALID_REQUEST,
                                   f"cannot filter view {view!r} on {field!r}: filter on its indexed "
                                   f"fields: {allowed}")
                if field in filters:
                    raise ApiError(422, INVALID_REQUEST, f"filter {field!r} is given twice: give it once")
                filters[field] = parse_filter_value(raw)
            found = readers.require().query(filters, limit=limit, offset=offset)
            return JSONResponse({
                "view": view, "filters": filters,
                "rows": [{"key": k, "row": row} for k, row in found],
                "next_offset": offset + len(found) if len(found) == limit else None,
            })

        @api.get("/{view}/rows/{key:path}")
        async def get_row(view: str, key: str) -> Response:
            """One row by key (a primary-key read of microseconds: on the event loop, with
            the loop thread's own connection; the other routes use the thread pool)."""
            row = self._of(view).require().get(key)
            if row is None:
                raise ApiError(404, ROW_NOT_FOUND, f"view {view!r} has no row {key!r}")
            return JSONResponse({"view": view, "key": key, "row": row})

        @api.get("/{view}/status")
        def get_status(view: str) -> Response:
            """Rows, last update, and per source partition the position, end offset and lag."""
            readers = self._of(view)
            store = readers.require()
            try:
                status = view_status(readers.served.log, readers.served.projection, store)
            except LogError as e:
                raise ApiError(503, VIEW_NOT_READY,
                               f"cannot read the sources of view {view!r} from the log: "
                               f"{type(e).__name__}") from e
            body = status.as_dict()
            body.pop("path", None)  # the server's file layout stays on the server
            return JSONResponse(body)

        return api
