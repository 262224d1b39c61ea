"""How each model did in each period of a lifecycle run, against the generator's truth (pure).

The periods: before the tactics change (the champion on the fraud it was trained for),
after it until the promotion (the champion on the new tactic), and after the promotion
(the retrained model). Recall is per transaction, as the rest of the demo counts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from eventml.demos.fraud.metrics import recall_by_pattern


@dataclass(frozen=True, slots=True)
class PeriodScore:
    """Alerts against the truth over the transactions of one period."""

    name: str
    first: int  # transaction indexes [first, end)
    end: int
    transactions: int
    fraud: int
    alerts: int
    true_positives: int
    recall: float | None
    precision: float | None
    by_pattern: dict[str, float]
    versions: dict[str, int]  # model version -> transactions it decided

    def to_json(self) -> dict[str, Any]:
        return {
            "transactions": self.transactions, "fraud": self.fraud, "alerts": self.alerts,
            "true_positives": self.true_positives, "recall": _round(self.recall),
            "precision": _round(self.precision),
            "recall_by_pattern": {k: round(v, 4) for k, v in self.by_pattern.items()},
            "versions": self.versions, "event_index": [self.first, self.end],
        }


def score_period(
    name: str,
    first: int,
    end: int,
    labels: NDArray[np.bool_],
    alerted: NDArray[np.bool_],
    patterns: Sequence[str],
    versions: Sequence[int | None] | None = None,
) -> PeriodScore:
    """Precision, recall and recall per pattern of ``alerted`` over ``[first, end)``."""
    y, a = labels[first:end], alerted[first:end]
    tp = int((y & a).sum())
    fraud, alerts = int(y.sum()), int(a.sum())
    counted: dict[str, int] = {}
    if versions is not None:
        for v in versions[first:end]:
            key = "none" if v is None else str(v)
            counted[key] = counted.get(key, 0) + 1
    return PeriodScore(
        name, first, end, end - first, fraud, alerts, tp,
        tp / fraud if fraud else None, tp / alerts if alerts else None,
        recall_by_pattern(list(patterns[first:end]), a) if end > first else {},
        counted,
    )


def recovery(pre: PeriodScore, after: PeriodScore, points: float) -> dict[str, Any]:
    """Whether recall after the promotion is within ``points`` (percentage points) of the
    recall before the drift, stated in one line."""
    if pre.recall is None or after.recall is None:
        return {"within_points": points, "gap_points": None, "recovered": False,
                "statement": "no fraud to measure recall on in one of the periods"}
    gap = (pre.recall - after.recall) * 100
    ok = gap <= points
    statement = (
        f"recall on fraud after the promotion {after.recall:.1%} vs {pre.recall:.1%} before the "
        f"drift: {abs(gap):.1f} points {'lower' if gap > 0 else 'higher'}; the bar is at most "
        f"{points:g} points lower: {'recovered' if ok else 'NOT recovered'}"
    )
    return {"within_points": points, "gap_points": round(gap, 2), "recovered": ok,
            "statement": statement}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
