"""Which metrics hear about model calls and drift windows: the current thread's worker's.

A worker runs its operators in its own thread; before each batch it binds its metrics
here (:meth:`eventml.observe.worker.WorkerMetrics.bind`). Operators deep in a pipeline
(the scorer, a drift detector) report to :func:`current` without knowing which worker
runs them. Nothing bound (a scorer called outside a worker, or a worker without
metrics): nothing is recorded. No dependencies: the engine and the ML operators import
this module whether or not prometheus-client is installed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray


class PipelineObserver(Protocol):
    """What operators report, at most once per model call or closed drift window."""

    def model_scored(self, model: str, version: str, seconds: float,
                     scores: NDArray[np.float64]) -> None:
        """One model call: its duration and the scores it returned (one per event)."""

    def drift_window(self, model: str, detector: str, alarms: Sequence[Any]) -> None:
        """A drift detector tested a window (or, without windows, raised ``alarms``):
        ``alarms`` are its :class:`~eventml.ml.records.DriftDetected` (empty: no drift)."""


_local = threading.local()


def current() -> PipelineObserver | None:
    """The observer bound in this thread, if any."""
    observer: PipelineObserver | None = getattr(_local, "observer", None)
    return observer


def bind(observer: PipelineObserver | None) -> None:
    """Make ``observer`` this thread's (``None``: none)."""
    _local.observer = observer
