"""Thresholds calibrated to a stated false-alarm rate, and the check that counts false alarms.

A detector tests each window of ``W`` events; ``alpha`` is the probability that a window
of a stationary stream raises an alarm (family-wise: any feature, any statistic). Over a
stream of ``N`` events that is at most ``alpha * N / W`` false alarms on average, so a
target of one false alarm per ``E`` events is ``alpha = W / E``
(:func:`alpha_for_run_length`, the "expected run time" of online detectors). The
window's ``m`` tests share ``alpha`` by Bonferroni (:func:`per_test_alpha`), which holds
whatever their dependence.

Per statistic:

- KS: the two-sample Kolmogorov-Smirnov statistic against its asymptotic null
  (scipy's ``kstwo`` at ``n*m/(n+m)``, as ``scipy.stats.ks_2samp(method="asymp")``):
  exact enough for windows of hundreds of events, conservative with ties.
- PSI: no closed form for finite windows, so the null is simulated (seeded): the
  reference's bin counts and a window's are drawn from the reference's (smoothed) bin
  proportions, and the threshold is the simulated ``1 - alpha`` quantile. When
  ``alpha`` is too small for the draws to reach (fewer than 50 beyond the quantile), the
  tail is a chi-square fitted to the simulated mean and variance. The folk thresholds
  (0.1 "moderate", 0.25 "major") ignore the window size and are reported beside it.

:func:`check_false_alarms` is the verdict the benchmark and the tests apply: the alarms
counted over ``trials`` windows against the binomial bound their ``alpha`` allows.
"""

from __future__ import annotations

import functools
import importlib
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from eventml.ml.drift._psi import SMOOTHING, psi_many

__all__ = [
    "FOLK_PSI",
    "FalseAlarmCheck",
    "PsiThreshold",
    "alpha_for_run_length",
    "check_false_alarms",
    "ks_p_value",
    "ks_statistic",
    "ks_threshold",
    "per_test_alpha",
    "psi_chi2_threshold",
    "psi_threshold",
    "scipy_stats",
]

FOLK_PSI = {"moderate": 0.1, "major": 0.25}
_MIN_TAIL = 50  # simulated draws beyond the quantile for it to be read off directly
_CHUNK = 50_000
_FIT_DRAWS = 20_000  # enough for the mean and variance the chi-square tail is fitted to
_MAX_DRAWS = 200_000


def scipy_stats() -> Any:
    """``scipy.stats``, or one line saying how to install it."""
    try:
        return importlib.import_module("scipy.stats")
    except ImportError:  # pragma: no cover - scipy comes with eventml[ml]
        raise ImportError("drift detection needs scipy: pip install 'eventml[ml]'") from None


def alpha_for_run_length(window: int, events: float) -> float:
    """The per-window false-alarm probability that gives, on a stationary stream, one
    false alarm per ``events`` events on average (tumbling windows of ``window`` events).

    >>> alpha_for_run_length(1_000, 1_000_000)
    0.001
    """
    if window < 1 or events < window:
        raise ValueError(f"need 1 <= window <= events, got window={window}, events={events}")
    return window / events


