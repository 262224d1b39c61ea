"""Latency and batch-size statistics of model calls, per model version (pure: times passed in)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

_SAMPLES = 10_000  # per-batch times kept for percentiles (the most recent ones)


def _bucket(size: int) -> int:
    """The power of two at or above ``size`` (1, 2, 4, ...): the histogram's bucket bound."""
    return 1 << max(0, size - 1).bit_length()


@dataclass
class VersionStats:
    """One model version's calls: batches scored, events, failures and seconds.

    ``sizes`` counts batches by size bucket (the power of two at or above the size);
    ``p50_ms``/``p99_ms`` are per-batch model-call times over the last 10,000 batches.
    """

    batches: int = 0
    events: int = 0
    seconds: float = 0.0
    failed_events: int = 0
    bisect_calls: int = 0
    max_batch: int = 0
    sizes: dict[int, int] = field(default_factory=dict)
    _times: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES), repr=False)

    def add(self, size: int, seconds: float) -> None:
        self.batches += 1
        self.events += size
        self.seconds += seconds
        self.max_batch = max(self.max_batch, size)
        b = _bucket(size)
        self.sizes[b] = self.sizes.get(b, 0) + 1
        self._times.append(seconds)

    def percentile_ms(self, q: float) -> float | None:
        """The ``q``-quantile (0..1, nearest rank) of recent per-batch times, in ms."""
        if not self._times:
            return None
        ordered = sorted(self._times)
        rank = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))
        return ordered[rank] * 1000

    @property
    def mean_batch(self) -> float:
        return self.events / self.batches if self.batches else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "events": self.events,
            "seconds": self.seconds,
            "events_per_s": self.events / self.seconds if self.seconds else None,
            "mean_batch": self.mean_batch,
            "max_batch": self.max_batch,
            "batch_sizes": {f"<={b}": n for b, n in sorted(self.sizes.items())},
            "p50_ms": self.percentile_ms(0.50),
            "p99_ms": self.percentile_ms(0.99),
            "failed_events": self.failed_events,
            "bisect_calls": self.bisect_calls,
        }


class InferenceStats:
    """Model-call statistics keyed by model version (``None``: version unknown).

    Kept in the process that scores: with several worker processes, each has its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.versions: dict[str | None, VersionStats] = {}

    def of(self, version: str | None) -> VersionStats:
        s = self.versions.get(version)
        if s is None:
            with self._lock:
                s = self.versions.setdefault(version, VersionStats())
        return s

    def record(self, version: str | None, size: int, seconds: float) -> None:
        """One model call over ``size`` events that took ``seconds``."""
        s = self.of(version)
        with self._lock:
            s.add(size, seconds)

    def record_failures(self, version: str | None, events: int, calls: int) -> None:
        """Bisection of a failing batch: ``events`` could not be scored, in ``calls`` extra calls."""
        s = self.of(version)
        with self._lock:
            s.failed_events += events
            s.bisect_calls += calls

    @property
    def events(self) -> int:
        return sum(s.events for s in self.versions.values())

    @property
    def batches(self) -> int:
        return sum(s.batches for s in self.versions.values())

    def as_dict(self) -> dict[str, Any]:
        """``{version: {...}}`` (an unknown version is ``"unknown"``)."""
        return {("unknown" if v is None else v): s.as_dict() for v, s in self.versions.items()}
