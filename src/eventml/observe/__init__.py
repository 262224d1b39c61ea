"""Observability: Prometheus metrics of the HTTP service (pipeline metrics, tracing: to come)."""

from eventml.observe.http import MetricsMiddleware, ServiceMetrics

__all__ = ["MetricsMiddleware", "ServiceMetrics"]
