"""Error-rate drift on labelled predictions: a calibrated window test, and ADWIN.

:class:`ErrorRateDetector` (the default) compares each tumbling window of ``window``
labelled predictions with a reference period (given, or the first ``reference_size``):
``x`` errors in the window and ``r`` in the reference are tested with Fisher's exact
test, conditional on ``x + r`` (``x`` is then hypergeometric when nothing changed). The
test is exact and conservative, so a window of a stationary stream raises an alarm with
probability at most ``alpha``. ``alternative="greater"`` (the default) only alarms when
the error rate rises; ``"two-sided"`` also when it falls.

:class:`AdwinErrorDetector` runs river's ``ADWIN`` (``pip install 'eventml[river]'``)
on the same 0/1 outcomes: no windows to choose and quick on large jumps, but its
``delta`` bounds the false-alarm probability of each internal check, not per event, so
its false-alarm rate is measured (``eventml bench drift``), not configured.

What counts as an error is :func:`outcome`: ``metric="error"`` (the decision differs from
the label), ``"fnr"`` (missed positives, among positives: 1 - recall) or ``"fpr"`` (false
alarms, among negatives).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from eventml.ml.drift._cow import CopyOnWrite
from eventml.ml.drift.calibrate import scipy_stats
from eventml.ml.records import DriftDetected, LabelledPrediction

Metric = Literal["error", "fnr", "fpr"]
Alternative = Literal["greater", "two-sided"]
METRICS: tuple[Metric, ...] = ("error", "fnr", "fpr")


def outcome(value: Any, *, metric: Metric = "error", threshold: float = 0.5) -> bool | None:
    """Whether a labelled prediction is an error under ``metric`` (``None``: it does not
    count, e.g. a negative for ``"fnr"``).

    ``value`` is a :class:`~eventml.ml.records.LabelledPrediction`, its dict shape
    (``{"prediction": {...}, "label": ...}``) or a flat mapping with ``label`` and
    ``decision`` or ``score``. The decision is the prediction's own, else
    ``score >= threshold``; a label >= 0.5 is positive.

    >>> outcome({"score": 0.9, "label": 0.0})
    True
    >>> outcome({"decision": False, "label": 1.0}, metric="fpr") is None
    True
    """
    score, decision, label = _fields(value)
    predicted = bool(decision) if decision is not None else float(score) >= threshold
    positive = float(label) >= 0.5
    if metric == "error":
        return predicted != positive
    if metric == "fnr":
        return (not predicted) if positive else None
    if metric == "fpr":
        return predicted if not positive else None
    raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")


def _fields(value: Any) -> tuple[Any, Any, Any]:
    if isinstance(value, LabelledPrediction):
        return value.prediction.score, value.prediction.decision, value.label
    if not isinstance(value, Mapping):
        raise TypeError(
            f"error drift needs labelled predictions (LabelledPrediction or a mapping), "
            f"got {type(value).__name__}"
        )
    if "label" not in value:
        raise ValueError("a labelled prediction needs a 'label' field")
    inner = value.get("prediction")
    p = inner if isinstance(inner, Mapping) else value
    if p.get("decision") is None and p.get("score") is None:
        raise ValueError("a labelled prediction needs a 'decision' or a 'score'")
    return p.get("score"), p.get("decision"), value["label"]


class ErrorRateDetector(CopyOnWrite):
    """Change of an error rate between a reference and tumbling windows (Fisher's test).

    ``reference``: ``(errors, events)`` of a known period, or ``None`` to count the first
    ``reference_size`` outcomes. ``alpha``: the probability that a window of a stationary
    stream raises an alarm. After an alarm, ``after_drift="rebase"`` counts a new
    reference from the next ``reference_size`` outcomes (silent meanwhile).

    >>> det = ErrorRateDetector(window=200, reference=(50, 1_000), alpha=0.001)
    >>> [round(f.value, 2) for f in det.update_many([1] * 40 + [0] * 160)]
    [0.2]
    """

    def __init__(
        self,
        *,
        model: str = "model",
        window: int = 500,
        reference_size: int = 2_000,
        reference: tuple[int, int] | None = None,
        alpha: float = 1e-3,
        alternative: Alternative = "greater",
        after_drift: Literal["rebase", "keep"] = "rebase",
        metric: Metric = "error",
    ) -> None:
        if window < 10:
            raise ValueError(f"window must be >= 10 outcomes, got {window}")
        if reference_size < 10:
            raise ValueError(f"reference_size must be >= 10 outcomes, got {reference_size}")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if alternative not in ("greater", "two-sided"):
            raise ValueError(f"alternative must be 'greater' or 'two-sided', got {alternative!r}")
        if after_drift not in ("rebase", "keep"):
            raise ValueError(f"after_drift must be 'rebase' or 'keep', got {after_drift!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
        self.model = model
        self.window = window
        self.reference_size = reference_size
        self.alpha = alpha
        self.alternative: Alternative = alternative
        self.after_drift = after_drift
        self.metric: Metric = metric
        self._ref_errors = 0
        self._ref_n = 0
        self._ref_done = False
        self._crit: tuple[int, int] = (0, 0)  # window error counts: (fires at or below, at or above)
        self._win_errors = 0
        self._win_n = 0
        self._t0 = 0
        self._t1 = 0
        self.events_seen = 0
        self.windows_tested = 0
        self.windows_alarmed = 0
        self.references_built = 0
        if reference is not None:
            errors, n = (int(v) for v in reference)
            if n < 10 or not 0 <= errors <= n:
                raise ValueError(f"reference must be (errors, events) with events >= 10, got {reference}")
            self._set_reference(errors, n)

    # -- feeding ------------------------------------------------------------------------
    def update_one(self, error: bool | int, time_ms: int = 0) -> list[DriftDetected]:
        """Feed one outcome (true: an error). A call that raises changes nothing."""
        e = 1 if error else 0
        if not self._ref_done:
            if self._ref_n + 1 == self.reference_size:
                self._set_reference(self._ref_errors + e, self._ref_n + 1)
            else:
                self._ref_errors += e
                self._ref_n += 1
            self.events_seen += 1
            return []
        x, n = self._win_errors + e, self._win_n + 1
        t0 = time_ms if self._win_n == 0 else min(self._t0, time_ms)
        t1 = time_ms if self._win_n == 0 else max(self._t1, time_ms)
        if n < self.window:
            self._win_errors, self._win_n, self._t0, self._t1 = x, n, t0, t1
            self.events_seen += 1
            return []
        found = self._test(x, t0, t1, self.events_seen + 1)
        self.events_seen += 1
        self._closed(found)
        return found

    def update_many(self, errors: ArrayLike, times: ArrayLike | None = None) -> list[DriftDetected]:
        """Feed outcomes (0/1 or booleans) with their event times in ms (default 0)."""
        e = np.asarray(errors).astype(np.int64).reshape(-1)
        t = np.zeros(len(e), dtype=np.int64) if times is None else np.asarray(times, dtype=np.int64)
        if t.shape != e.shape:
            raise ValueError(f"times must have one entry per outcome ({len(e)}), got shape {t.shape}")
        out: list[DriftDetected] = []
        pos, n = 0, len(e)
        while pos < n:
            if not self._ref_done:
                take = min(n - pos, self.reference_size - self._ref_n)
                errs, count = self._ref_errors + int(e[pos:pos + take].sum()), self._ref_n + take
                if count == self.reference_size:
                    self._set_reference(errs, count)
                else:
                    self._ref_errors, self._ref_n = errs, count
                self.events_seen += take
                pos += take
                continue
            take = min(n - pos, self.window - self._win_n)
            chunk = t[pos:pos + take]
            lo, hi = int(chunk.min()), int(chunk.max())
            self._t0 = lo if self._win_n == 0 else min(self._t0, lo)
            self._t1 = hi if self._win_n == 0 else max(self._t1, hi)
            self._win_errors += int(e[pos:pos + take].sum())
            self._win_n += take
            self.events_seen += take
            pos += take
            if self._win_n == self.window:
                found = self._test(self._win_errors, self._t0, self._t1, self.events_seen)
                self._closed(found)
                out += found
        return out

    # -- state --------------------------------------------------------------------------
    @property
    def collecting(self) -> bool:
        return not self._ref_done

    @property
    def reference(self) -> tuple[int, int]:
        """``(errors, events)`` of the current reference (counted so far while collecting)."""
        return self._ref_errors, self._ref_n

    @property
    def critical_errors(self) -> tuple[int, int]:
        """Window error counts that alarm: at most the first (two-sided only; -1: none),
        at least the second (``window + 1``: none)."""
        return self._crit

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model, "metric": self.metric, "window": self.window,
            "alpha": self.alpha, "alternative": self.alternative,
            "reference": list(self.reference), "critical_errors": list(self._crit),
            "events_seen": self.events_seen, "windows_tested": self.windows_tested,
            "windows_alarmed": self.windows_alarmed, "references_built": self.references_built,
            "collecting": self.collecting,
        }

    # -- internals ----------------------------------------------------------------------
    def _p_values(self, x: NDArray[np.int64], ref_errors: int, ref_n: int) -> NDArray[np.float64]:
        """Fisher's exact p-value of ``x`` errors in a window, given the reference."""
        hypergeom = scipy_stats().hypergeom
        total, drawn = ref_n + self.window, self.window
        errors = ref_errors + x
        upper = hypergeom.sf(x - 1, total, errors, drawn)  # P(X >= x)
        if self.alternative == "greater":
            out: NDArray[np.float64] = np.asarray(upper, dtype=np.float64)
            return out
        lower = hypergeom.cdf(x, total, errors, drawn)  # P(X <= x)
        return np.asarray(np.minimum(1.0, 2.0 * np.minimum(upper, lower)), dtype=np.float64)

    def _set_reference(self, errors: int, n: int) -> None:
        xs = np.arange(self.window + 1, dtype=np.int64)
        fires = self._p_values(xs, errors, n) <= self.alpha
        rate = errors / n
        high = xs[fires & (xs >= rate * self.window)]
        low = xs[fires & (xs < rate * self.window)]
        self._crit = (int(low.max()) if low.size else -1,
                      int(high.min()) if high.size else self.window + 1)
        self._ref_errors, self._ref_n, self._ref_done = errors, n, True
        self._win_errors = self._win_n = 0
        self.references_built += 1

    def _test(self, x: int, t0: int, t1: int, seen: int) -> list[DriftDetected]:
        low, high = self._crit
        p = float(self._p_values(np.array([x]), self._ref_errors, self._ref_n)[0])
        if p > self.alpha:
            return []
        rate = x / self.window
        threshold = (high if x >= high else low) / self.window
        return [DriftDetected(
            model=self.model, kind="error", statistic="error_rate", value=rate,
            threshold=threshold, alpha=self.alpha, window_start_ms=t0, window_end_ms=t1,
            window_events=self.window, reference_events=self._ref_n, events_seen=seen,
            evidence={
                "metric": self.metric, "test": "fisher-exact", "alternative": self.alternative,
                "p_value": p, "window_errors": x, "reference_errors": self._ref_errors,
                "reference_rate": self._ref_errors / self._ref_n, "window_rate": rate,
                "critical_errors": list(self._crit), "window_index": self.windows_tested,
                "after_drift": self.after_drift,
            },
        )]

    def _closed(self, found: list[DriftDetected]) -> None:
        self.windows_tested += 1
        self._win_errors = self._win_n = 0
        if found:
            self.windows_alarmed += 1
            if self.after_drift == "rebase":
                self._ref_errors = self._ref_n = 0
                self._ref_done = False

    def __repr__(self) -> str:
        return (f"ErrorRateDetector({self.model!r}, metric={self.metric!r}, reference="
                f"{self._ref_errors}/{self._ref_n}, seen={self.events_seen}, "
                f"alarms={self.windows_alarmed})")


class AdwinErrorDetector(CopyOnWrite):
    """River's ADWIN over 0/1 outcomes: an alarm when its adaptive window finds two
    sub-windows whose error rates differ beyond its bound at confidence ``delta``."""

    def __init__(
        self,
        *,
        model: str = "model",
        delta: float = 0.002,
        clock: int = 32,
        grace_period: int = 10,
        metric: Metric = "error",
    ) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
        try:
            from river import drift
        except ImportError:
            raise ImportError("ADWIN needs river: pip install 'eventml[river]'") from None
        adwin: Any = drift.ADWIN
        self.model = model
        self.delta = delta
        self.metric: Metric = metric
        self._adwin: Any = adwin(delta=delta, clock=clock, grace_period=grace_period)
        self._t0: int | None = None
        self.events_seen = 0
        self.alarms = 0

    def update_one(self, error: bool | int, time_ms: int = 0) -> list[DriftDetected]:
        adwin: Any = self._adwin
        before, width = float(adwin.estimation), int(adwin.width)
        adwin.update(1.0 if error else 0.0)
        self.events_seen += 1
        t0 = time_ms if self._t0 is None else self._t0
        self._t0 = t0
        if not adwin.drift_detected:
            return []
        after = float(adwin.estimation)
        self.alarms += 1
        self._t0 = None
        return [DriftDetected(
            model=self.model, kind="error", statistic="adwin", value=abs(after - before),
            threshold=0.0, alpha=self.delta, window_start_ms=t0, window_end_ms=time_ms,
            window_events=width + 1, reference_events=width + 1 - int(adwin.width),
            events_seen=self.events_seen,
            evidence={
                "metric": self.metric, "test": "adwin", "delta": self.delta,
                "error_rate_before": before, "error_rate_after": after,
                "width_before": width + 1, "width_after": int(adwin.width),
                "note": "value is the change of ADWIN's estimate; its cut bound is internal",
            },
        )]

    def update_many(self, errors: ArrayLike, times: ArrayLike | None = None) -> list[DriftDetected]:
        e = np.asarray(errors).astype(bool).reshape(-1).tolist()
        t = [0] * len(e) if times is None else np.asarray(times, dtype=np.int64).tolist()
        out: list[DriftDetected] = []
        for err, ms in zip(e, t, strict=True):
            out += self.update_one(err, ms)
        return out

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "metric": self.metric, "delta": self.delta,
                "events_seen": self.events_seen, "alarms": self.alarms,
                "width": int(self._adwin.width), "estimation": float(self._adwin.estimation)}