def per_test_alpha(alpha: float, tests: int) -> float:
    """Bonferroni: each of a window's ``tests`` tests gets ``alpha / tests``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if tests < 1:
        raise ValueError(f"tests must be >= 1, got {tests}")
    return alpha / tests


def ks_statistic(reference_sorted: NDArray[np.float64], values: NDArray[np.float64]) -> float:
    """The two-sample KS statistic, ``max |F_ref - F_window|`` (ties as scipy counts them).

    The same number as ``scipy.stats.ks_2samp(...).statistic``, without its p-value:
    for small samples scipy computes that exactly (milliseconds), and a detector only
    needs it for the windows that alarm (:func:`ks_p_value`)."""
    w = np.sort(values)
    both = np.concatenate([reference_sorted, w])
    diff = (np.searchsorted(reference_sorted, both, side="right") / reference_sorted.size
            - np.searchsorted(w, both, side="right") / w.size)
    return float(np.abs(diff).max())


def ks_p_value(d: float, n_reference: int, n_window: int) -> float:
    """The asymptotic two-sided p-value of KS statistic ``d`` (as ``ks_2samp(method="asymp")``)."""
    en = max(round(n_reference * n_window / (n_reference + n_window)), 1)
    return float(np.clip(scipy_stats().kstwo.sf(d, en), 0.0, 1.0))


def ks_threshold(n_reference: int, n_window: int, alpha: float) -> float:
    """The KS statistic above which two samples of these sizes differ at level ``alpha``
    (two-sided, asymptotic: the critical value ``ks_2samp(method="asymp")`` implies)."""
    if n_reference < 1 or n_window < 1:
        return math.inf
    return _kstwo_isf(max(round(n_reference * n_window / (n_reference + n_window)), 1), alpha)


@functools.lru_cache(maxsize=4096)
def _kstwo_isf(en: int, alpha: float) -> float:
    return float(scipy_stats().kstwo.isf(alpha, en))  # ~0.5 ms: windows repeat their sizes


def psi_chi2_threshold(bins: int, n_reference: int, window: int, alpha: float) -> float:
    """The large-sample PSI threshold: ``PSI * (1/n + 1/W)^-1`` tends to chi-square with
    ``bins - 1`` degrees of freedom under no drift (for comparison with the simulation)."""
    return float(scipy_stats().chi2.isf(alpha, max(bins - 1, 1)) * (1 / n_reference + 1 / window))


@dataclass(frozen=True)
class PsiThreshold:
    """A PSI threshold and how it was found: ``quantile`` of ``draws`` simulated
    no-drift windows, or ``chi2-fit`` (their mean and variance, extrapolated)."""

    value: float
    source: Literal["quantile", "chi2-fit", "fixed"]
    draws: int
    chi2: float  # the large-sample threshold, for comparison

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source, "draws": self.draws, "chi2": self.chi2}


def psi_threshold(
    reference_counts: NDArray[np.int64],
    window: int,
    alpha: float,
    *,
    seed: int = 0,
    draws: int | None = None,
    smoothing: float = SMOOTHING,
) -> PsiThreshold:
    """The PSI above which a window of ``window`` events differs from the reference at
    level ``alpha``, from the statistic's simulated null (see the module's doc).

    ``draws`` defaults to enough for the quantile (``50 / alpha``, at least 20,000) up
    to 200,000 (about 0.3 s); below ``alpha = 2.5e-4`` it is 20,000 for the fitted tail.
    """
    counts = np.asarray(reference_counts, dtype=np.int64)
    n_ref = int(counts.sum())
    if n_ref < 1 or window < 1:
        raise ValueError("psi_threshold needs a non-empty reference and window")
    if draws is None:
        wanted = max(math.ceil(_MIN_TAIL / alpha), _FIT_DRAWS)
        draws = wanted if wanted <= _MAX_DRAWS else _FIT_DRAWS
    p = (counts + smoothing) / (n_ref + smoothing * counts.size)
    rng = np.random.default_rng(seed)
    stats = np.empty(draws, dtype=np.float64)
    for start in range(0, draws, _CHUNK):
        size = min(_CHUNK, draws - start)
        ref = rng.multinomial(n_ref, p, size=size)
        win = rng.multinomial(window, p, size=size)
        stats[start:start + size] = psi_many(ref, win, smoothing=smoothing)
    chi2 = psi_chi2_threshold(int((counts > 0).sum()), n_ref, window, alpha)
    if alpha * draws >= _MIN_TAIL:
        value = float(np.quantile(stats, 1.0 - alpha, method="higher"))
        return PsiThreshold(value, "quantile", draws, chi2)
    mean, var = float(stats.mean()), float(stats.var())
    scale, df = var / (2 * mean), 2 * mean * mean / var
    value = float(scale * scipy_stats().chi2.isf(alpha, df))
    return PsiThreshold(value, "chi2-fit", draws, chi2)


@dataclass(frozen=True)
class FalseAlarmCheck:
    """Alarms on stationary data against what ``alpha`` allows over ``trials`` windows.

    ``bound`` is the largest count a calibrated detector exceeds with probability at
    most ``1 - confidence`` (the binomial ``(trials, alpha)`` quantile); ``ok`` when
    ``alarms <= bound``.
    """

    alarms: int
    trials: int
    alpha: float
    expected: float
    bound: int
    confidence: float
    ok: bool

    @property
    def rate(self) -> float:
        return self.alarms / self.trials if self.trials else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"alarms": self.alarms, "trials": self.trials, "alpha": self.alpha,
                "expected": self.expected, "bound": self.bound, "confidence": self.confidence,
                "rate": self.rate, "ok": self.ok}


def check_false_alarms(
    alarms: int, trials: int, alpha: float, *, confidence: float = 0.999
) -> FalseAlarmCheck:
    """Whether ``alarms`` false alarms in ``trials`` windows are within what a
    false-alarm probability of ``alpha`` per window allows (one-sided, binomial).

    >>> check_false_alarms(3, 1_000, 0.001).ok
    True
    >>> check_false_alarms(40, 1_000, 0.001).ok
    False
    """
    if trials < 0 or alarms < 0:
        raise ValueError("alarms and trials must be >= 0")
    bound = int(scipy_stats().binom.ppf(confidence, trials, alpha)) if trials else 0
    return FalseAlarmCheck(alarms, trials, alpha, alpha * trials, bound, confidence, alarms <= bound)
