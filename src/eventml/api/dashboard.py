"""The live dashboard: an HTML page at ``/`` and the data it draws, under ``/v1/dashboard``.

* ``GET /`` from a browser (``Accept: text/html``): the page (static HTML, CSS and JS from
  ``eventml/api/static``, no CDN). Every other ``GET /`` still gets the schema registry's
  answer, unchanged: Confluent clients call it. The page and its assets
  (``/dashboard/static/...``) hold no data and are public; the data routes below need a
  ``read:*`` key when the service checks keys (the page asks for one and sends it in the
  ``Authorization`` header, never in a URL).
* ``GET /v1/dashboard/snapshot``: one :class:`~eventml.observe.pipeline.PipelineSampler`
  snapshot (see :class:`Snapshot`): topics and their rates, lag per group, the topology
  with per-edge throughput, latency over time, alerts, dead letters, models, drift; with
  ``worker_metrics`` (workers' Prometheus endpoints), processing and model latency
  percentiles scraped from them (:mod:`eventml.observe.scrape`).
* ``GET /v1/dashboard/stream``: the same as Server-Sent Events (``event: snapshot``), one
  per ``interval_s``; ``until_s`` or ``max_events`` end the stream.

The sampler reads the log only when someone asks, at most once per its interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from eventml.api.errors import ApiRoute, JSONResponse
from eventml.api.topics import COMMON_ERRORS, error_responses
from eventml.observe.pipeline import PipelineSampler, SamplerConfig

if TYPE_CHECKING:
    from eventml.engine import App
    from eventml.log import Log
    from eventml.ml.registry import ModelRegistry
    from eventml.observe.http import ServiceMetrics

STATIC_PATH = "/dashboard/static"
MAX_STREAM_S = 3600.0


class TopicRate(BaseModel):
    topic: str
    partitions: int
    end_offset: int = Field(description="End offsets summed over partitions")
    rate_eps: float | None = Field(description="Appended events/s over the last samples")


class GroupLag(BaseModel):
    group: str
    topic: str
    lag: int | None = Field(description="Records appended but not committed by the group")
    committed: int | None
    end_offset: int
    rate_eps: float | None = Field(description="Records/s the group commits")
    time_lag_ms: float | None = Field(description="How long its next record has waited")


class GraphNodeOut(BaseModel):
    id: str
    kind: str = Field(description="topic, source, operator or sink")
    label: str
    detail: str
    layer: int


class GraphEdgeOut(BaseModel):
    source: str
    target: str
    topic: str | None
    direction: str = Field(description="into or out_of a topic, or within (operator to operator)")
    rate_eps: float | None


class Graph(BaseModel):
    app: str
    group: str
    nodes: list[GraphNodeOut]
    edges: list[GraphEdgeOut]


class SeriesPoint(BaseModel):
    at_ms: int
    rates: dict[str, float | None]
    time_lag_ms: float | None = Field(description="The watched groups' worst time lag")
    p50_ms: float | None = Field(description="Time lag percentiles over the last samples")
    p95_ms: float | None
    p99_ms: float | None
    processing_p50_ms: float | None = Field(
        description="Processing latency (batch time) percentiles of the batches since the "
                    "previous sample, from the workers' metrics (null without them or batches)")
    processing_p95_ms: float | None
    processing_p99_ms: float | None


class WorkerEndpoint(BaseModel):
    url: str
    up: bool = Field(description="It answered the last scrape")
    error: str | None = Field(description="Why it did not")
    app: str | None = Field(description="From its eventml_worker_info")
    worker: str | None = Field(description="Its worker index")


class Processing(BaseModel):
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    batches: int = Field(description="Batches committed since the previous sample")


class ModelLatency(BaseModel):
    model: str
    version: str
    calls: int = Field(description="Model calls within the window")
    p50_ms: float | None
    p99_ms: float | None


class Workers(BaseModel):
    """The workers' own metrics (``create_app(worker_metrics=...)``, ``eventml serve
    --worker-metrics``), scraped at each sample."""

    endpoints: list[WorkerEndpoint]
    processing: Processing
    models: list[ModelLatency]
    processing_measures: str
    models_measure: str


class Alerts(BaseModel):
    topics: list[str]
    total: int
    recent: list[dict[str, Any]] = Field(description="Newest first: topic, partition, offset, "
                                                     "timestamp_ms, id, key, value")


class DeadLetters(BaseModel):
    topic: str
    dead_letter_topic: str
    held: int
    rate_eps: float | None


class Snapshot(BaseModel):
    """What the dashboard draws, sampled from the log at ``at_ms``."""

    at_ms: int
    interval_s: float
    topics: list[TopicRate]
    groups: list[GroupLag]
    graph: Graph | None
    series: list[SeriesPoint]
    latency_measures: str
    workers: Workers | None = Field(description="null when no worker metrics are configured")
    alerts: Alerts
    dead_letters: list[DeadLetters]
    models: list[dict[str, Any]]
    drift: list[dict[str, Any]]
    alias_changes: list[dict[str, Any]]
    predictions: list[dict[str, Any]]
    errors: list[str]


def page() -> bytes:
    """The dashboard's HTML."""
    return (resources.files("eventml.api") / "static" / "index.html").read_bytes()


