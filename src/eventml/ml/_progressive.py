"""Progressive (test-then-train) metrics of one model version, from its labelled predictions.

Each prediction was made before its label existed, so its recorded score is an honest
test; once the label joins it, the example counts here (and the online learner may learn
from it). Pure: running counts, no I/O.

>>> m = ProgressiveMetrics("fraud", 3, window=2)
>>> for score, label in [(0.9, 1.0), (0.8, 0.0), (0.2, 1.0), (0.7, 1.0)]:
...     m.update(score, None, label)
>>> (m.n, m.tp, m.fp, m.fn, m.tn), m.precision, m.recall
((4, 2, 1, 1, 0), 0.6666666666666666, 0.6666666666666666)
>>> m.window_recall  # the last two examples: one miss, one hit
0.5
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProgressiveMetrics"]

_EPS = float.fromhex("0x1p-52")  # float64 machine epsilon: scores are clipped to [eps, 1 - eps]
# one byte per example in the window: bit 0 = predicted positive, bit 1 = labelled positive
_TN, _FP, _FN, _TP = b"\x00", b"\x01", b"\x02", b"\x03"


@dataclass(slots=True)
class ProgressiveMetrics:
    """Running counts for one model version: examples, positives, the confusion matrix at
    the recorded decision, the summed log loss, and the last ``window`` outcomes.

    A prediction's decision is the one it recorded; a prediction without one is positive
    when ``score >= threshold``. The score is read as P(label = 1) for the log loss
    (clipped to [eps, 1 - eps], as scikit-learn does); a label is positive when >= 0.5.
    """

    model: str
    version: int | None
    window: int = 1000
    threshold: float = 0.5
    n: int = 0
    positives: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    imputed: int = 0  # examples whose label is the join's horizon default
    log_loss_sum: float = 0.0
    last_time_ms: int = 0  # the newest label time counted
    recent: bytearray = field(default_factory=bytearray)  # outcome codes, oldest first

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be >= 1 example, got {self.window}")

    def update(
        self, score: float, decision: bool | None, label: float, *, time_ms: int = 0,
        imputed: bool = False,
    ) -> None:
        """Count one labelled prediction (call :meth:`trim` after a run of updates)."""
        predicted = bool(decision) if decision is not None else score >= self.threshold
        actual = label >= 0.5
        code = (1 if predicted else 0) | (2 if actual else 0)
        self.n += 1
        if actual:
            self.positives += 1
        if code == 3:
            self.tp += 1
        elif code == 1:
            self.fp += 1
        elif code == 2:
            self.fn += 1
        else:
            self.tn += 1
        self.imputed += imputed
        p = min(max(score, _EPS), 1.0 - _EPS)
        self.log_loss_sum -= label * math.log(p) + (1.0 - label) * math.log(1.0 - p)
        if time_ms > self.last_time_ms:
            self.last_time_ms = time_ms
        self.recent.append(code)

    def trim(self) -> None:
        """Keep only the last ``window`` outcomes (one cut per batch, not per example)."""
        extra = len(self.recent) - self.window
        if extra > 0:
            del self.recent[:extra]

    # -- the metrics --------------------------------------------------------------------
    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def accuracy(self) -> float | None:
        return _ratio(self.tp + self.tn, self.n)

    @property
    def log_loss(self) -> float | None:
        """Mean log loss of the recorded scores."""
        return None if self.n == 0 else self.log_loss_sum / self.n

    def _window_counts(self) -> tuple[int, int, int]:
        recent = self.recent[-self.window:]
        return recent.count(_TP), recent.count(_FP), recent.count(_FN)

    @property
    def window_precision(self) -> float | None:
        tp, fp, _ = self._window_counts()
        return _ratio(tp, tp + fp)

    @property
    def window_recall(self) -> float | None:
        tp, _, fn = self._window_counts()
        return _ratio(tp, tp + fn)

    # -- as data ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Counts, the window's outcomes (hex) and the derived metrics, JSON-ready."""
        self.trim()
        return {
            "model": self.model, "version": self.version, "window": self.window,
            "threshold": self.threshold, "n": self.n, "positives": self.positives,
            "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn, "imputed": self.imputed,
            "log_loss_sum": self.log_loss_sum, "last_time_ms": self.last_time_ms,
            "recent": self.recent.hex(),
            "precision": self.precision, "recall": self.recall, "accuracy": self.accuracy,
            "log_loss": self.log_loss, "window_precision": self.window_precision,
            "window_recall": self.window_recall,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProgressiveMetrics:
        return cls(
            model=str(d["model"]), version=None if d.get("version") is None else int(d["version"]),
            window=int(d["window"]), threshold=float(d["threshold"]), n=int(d["n"]),
            positives=int(d["positives"]), tp=int(d["tp"]), fp=int(d["fp"]), fn=int(d["fn"]),
            tn=int(d["tn"]), imputed=int(d.get("imputed", 0)),
            log_loss_sum=float(d["log_loss_sum"]), last_time_ms=int(d.get("last_time_ms", 0)),
            recent=bytearray.fromhex(d.get("recent", "")),
        )


def _ratio(a: int, b: int) -> float | None:
    return None if b == 0 else a / b
