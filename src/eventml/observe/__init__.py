"""Observability: Prometheus metrics of the HTTP service and of the pipeline's workers.

Imported lazily: the engine and the ML operators import :mod:`eventml.observe._current`,
which must not need prometheus-client (the ``serve`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventml.observe.http import MetricsMiddleware, ServiceMetrics
    from eventml.observe.worker import WorkerMetrics

__all__ = ["MetricsMiddleware", "ServiceMetrics", "WorkerMetrics"]
_HOME = {"MetricsMiddleware": "http", "ServiceMetrics": "http", "WorkerMetrics": "worker"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        from importlib import import_module

        return getattr(import_module(f"eventml.observe.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
