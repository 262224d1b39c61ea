"""What a feature detector keeps of its reference: sorted values, bins, calibrated thresholds.

Immutable once built (its arrays are read-only), so detectors and their copies share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from eventml.ml.drift._psi import bin_counts, quantile_edges
from eventml.ml.drift.calibrate import PsiThreshold, psi_chi2_threshold, psi_threshold

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True, eq=False)
class FeatureReference:
    """One feature's reference: ``values`` (sorted, non-missing), ``n`` events (missing
    included), the PSI bins (``edges``, ``counts``: value bins then the missing bin)
    and the PSI threshold for windows of the detector's size."""

    feature: str
    values: NDArray[np.float64]
    n: int
    edges: NDArray[np.float64]
    counts: NDArray[np.int64]
    psi: PsiThreshold

    def __deepcopy__(self, memo: dict[int, Any]) -> FeatureReference:
        return self  # immutable: copies of a detector share it

    @property
    def missing(self) -> int:
        return int(self.counts[-1])

    def quantiles(self) -> list[float]:
        if self.values.size == 0:
            return []
        return [float(q) for q in np.quantile(self.values, QUANTILES)]


def build_references(
    x: NDArray[np.float64],
    features: Sequence[str],
    *,
    window: int,
    bins: int,
    alpha: float,
    seed: int,
    fixed_psi: float | None = None,
    draws: int | None = None,
) -> tuple[FeatureReference, ...]:
    """One :class:`FeatureReference` per column of ``x`` (rows = reference events),
    PSI thresholds calibrated for windows of ``window`` events at level ``alpha``
    (or ``fixed_psi``, uncalibrated, when given)."""
    refs = []
    for j, name in enumerate(features):
        col = x[:, j]
        present = np.sort(col[~np.isnan(col)])
        edges = quantile_edges(present, bins)
        counts = bin_counts(col, edges)
        if fixed_psi is not None:
            chi2 = psi_chi2_threshold(int((counts > 0).sum()), len(col), window, alpha)
            threshold = PsiThreshold(float(fixed_psi), "fixed", 0, chi2)
        else:
            threshold = psi_threshold(counts, window, alpha, seed=seed + 7919 * j, draws=draws)
        for a in (present, edges, counts):
            a.setflags(write=False)
        refs.append(FeatureReference(name, present, len(col), edges, counts, threshold))
    return tuple(refs)
