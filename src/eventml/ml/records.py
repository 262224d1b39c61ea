"""The ML control plane's events, as plain records with stable JSON shapes.

Every part of the model lifecycle talks through these on the log, so each can be
replayed, audited and consumed by another process:

- :class:`Prediction` (``model.prediction``): one model's score of one event, on the
  predictions topic. Shadow and canary scores are predictions too (``role``).
- :class:`AliasChange` (``model.alias``): an alias of a model now names another
  version, on the internal control topic :data:`CONTROL_TOPIC`. Workers that score
  ``name@alias`` switch at their next batch boundary.
- :class:`Label` and :class:`LabelledPrediction`: a late ground truth for an event, and
  a prediction joined to it by event id (what online learning, progressive metrics
  and promotion policies read).
- :class:`DriftDetected` (``model.drift``): a detector's finding, with its evidence.

>>> p = Prediction(event_id="tx-1", model="fraud", version=3, score=0.91,
...                features={"amount": 120.0}, decision=True, time_ms=1_000)
>>> Prediction.from_dict(p.to_dict()) == p
True
>>> [lp.label for lp in join_labels([p], [Label(event_id="tx-1", label=1.0, time_ms=9_000)])]
[1.0]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "ALIAS_TYPE",
    "CONTROL_TOPIC",
    "DRIFT_TYPE",
    "PREDICTION_TYPE",
    "AliasChange",
    "DriftDetected",
    "Label",
    "LabelledPrediction",
    "Prediction",
    "Role",
    "join_labels",
]

PREDICTION_TYPE = "model.prediction"
ALIAS_TYPE = "model.alias"
DRIFT_TYPE = "model.drift"
#: The internal topic alias changes travel on (one partition: one total order).
CONTROL_TOPIC = "_models"

#: ``primary``: the score acted on; ``shadow``: scored alongside, logged, never acted on;
#: ``canary``: the challenger's score, acted on for its key-hash share of the traffic.
Role = Literal["primary", "shadow", "canary"]


@dataclass(frozen=True)
class Prediction:
    """One model version's score of one event, enough to re-score it exactly."""

    event_id: str
    model: str
    version: int | None
    score: float
    features: Mapping[str, float | None]
    decision: bool | None = None
    role: Role = "primary"
    time_ms: int = 0  # the scored event's time
    key: str | None = None  # the scored event's key

    @property
    def acted_on(self) -> bool:
        return self.role != "shadow"

    def to_dict(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies every feature (~10x slower), and one
        # prediction of every scored event goes through here
        return {"event_id": self.event_id, "model": self.model, "version": self.version,
                "score": self.score, "features": dict(self.features), "decision": self.decision,
                "role": self.role, "time_ms": self.time_ms, "key": self.key}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Prediction:
        return cls(
            event_id=str(d["event_id"]), model=str(d["model"]),
            version=None if d.get("version") is None else int(d["version"]),
            score=float(d["score"]), features=dict(d.get("features") or {}),
            decision=d.get("decision"), role=d.get("role", "primary"),
            time_ms=int(d.get("time_ms", 0)), key=d.get("key"),
        )


@dataclass(frozen=True)
class AliasChange:
    """``model@alias`` now names ``version`` (``None``: the alias was removed)."""

    model: str
    alias: str
    version: int | None
    previous: int | None = None
    reason: str = ""
    at_ms: int = 0  # wall-clock time of the change

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AliasChange:
        return cls(
            model=str(d["model"]), alias=str(d["alias"]),
            version=None if d.get("version") is None else int(d["version"]),
            previous=None if d.get("previous") is None else int(d["previous"]),
            reason=str(d.get("reason", "")), at_ms=int(d.get("at_ms", 0)),
        )


@dataclass(frozen=True)
class Label:
    """The ground truth for the event ``event_id``, known from ``time_ms`` on."""

    event_id: str
    label: float
    time_ms: int = 0


@dataclass(frozen=True)
class LabelledPrediction:
    """A prediction and the label that arrived for its event.

    ``imputed``: no label came within the join's label horizon, so the label is the
    horizon's default (a negative) and ``label_time_ms`` is when the horizon passed.
    """

    prediction: Prediction
    label: float
    label_time_ms: int
    imputed: bool = False

    @property
    def delay_ms(self) -> int:
        return self.label_time_ms - self.prediction.time_ms

    def to_dict(self) -> dict[str, Any]:
        return {"prediction": self.prediction.to_dict(), "label": self.label,
                "label_time_ms": self.label_time_ms, "imputed": self.imputed}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LabelledPrediction:
        return cls(
            prediction=Prediction.from_dict(d["prediction"]), label=float(d["label"]),
            label_time_ms=int(d["label_time_ms"]), imputed=bool(d.get("imputed", False)),
        )


@dataclass(frozen=True)
class DriftDetected:
    """A drift detector fired: ``statistic`` over a window crossed its threshold.

    ``kind`` is ``feature`` (a feature's distribution moved away from the reference)
    or ``error`` (the model's error rate on labelled predictions changed).
    ``threshold`` was calibrated for a false-alarm rate of ``alpha`` per test.
    """

    model: str
    kind: Literal["feature", "error"]
    statistic: str  # "psi", "ks", "wasserstein", "adwin", ...
    value: float
    threshold: float
    alpha: float
    feature: str | None = None
    window_start_ms: int = 0
    window_end_ms: int = 0
    window_events: int = 0
    reference_events: int = 0
    events_seen: int = 0  # events the detector had seen when it fired
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["evidence"] = dict(self.evidence)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DriftDetected:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def join_labels(
    predictions: Iterable[Prediction], labels: Iterable[Label]
) -> list[LabelledPrediction]:
    """Each prediction whose event has a label, joined to its first label, in the
    predictions' order (a pure reference for the streaming join)."""
    first: dict[str, Label] = {}
    for label in labels:
        first.setdefault(label.event_id, label)
    out = []
    for p in predictions:
        lab = first.get(p.event_id)
        if lab is not None:
            out.append(LabelledPrediction(p, lab.label, lab.time_ms))
    return out
