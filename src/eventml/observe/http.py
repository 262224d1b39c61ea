"""Prometheus metrics of the HTTP service, and the ASGI middleware that records them.

One :class:`ServiceMetrics` per app, with its own ``CollectorRegistry`` (two apps in one
process, as in tests, never share counters). Requests are labelled by the route's path
template (``/v1/topics/{topic}/events``), never the raw path: a label per topic or key
would grow without bound, and paths can carry what a client should not put in a metric.
Unmatched paths share the label ``unmatched``.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST
# latency buckets for a service whose target is p99 <= 5 ms: fine below 10 ms
_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServiceMetrics:
    """The service's request counters and latency histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("eventml_http_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("eventml_http_request_seconds",
                                 "Time from a request's start to its answer's last byte",
                                 ["method", "route"], buckets=_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("eventml_http_requests_in_flight", "Requests being answered",
                               registry=self.registry)

    def render(self) -> bytes:
        """The text exposition format (what ``GET /metrics`` answers)."""
        return bytes(generate_latest(self.registry))

    def middleware(self, app: Any) -> Any:
        """Wrap the ASGI ``app`` so every HTTP request is counted and timed."""
        metrics = self

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            status = [500]  # an exception without a response start counts as a 500

            async def send_status(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status[0] = int(message["status"])
                await send(message)

            start = time.perf_counter()
            metrics.in_flight.inc()
            try:
                await app(scope, receive, send_status)
            finally:
                metrics.in_flight.dec()
                route = scope.get("route")
                label = getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched"
                method = str(scope.get("method", "")).upper()
                metrics.latency.labels(method, label).observe(time.perf_counter() - start)
                metrics.requests.labels(method, label, str(status[0])).inc()

        return asgi


class MetricsMiddleware:
    """:meth:`ServiceMetrics.middleware` in the shape ``app.add_middleware`` takes."""

    def __init__(self, app: Any, metrics: ServiceMetrics) -> None:
        self._asgi = metrics.middleware(app)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self._asgi(scope, receive, send)
