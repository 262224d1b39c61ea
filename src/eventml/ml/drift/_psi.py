"""The population stability index over quantile bins of a reference (pure numpy).

Bins are cut at the reference's quantiles, so each holds about the same share of the
reference; a discrete feature (few distinct values) gets one bin per value instead,
because equal quantiles collapse into one edge. Missing values (NaN) have a bin of
their own, the last one: a change in the missing rate moves the index like any other
change of the distribution.

>>> edges = quantile_edges(np.arange(100.0), bins=4)
>>> edges.tolist()
[24.75, 49.5, 74.25]
>>> bin_counts(np.array([0.0, 30.0, 60.0, 90.0, np.nan]), edges).tolist()
[1, 1, 1, 1, 1]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["SMOOTHING", "bin_counts", "psi", "psi_many", "quantile_edges"]

SMOOTHING = 0.5
"""Pseudo-count added to every bin of both sides (Jeffreys' prior), so an empty bin gives a
finite index; the calibration simulates the same formula, so it is part of the statistic."""


def quantile_edges(reference: ArrayLike, bins: int = 10) -> NDArray[np.float64]:
    """Inner cut points of ``bins`` equal-frequency bins of the reference's non-missing
    values (distinct, ascending; fewer when values repeat). Bin ``i`` holds
    ``edges[i-1] <= x < edges[i]``: see :func:`bin_counts`."""
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    values = np.asarray(reference, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return np.empty(0, dtype=np.float64)
    distinct = np.unique(values)
    if distinct.size <= bins:  # a discrete feature: one bin per value
        return distinct[1:].copy()
    inner = np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(inner)


def bin_counts(values: ArrayLike, edges: NDArray[np.float64]) -> NDArray[np.int64]:
    """Counts per bin: ``len(edges) + 1`` value bins, then the missing (NaN) bin."""
    x = np.asarray(values, dtype=np.float64)
    missing = np.isnan(x)
    index = np.searchsorted(edges, x, side="right")
    index[missing] = edges.size + 1
    return np.bincount(index, minlength=edges.size + 2).astype(np.int64)


def psi(
    expected: ArrayLike, actual: ArrayLike, *, smoothing: float = SMOOTHING
) -> float:
    """PSI of ``actual`` counts against ``expected`` counts over the same bins:
    ``sum((a - e) * ln(a / e))`` of the smoothed proportions (the symmetric
    Kullback-Leibler divergence of the two histograms).

    >>> round(psi([50, 50], [25, 75], smoothing=0.0), 4)
    0.2747
    """
    return float(psi_many(np.asarray(expected, dtype=np.float64),
                          np.asarray(actual, dtype=np.float64)[None, :], smoothing=smoothing)[0])


def psi_many(
    expected: NDArray[Any], actual: NDArray[Any], *, smoothing: float = SMOOTHING
) -> NDArray[np.float64]:
    """PSI of each row of ``actual`` (counts) against ``expected`` (counts, one row or as
    many rows as ``actual``): vectorized, for the calibration's simulated windows."""
    e = np.asarray(expected, dtype=np.float64) + smoothing
    a = np.asarray(actual, dtype=np.float64) + smoothing
    if e.shape[-1] != a.shape[-1]:
        raise ValueError(f"expected has {e.shape[-1]} bins, actual {a.shape[-1]}: use the same bins")
    e = e / e.sum(axis=-1, keepdims=True)
    a = a / a.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (a - e) * np.log(a / e)
    terms = np.where((a == 0) & (e == 0), 0.0, terms)  # only without smoothing
    out: NDArray[np.float64] = terms.sum(axis=-1)
    return out
