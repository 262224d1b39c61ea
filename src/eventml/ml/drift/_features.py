"""Feature drift: tumbling windows of events tested against a reference, per feature.

The pure core behind :func:`eventml.ml.drift.detect_drift`; vectorized over a matrix of
events (:meth:`FeatureDriftDetector.update_many`) or fed one event at a time
(:meth:`FeatureDriftDetector.update_one`, what the stream operator calls).

Each window of ``window`` events is compared with the reference, feature by feature,
with PSI (quantile bins of the reference, missing values in a bin of their own) and the
two-sample KS test (missing values left out; their rate is PSI's business). The window's
tests share the false-alarm probability ``alpha`` (see :mod:`eventml.ml.drift.calibrate`).
Every test that crosses its threshold is one :class:`~eventml.ml.records.DriftDetected`.

The reference is given (e.g. a sample of the training data) or is the stream's first
``reference_size`` events. After a window raises an alarm, ``after_drift="rebase"``
(the default) drops the reference and learns a new one from the next ``reference_size``
events, silent meanwhile: one drift, one alarm (or one per test that crossed), then the
new normal. ``"keep"`` keeps the reference, so a lasting drift alarms at every window.

>>> rng = np.random.default_rng(0)
>>> det = FeatureDriftDetector(["x"], reference={"x": rng.normal(size=2_000)},
...                            window=500, alpha=0.01)
>>> det.update_many(rng.normal(size=(2_000, 1)))
[]
>>> found = det.update_many(rng.normal(loc=1.0, size=(500, 1)))
>>> sorted(f.statistic for f in found)
['ks', 'psi']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from eventml.ml.drift._cow import CopyOnWrite
from eventml.ml.drift._psi import bin_counts, psi
from eventml.ml.drift._reference import QUANTILES, FeatureReference, build_references
from eventml.ml.drift.calibrate import (
    FOLK_PSI,
    ks_p_value,
    ks_statistic,
    ks_threshold,
    per_test_alpha,
    scipy_stats,
)
from eventml.ml.records import DriftDetected

Statistic = Literal["psi", "ks"]
AfterDrift = Literal["rebase", "keep"]
STATISTICS: tuple[Statistic, ...] = ("psi", "ks")
_MIN_KS = 2  # non-missing values a window needs for the KS test


class FeatureDriftDetector(CopyOnWrite):
    """Per-feature distribution drift over tumbling windows of ``window`` events.

    ``reference``: a mapping (or DataFrame) of feature name to values, or a 2-D array whose
    columns are ``features``; more than ``reference_size`` rows are subsampled (seeded).
    ``None``: the first ``reference_size`` events are the reference. ``alpha`` is the
    probability that a window of a stationary stream raises any alarm; ``psi_threshold``
    replaces PSI's calibrated threshold by a fixed one (e.g. the folk 0.1: not
    calibrated; for comparison). ``seed`` makes the PSI calibration reproducible.
    """

    def __init__(
        self,
        features: Sequence[str],
        *,
        reference: Any = None,
        model: str = "model",
        window: int = 1_000,
        reference_size: int = 5_000,
        alpha: float = 1e-3,
        bins: int = 10,
        statistics: Sequence[Statistic] = STATISTICS,
        psi_threshold: float | None = None,
        after_drift: AfterDrift = "rebase",
        seed: int = 0,
        psi_draws: int | None = None,
    ) -> None:
        if isinstance(features, str) or not features:
            raise ValueError("features= must be a non-empty list of field names")
        if len(set(features)) != len(features):
            raise ValueError(f"features= names a field twice: {list(features)}")
        if window < 10:
            raise ValueError(f"window must be >= 10 events, got {window}")
        if reference_size < 10:
            raise ValueError(f"reference_size must be >= 10 events, got {reference_size}")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        stats = tuple(dict.fromkeys(statistics))
        if not stats or any(s not in STATISTICS for s in stats):
            raise ValueError(f"statistics must be among {list(STATISTICS)}, got {list(statistics)}")
        if after_drift not in ("rebase", "keep"):
            raise ValueError(f"after_drift must be 'rebase' or 'keep', got {after_drift!r}")
        if psi_threshold is not None and psi_threshold <= 0:
            raise ValueError(f"psi_threshold must be > 0, got {psi_threshold}")
        self.features = tuple(features)
        self.model = model
        self.window = window
        self.reference_size = reference_size
        self.alpha = alpha
        self.bins = bins
        self.statistics: tuple[Statistic, ...] = stats
        self.alpha_test = per_test_alpha(alpha, len(self.features) * len(stats))
        self.psi_fixed = psi_threshold
        self.after_drift = after_drift
        self.seed = seed
        self.psi_draws = psi_draws
        k = len(self.features)
        self._refs: tuple[FeatureReference, ...] | None = None
        self._collect: NDArray[np.float64] | None = None
        self._collected = 0
        self._buf = np.empty((window, k), dtype=np.float64)
        self._filled = 0
        self._t0 = 0
        self._t1 = 0
        self.events_seen = 0
        self.windows_tested = 0
        self.windows_alarmed = 0
        self.references_built = 0
        self.alarms: dict[str, int] = {}  # "feature/statistic" -> alarms
        if reference is None:
            self._collect = np.empty((reference_size, k), dtype=np.float64)
        else:
            self._refs = self._build(self._reference_matrix(reference))

    # -- feeding ------------------------------------------------------------------------
    def update_one(self, row: Sequence[float | None], time_ms: int = 0) -> list[DriftDetected]:
        """Feed one event's feature values (in ``features`` order; NaN or None: missing).

        A call that raises leaves the detector as it was (its counters move last), so
        the engine may retry it."""
        if self._refs is None:
            collect = self._collect
            assert collect is not None
            i = self._collected
            collect[i] = _floats(row)
            if i + 1 == len(collect):
                self._refs = self._build(collect)
                self._collect = None
                self._collected = 0
            else:
                self._collected = i + 1
            self.events_seen += 1
            return []
        i = self._filled
        self._buf[i] = _floats(row)
        t0 = time_ms if i == 0 else min(self._t0, time_ms)
        t1 = time_ms if i == 0 else max(self._t1, time_ms)
        if i + 1 < self.window:
            self._filled, self._t0, self._t1 = i + 1, t0, t1
            self.events_seen += 1
            return []
        found = self._test(self._refs, t0, t1, self.events_seen + 1)
        self.events_seen += 1
        self._closed(found)
        return found

    def update_many(self, x: ArrayLike, times: ArrayLike | None = None) -> list[DriftDetected]:
        """Feed a matrix of events (rows; columns in ``features`` order, NaN: missing) with
        their event times in ms (default 0); returns the alarms of the windows it closed."""
        m = np.asarray(x, dtype=np.float64)
        if m.ndim == 1 and len(self.features) == 1:
            m = m[:, None]
        if m.ndim != 2 or m.shape[1] != len(self.features):
            raise ValueError(f"x must have shape (events, {len(self.features)}), got {m.shape}")
        t = np.zeros(len(m), dtype=np.int64) if times is None else np.asarray(times, dtype=np.int64)
        if t.shape != (len(m),):
            raise ValueError(f"times must have one entry per row ({len(m)}), got shape {t.shape}")
        out: list[DriftDetected] = []
        pos, n = 0, len(m)
        while pos < n:
            if self._refs is None:
                collect = self._collect
                assert collect is not None
                take = min(n - pos, len(collect) - self._collected)
                collect[self._collected:self._collected + take] = m[pos:pos + take]
                self._collected += take
                self.events_seen += take
                pos += take
                if self._collected == len(collect):
                    self._refs = self._build(collect)
                    self._collect, self._collected = None, 0
                continue
            take = min(n - pos, self.window - self._filled)
            self._buf[self._filled:self._filled + take] = m[pos:pos + take]
            chunk = t[pos:pos + take]
            lo, hi = int(chunk.min()), int(chunk.max())
            self._t0 = lo if self._filled == 0 else min(self._t0, lo)
            self._t1 = hi if self._filled == 0 else max(self._t1, hi)
            self._filled += take
            self.events_seen += take
            pos += take
            if self._filled == self.window:
                found = self._test(self._refs, self._t0, self._t1, self.events_seen)
                self._closed(found)
                out += found
        return out

    # -- state --------------------------------------------------------------------------
    @property
    def collecting(self) -> bool:
        """Whether the detector is learning its reference (and so tests nothing yet)."""
        return self._refs is None

    @property
    def references(self) -> tuple[FeatureReference, ...]:
        return self._refs or ()

    def summary(self) -> dict[str, Any]:
        """Counters and thresholds, as plain data."""
        return {
            "model": self.model,
            "features": list(self.features),
            "window": self.window,
            "alpha": self.alpha,
            "alpha_per_test": self.alpha_test,
            "statistics": list(self.statistics),
            "events_seen": self.events_seen,
            "windows_tested": self.windows_tested,
            "windows_alarmed": self.windows_alarmed,
            "alarms": dict(self.alarms),
            "references_built": self.references_built,
            "collecting": self.collecting,
            "psi_thresholds": {r.feature: r.psi.to_dict() for r in self.references},
        }

    # -- internals ----------------------------------------------------------------------
    def _reference_matrix(self, reference: Any) -> NDArray[np.float64]:
        if isinstance(reference, np.ndarray):
            m = np.asarray(reference, dtype=np.float64)
            if m.ndim == 1 and len(self.features) == 1:
                m = m[:, None]
            if m.ndim != 2 or m.shape[1] != len(self.features):
                raise ValueError(
                    f"reference must have one column per feature ({len(self.features)}), "
                    f"got shape {m.shape}"
                )
        else:
            columns = []
            for f in self.features:
                try:
                    col = reference[f]
                except (KeyError, IndexError, TypeError):
                    raise ValueError(
                        f"reference has no column {f!r}: give a mapping (or DataFrame) of "
                        "every feature's values, or a 2-D array with one column per feature"
                    ) from None
                columns.append(np.asarray(
                    [np.nan if v is None else v for v in col] if isinstance(col, list) else col,
                    dtype=np.float64,
                ))
            sizes = {len(c) for c in columns}
            if len(sizes) != 1:
                raise ValueError(f"reference columns differ in length: {sorted(sizes)}")
            m = np.column_stack(columns)
        if len(m) < 10:
            raise ValueError(f"reference has {len(m)} events: give at least 10")
        if len(m) > self.reference_size:  # a bounded, seeded sample (state stays small)
            keep = np.random.default_rng(self.seed).choice(len(m), self.reference_size, replace=False)
            m = m[np.sort(keep)]
        return np.ascontiguousarray(m)

    def _build(self, x: NDArray[np.float64]) -> tuple[FeatureReference, ...]:
        refs = build_references(
            x, self.features, window=self.window, bins=self.bins, alpha=self.alpha_test,
            seed=self.seed + 1_000_003 * self.references_built, fixed_psi=self.psi_fixed,
            draws=self.psi_draws,
        )
        self.references_built += 1
        return refs

    def _test(
        self, refs: tuple[FeatureReference, ...], t0: int, t1: int, seen: int
    ) -> list[DriftDetected]:
        """The alarms of the full window in ``self._buf`` (changes nothing)."""
        found = []
        for j, ref in enumerate(refs):
            col = self._buf[:, j]
            counts = bin_counts(col, ref.edges)
            value_psi = psi(ref.counts, counts)
            present = col[~np.isnan(col)]
            ks = None
            if "ks" in self.statistics and present.size >= _MIN_KS and ref.values.size >= _MIN_KS:
                d = ks_statistic(ref.values, present)
                ks = (d, ks_threshold(ref.values.size, present.size, self.alpha_test))
            crossed: list[tuple[Statistic, float, float]] = []
            if "psi" in self.statistics and value_psi > ref.psi.value:
                crossed.append(("psi", value_psi, ref.psi.value))
            if ks is not None and ks[0] > ks[1]:
                crossed.append(("ks", ks[0], ks[1]))
            if not crossed:
                continue
            evidence = self._evidence(ref, col, present, counts, value_psi, ks)
            for statistic, value, threshold in crossed:
                found.append(DriftDetected(
                    model=self.model, kind="feature", statistic=statistic, value=value,
                    threshold=threshold, alpha=self.alpha_test, feature=ref.feature,
                    window_start_ms=t0, window_end_ms=t1, window_events=self.window,
                    reference_events=ref.n, events_seen=seen,
                    evidence={**evidence, "window_index": self.windows_tested},
                ))
        return found

    def _evidence(
        self,
        ref: FeatureReference,
        col: NDArray[np.float64],
        present: NDArray[np.float64],
        counts: NDArray[np.int64],
        value_psi: float,
        ks: tuple[float, float] | None,
    ) -> dict[str, Any]:
        stats = scipy_stats()
        ref_n, win_n = max(ref.n, 1), max(len(col), 1)
        wasserstein = (float(stats.wasserstein_distance(ref.values, present))
                       if present.size and ref.values.size else None)
        folk = "major" if value_psi >= FOLK_PSI["major"] else (
            "moderate" if value_psi >= FOLK_PSI["moderate"] else "none")
        return {
            "quantile_levels": list(QUANTILES),
            "reference_quantiles": ref.quantiles(),
            "window_quantiles": ([float(q) for q in np.quantile(present, QUANTILES)]
                                 if present.size else []),
            "reference_mean": _num(ref.values.mean()) if ref.values.size else None,
            "window_mean": _num(present.mean()) if present.size else None,
            "reference_missing_rate": ref.missing / ref_n,
            "window_missing_rate": float(counts[-1]) / win_n,
            "psi": value_psi,
            "psi_threshold": ref.psi.value,
            "psi_threshold_source": ref.psi.source,
            "psi_chi2_threshold": ref.psi.chi2,
            "psi_folk": folk,
            "ks": None if ks is None else ks[0],
            "ks_p_value": None if ks is None else ks_p_value(ks[0], ref.values.size, present.size),
            "ks_threshold": None if ks is None else ks[1],
            "wasserstein": wasserstein,
            "bin_edges": [float(e) for e in ref.edges],
            "reference_bins": (ref.counts / ref_n).tolist(),
            "window_bins": (counts / win_n).tolist(),
            "alpha_window": self.alpha,
            "tests_per_window": len(self.features) * len(self.statistics),
            "after_drift": self.after_drift,
        }

    def _closed(self, found: list[DriftDetected]) -> None:
        """The window was tested: count, reset, and rebase after an alarm if asked."""
        self.windows_tested += 1
        self._filled = 0
        if not found:
            return
        self.windows_alarmed += 1
        for f in found:
            key = f"{f.feature}/{f.statistic}"
            self.alarms[key] = self.alarms.get(key, 0) + 1
        if self.after_drift == "rebase":
            self._refs = None
            self._collect = np.empty((self.reference_size, len(self.features)), dtype=np.float64)
            self._collected = 0

    def __repr__(self) -> str:
        state = "collecting" if self.collecting else f"window {self._filled}/{self.window}"
        return (f"FeatureDriftDetector({self.model!r}, features={list(self.features)}, "
                f"{state}, seen={self.events_seen}, alarms={self.windows_alarmed})")


def _floats(row: Sequence[float | None]) -> list[float]:
    return [np.nan if v is None else float(v) for v in row]


def _num(x: Any) -> float | None:
    v = float(x)
    return v if np.isfinite(v) else None
