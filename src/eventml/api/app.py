"""One HTTP service: the schema registry, online features, read models, topics, dead
letters and models.

:func:`create_app` composes the schema registry's routes (Confluent's paths, at the
root, as ``eventml serve`` always served them, and the same under ``/v1/schemas``) with
the ``/v1`` routers of :mod:`eventml.api.features`, :mod:`eventml.api.views`,
:mod:`eventml.api.ingest`, :mod:`eventml.api.topics`, :mod:`eventml.api.dlq` and
:mod:`eventml.api.models`. Every error is a JSON body ``{"error_code": ..., "message":
...}`` (the registry's shape), never a traceback; an unknown path is a 404 with error
code 404. API docs are at ``/docs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from eventml.api.auth import PUBLIC_PATHS, SCHEMAS_PREFIX, Authorizer, RateLimit
from eventml.api.dlq import DeadLettersRouter
from eventml.api.errors import (
    INVALID_REQUEST,
    SERVICE_UNAVAILABLE,
    ApiHTTPError,
    JSONResponse,
    error_response,
    internal_error,
    validation_message,
)
from eventml.api.features import REFRESH_INTERVAL_S, FeatureRefresher, features_router
from eventml.api.ingest import IngestLimits, ingest_router
from eventml.api.models import models_router
from eventml.api.openapi import complete as complete_spec
from eventml.api.predict import AsyncConfig, predict_router
from eventml.api.topics import topics_router
from eventml.api.views import ServedView, ViewsRouter
from eventml.features.online import FeatureTopics, OnlineStore
from eventml.features.spec import FeatureView
from eventml.log import Log
from eventml.ml.registry import ModelRegistry
from eventml.observe.http import CONTENT_TYPE, MetricsMiddleware, ServiceMetrics
from eventml.schema.registry import SchemaRegistry
from eventml.security import KeyStore

if TYPE_CHECKING:
    from eventml.engine import App
    from eventml.security.jwt import JwtVerifier

_SERVICE_PATHS = frozenset({"/metrics", "/healthz", "/readyz", "/docs", "/redoc", "/openapi.json"})
"""Paths outside /v1 that are the service's own, not the schema registry's."""


def create_app(
    *,
    registry: SchemaRegistry | None = None,
    features: Mapping[str, OnlineStore] | None = None,
    views: Iterable[ServedView] = (),
    refresh_interval_s: float = REFRESH_INTERVAL_S,
    freeze_gc: bool = False,
    title: str = "eventml",
    keys: KeyStore | None = None,
    jwt: JwtVerifier | None = None,
    rate_limit: RateLimit | None = None,
    log: Log | None = None,
    ingest_limits: IngestLimits | None = None,
    models: ModelRegistry | None = None,
    predict: AsyncConfig | None = None,
    predict_worker: bool = False,
    pipeline: App | None = None,
    dashboard: bool = True,
    worker_metrics: Sequence[str] = (),
) -> FastAPI:
    """The service: ``registry``'s routes (if given), ``features`` (online stores by view
    name) under ``/v1/features``, ``views`` under ``/v1/views``.

    While the app runs (its lifespan), the online stores are caught up once at start-up
    and then every ``refresh_interval_s`` by a task on the event loop; on shutdown the
    views' read connections are closed. The stores' own ``stale_after_s`` should be
    ``float("inf")`` so no lookup reads the log (:func:`online_stores` makes them so).
    ``freeze_gc`` keeps the stores' objects out of the garbage collector's full
    collections (process-wide; see :class:`~eventml.api.features.FeatureRefresher`).

    With ``keys`` every route but the docs needs an API key whose scopes allow the
    request (:mod:`eventml.api.auth`), at most ``rate_limit`` requests a second per key.
    With ``jwt`` (a :class:`~eventml.security.jwt.JwtVerifier`), bearer JWTs of the
    configured issuer and audience are accepted as well (or instead, without ``keys``), their
    ``scope`` claim read as a key's scopes.
    Without either, the service is open, as a local schema registry usually is.

    With ``log``, ``POST /v1/topics/{topic}/events`` appends to it
    (:mod:`eventml.api.ingest`, within ``ingest_limits``, validated against ``registry``'s
    schemas); it needs ``keys``: without them it refuses every request. The log's topics,
    consumer lag and dead letters are read (and dead letters replayed) under
    ``/v1/topics`` (:mod:`eventml.api.topics`, :mod:`eventml.api.dlq`).

    With ``models`` (a :class:`~eventml.ml.ModelRegistry`; reads never create it), its
    models are served under ``/v1/models`` (:mod:`eventml.api.models`), alias changes
    announced on ``log``. Replaying dead letters and moving aliases need ``keys`` (an admin's):
    without them those routes refuse every request. Its models also score under
    ``/v1/predict/{model}`` (:mod:`eventml.api.predict`); with ``log`` too, asynchronously
    (``/v1/predict/{model}/async``, results at ``/v1/results``) through the topics of
    ``predict`` (default :class:`~eventml.api.predict.AsyncConfig`), scored by a worker thread
    of this process when ``predict_worker``, else by ``eventml run`` of
    :func:`~eventml.api.predict.worker_app`.

    With ``log`` and ``dashboard``, a browser opening ``/`` gets the live dashboard
    (:mod:`eventml.api.dashboard`; ``pipeline``: the app whose topology, consumer group and
    alerts it shows; ``worker_metrics``: its workers' metrics endpoints, as ``eventml run
    --metrics-port`` prints them, scraped for processing and model latency); its data is
    under ``/v1/dashboard``, the log's gauges on ``/metrics``.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        app_version = version("eventml")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        app_version = "0"
    refresher = FeatureRefresher(features or {}, interval_s=refresh_interval_s, freeze_gc=freeze_gc)
    served_views = ViewsRouter(views)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        import asyncio

        refresher.refresh()  # before the first request: connections queue meanwhile
        task = asyncio.create_task(refresher.run(), name="eventml-feature-refresh")
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            served_views.close()

    authorizer = (None if keys is None and jwt is None
                  else Authorizer(keys, rate_limit=rate_limit, jwt=jwt))
    app = FastAPI(
        dependencies=[] if authorizer is None else [Depends(authorizer.guard)],
        title=title,
        version=app_version,
        description="eventml: the schema registry (Confluent's REST API, at the root and "
                    f"under {SCHEMAS_PREFIX}), online features, read models, ingest, topics, "
                    "consumer lag, dead letters, the model registry and predictions.",
        default_response_class=JSONResponse,
        lifespan=lifespan,
    )
    # /v1 first: routes match in order, and the lookups are the hot path
    app.include_router(features_router(refresher.stores, refresher=refresher))
    app.include_router(served_views.router)
    if log is not None:
        app.include_router(ingest_router(
            log, authorize=None if authorizer is None else authorizer.check,
            limits=ingest_limits or IngestLimits(), registry=registry))
        app.include_router(topics_router(log))
        app.include_router(DeadLettersRouter(log, writable=authorizer is not None).router)
    if models is not None:
        app.include_router(models_router(models, log, writable=authorizer is not None))
        app.include_router(predict_router(
            models, authorize=None if authorizer is None else authorizer.check, log=log,
            config=predict or AsyncConfig(), run_worker=predict_worker))
    if registry is not None:
        from eventml.schema.api import router as registry_router

        app.include_router(registry_router(registry, prefix=SCHEMAS_PREFIX))
        app.include_router(registry_router(registry))  # Confluent's paths, at the root
    app.state.refresher, app.state.views = refresher, served_views

    metrics = ServiceMetrics()
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.state.metrics = metrics
    if log is not None and dashboard:  # the page at / for browsers, /v1/dashboard, log gauges
        from eventml.api.dashboard import mount_dashboard

        mount_dashboard(app, log, pipeline=pipeline, models=models, metrics=metrics,
                        worker_metrics=worker_metrics)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics (text exposition format)",
             response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Readiness: every served feature view is caught up",
             responses={503: {"description": "a feature view's log fails or was never read"}})
    async def readyz() -> Response:
        failing = sorted(refresher.failing | (set(refresher.stores) - set(refresher.refreshed_at)))
        if failing:
            return error_response(503, SERVICE_UNAVAILABLE,
                                  f"not ready: feature views {', '.join(failing)} cannot be read "
                                  "from the log (see the server log)")
        return JSONResponse({"status": "ready", "feature_views": sorted(refresher.stores)})
    app.state.authorizer = authorizer
    registry_paths = registry is not None

    def on_registry_path(path: str) -> bool:
        return registry_paths and path not in _SERVICE_PATHS and (
            not path.startswith("/v1") or path.startswith(SCHEMAS_PREFIX))

    def media(request: Request) -> type[Response]:
        """The registry's media type on its paths when it is served, else plain JSON."""
        if on_registry_path(request.url.path):
            from eventml.schema.api import RegistryJSONResponse

            return RegistryJSONResponse
        return JSONResponse

    def error_media_type(path: str) -> str:
        if on_registry_path(path):
            from eventml.schema.api import CONTENT_TYPE as REGISTRY_TYPE

            return REGISTRY_TYPE
        return "application/json"

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's spec plus the errors the app around the routes answers."""
        if app.openapi_schema is None:
            app.openapi_schema = complete_spec(generate(), secured=authorizer is not None,
                                               public=PUBLIC_PATHS, media_type=error_media_type)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):
            return internal_error(request, exc, media(request))
        if isinstance(exc, ApiHTTPError):
            return error_response(exc.status_code, exc.code, exc.message, media(request), exc.headers)
        hint = "; see /docs for the endpoints" if exc.status_code in (404, 405) else ""
        return error_response(exc.status_code, exc.status_code,
                              f"HTTP {exc.status_code} {exc.detail}{hint}", media(request))

    async def request_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):
            return internal_error(request, exc, media(request))
        return error_response(422, INVALID_REQUEST, validation_message(exc), media(request))

    async def unexpected(request: Request, exc: Exception) -> Response:
        return internal_error(request, exc, media(request))

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, request_error)
    app.add_exception_handler(Exception, unexpected)
    return app


def online_stores(
    log: Log, views: Mapping[str, tuple[FeatureView, FeatureTopics]]
) -> dict[str, OnlineStore]:
    """Online stores for ``views`` (name → ``(FeatureView, FeatureTopics)``, as
    :func:`eventml.features.materialized` returns them) that never refresh on a lookup."""
    return {name: OnlineStore(log, view, topics.online, stale_after_s=float("inf"))
            for name, (view, topics) in views.items()}
