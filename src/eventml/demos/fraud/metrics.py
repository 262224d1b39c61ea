"""Evaluation against the generator's ground truth (pure)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


def precision_recall(labels: NDArray[np.bool_], alerted: NDArray[np.bool_]) -> tuple[float, float]:
    """Precision and recall of ``alerted`` against ``labels`` (0.0 when undefined)."""
    tp = int((labels & alerted).sum())
    n_alerted, n_fraud = int(alerted.sum()), int(labels.sum())
    return (tp / n_alerted if n_alerted else 0.0), (tp / n_fraud if n_fraud else 0.0)


def recall_by_pattern(patterns: Sequence[str], alerted: NDArray[np.bool_]) -> dict[str, float]:
    """Per injected fraud pattern, the share of its transactions that raised an alert."""
    names = np.asarray(patterns, dtype=object)
    return {p: float(alerted[names == p].mean()) for p in sorted(set(patterns)) if p}


def percentiles_ms(seconds: Sequence[float], qs: Sequence[float]) -> list[float | None]:
    """Percentiles ``qs`` (0-100) of durations given in seconds, in ms; None if there are none."""
    if not seconds:
        return [None for _ in qs]
    values = np.percentile(np.asarray(seconds, dtype=np.float64) * 1000, list(qs))
    return [float(v) for v in values]