class DashboardShell:
    """ASGI middleware: ``GET``/``HEAD /`` asking for HTML gets the page; the rest passes."""

    def __init__(self, app: ASGIApp, html: bytes) -> None:
        self.app, self.html = app, html

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD")
                and b"text/html" in dict(scope["headers"]).get(b"accept", b"")):
            await Response(self.html if scope["method"] == "GET" else b"",
                           media_type="text/html; charset=utf-8",
                           headers={"Cache-Control": "no-store",
                                    "Content-Length": str(len(self.html))})(scope, receive, send)
            return
        await self.app(scope, receive, send)


def static_files() -> StaticFiles:
    return StaticFiles(packages=[("eventml.api", "static")])


def dashboard_router(sampler: PipelineSampler) -> APIRouter:
    """The data routes over ``sampler`` (see the module docstring)."""
    api = APIRouter(prefix="/v1/dashboard", route_class=ApiRoute,
                    default_response_class=JSONResponse, tags=["dashboard"])

    @api.get("/snapshot", response_model=Snapshot,
             responses=error_responses(*COMMON_ERRORS))
    async def snapshot() -> Response:
        """The pipeline as sampled from the log (at most one interval old)."""
        snap = await run_in_threadpool(sampler.latest)
        return Response(orjson.dumps(snap), media_type="application/json")

    @api.get("/stream", response_class=StreamingResponse,
             responses={200: {"description": "event: snapshot, one per interval",
                              "content": {"text/event-stream": {}}},
                        **error_responses(*COMMON_ERRORS)})
    async def stream(
        request: Request,
        until_s: Annotated[float | None, Query(gt=0, le=MAX_STREAM_S,
                                               description="End the stream after this long.")] = None,
        max_events: Annotated[int | None, Query(ge=1, le=100_000,
                                                description="End after this many snapshots.")] = None,
    ) -> Response:
        """Server-Sent Events: a snapshot (as ``/snapshot``) every interval."""
        end = time.monotonic() + (until_s if until_s is not None else MAX_STREAM_S)
        interval = sampler.config.interval_s

        async def events() -> AsyncIterator[bytes]:
            sent = 0
            yield b": eventml dashboard\n\n"
            while time.monotonic() < end and (max_events is None or sent < max_events):
                snap = await run_in_threadpool(sampler.latest)
                yield b"event: snapshot\ndata: " + orjson.dumps(snap) + b"\n\n"
                sent += 1
                wait = min(interval, end - time.monotonic())
                if (max_events is not None and sent >= max_events) or wait <= 0:
                    return
                await asyncio.sleep(wait)
                if await request.is_disconnected():
                    return

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return api


def mount_dashboard(app: FastAPI, log: Log, *, pipeline: App | None = None,
                    models: ModelRegistry | None = None, metrics: ServiceMetrics | None = None,
                    config: SamplerConfig | None = None,
                    worker_metrics: Sequence[str] = ()) -> PipelineSampler:
    """Serve the dashboard on ``app``: the page at ``/`` (for browsers), its assets, the data
    routes, and the log's gauges on ``metrics`` (``GET /metrics``). ``pipeline``: the app
    whose topology, consumer group and alert topics to show; ``worker_metrics``: its
    workers' metrics endpoints, scraped for processing and model latency."""
    from eventml.observe.log_metrics import LogCollector

    sampler = PipelineSampler(log, app=pipeline, models=models, config=config,
                              worker_metrics=worker_metrics)
    app.include_router(dashboard_router(sampler))
    app.mount(STATIC_PATH, static_files(), name="dashboard-static")
    app.add_middleware(DashboardShell, html=page())
    if metrics is not None:
        metrics.registry.register(LogCollector(sampler))
    app.state.dashboard = sampler
    return sampler
