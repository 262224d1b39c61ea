"""The lifecycle's decisions, taken between slices of the stream: drift → retraining →
challenger → promotion, each through the library's part for it.

* A ``model.drift`` alarm (:func:`eventml.ml.detect_error_drift` on the champion's
  labelled predictions) goes to a :class:`~eventml.ml.triggers.RetrainTrigger`; a request
  it makes is the retraining job's go-ahead. The job runs ``delay_ms`` of event time
  later (by default the label wait): it trains only on transactions whose chargebacks
  had that long to arrive, so waiting that long after the alarm is what makes the rows
  up to the alarm, the new tactic's first days among them, usable. It runs :func:`eventml.ml.retrain.run_retraining` with the current
  event time as its cut-off: a point-in-time training set replayed from the log, only
  labels that had arrived. The result is registered and becomes ``challenger``
  (announced on the control topic: the scoring pipeline starts shadow-scoring it).
* Every ``judge_every`` new labelled events scored by both, the promotion policy
  (:func:`eventml.ml.promotion.run_promotion`, ``mode="auto"``) compares the
  challenger with the champion on the same labelled live events; ``promote`` moves
  ``champion``, and the scoring pipeline switches at its next batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from eventml.demos.fraud.events import TRANSACTION_TYPE, transaction_from_event
from eventml.demos.fraud.features import FEATURE_NAMES, FeatureExtractor
from eventml.demos.fraud.model import fit_estimator
from eventml.demos.fraud.views import card_activity
from eventml.events import Event
from eventml.log import Log
from eventml.ml.promotion import PromotionOutcome, PromotionPolicy, run_promotion
from eventml.ml.records import DriftDetected, LabelledPrediction, Prediction
from eventml.ml.registry import ModelRegistry
from eventml.ml.retrain import (
    EventFeatures,
    RetrainError,
    RetrainJob,
    RetrainResult,
    TrainingData,
    run_retraining,
)
from eventml.ml.triggers import RetrainRequest, RetrainTrigger


def card_features(events: Sequence[Event]) -> NDArray[np.float64]:
    """The card's own features of each transaction event, in event-time order: the
    serving feature function replayed (it only looks back)."""
    return FeatureExtractor().update_many(transaction_from_event(e) for e in events)


def retrain_job(
    model: str,
    *,
    transactions: str,
    chargebacks: str,
    view_features: Sequence[str],
    maturity_ms: int,
    start_ms: int,
    seed: int,
    holdout: float,
) -> RetrainJob:
    """The demo's retraining job: the card features (replayed), the ``card_activity`` view
    (point-in-time retrieval) if the champion reads it, chargebacks as positive labels and
    "no chargeback after ``maturity_ms``" as negative; newer unreported transactions wait.
    The fit on the older rows is judged on the most recent ``holdout`` share, then the
    model is fitted again on every row (``refit``) and registered."""
    features: list[Any] = [EventFeatures(FEATURE_NAMES, compute=card_features)]
    if view_features:
        view = card_activity(transactions)
        if tuple(view_features) != tuple(view.feature_names):
            raise ValueError(f"the champion reads {list(view_features)} of card_activity: the "
                             f"retraining job computes all of {view.feature_names}")
        features.append(view)
    data = TrainingData(
        source=transactions, features=features, labels=chargebacks, unlabelled=0.0,
        label_wait_ms=maturity_ms, event_type=TRANSACTION_TYPE, start_ms=start_ms,
    )

    def train(x: NDArray[np.float64], y: NDArray[np.float64]) -> Any:
        return fit_estimator(x, y, random_state=seed)

    return RetrainJob(model=model, data=data, train=train, flavor="sklearn", holdout=holdout,
                      refit=True, code_version="eventml.demos.fraud.model:fit_estimator")


@dataclass
class Retraining:
    """One retraining: why and when it was asked for, when it ran, what it produced."""

    request: RetrainRequest
    reports_since: int = 0  # fraud reports (labelled positives) between the request and the job
    cutoff_ms: int | None = None
    result: RetrainResult | None = None
    error: str | None = None


@dataclass
class Controller:
    """The decisions between slices (see the module). Fed by the labels pipeline's taps."""

    log: Log
    registry: ModelRegistry
    model: str
    job: RetrainJob
    trigger: RetrainTrigger
    policy: PromotionPolicy
    delay_ms: int
    judge_every: int
    from_offsets: Mapping[int, int] | None = None
    champion: int = 0
    challenger: int | None = None
    challenger_since_ms: int | None = None
    alarms: list[tuple[DriftDetected, str]] = field(default_factory=list)  # and what came of it
    retrainings: list[Retraining] = field(default_factory=list)
    verdicts: list[tuple[int, PromotionOutcome]] = field(default_factory=list)  # (at_ms, outcome)
    promotions: list[tuple[int, PromotionOutcome]] = field(default_factory=list)
    labelled: int = 0
    imputed: int = 0
    _pending: Retraining | None = None
    _evidence: list[LabelledPrediction] = field(default_factory=list)
    _since_look: int = 0
    _logic: Any = None

    def __post_init__(self) -> None:
        self._logic = self.trigger.build()

    # -- intake (the labels pipeline's committed outputs) ---------------------------------
    def on_labelled(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Labelled predictions (``LabelledPrediction.to_dict()`` shapes)."""
        for v in values:
            p = v["prediction"]
            self.labelled += 1
            imputed = bool(v.get("imputed"))
            self.imputed += imputed
            if p["model"] != self.model:
                continue
            if p["role"] == "primary" and float(v["label"]) >= 0.5 and self._pending is not None:
                self._pending.reports_since += 1
            if self.challenger in (None, self.champion):
                continue  # no challenger being judged: no evidence to keep
            if p["version"] not in (self.champion, self.challenger):
                continue
            if (self.challenger_since_ms is None or int(p["time_ms"]) < self.challenger_since_ms):
                continue
            self._evidence.append(_lean(v, p))
            if p["role"] == "shadow":
                self._since_look += 1

    def on_drift(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Alarms: each goes to the trigger; a request starts a job unless one is waiting
        or a challenger is still being judged (one challenger at a time)."""
        for v in values:
            alarm = DriftDetected.from_dict(v)
            request = self._logic.on_drift(alarm)
            if request is None:
                what = "no job: inside the trigger's cool-down"
            elif self._pending is not None:
                what = "no job: one is already waiting"
            elif self.challenger is not None and self.challenger != self.champion:
                what = f"no job: challenger v{self.challenger} is being judged"
            else:
                self._pending = Retraining(request)
                what = "retraining requested"
            self.alarms.append((alarm, what))

    # -- decisions ------------------------------------------------------------------------
    def step(self, now_ms: int) -> None:
        """Event time ``now_ms`` reached (everything before it is processed): run a due
        retraining, then judge the challenger if enough new evidence came."""
        pending = self._pending
        if pending is not None and now_ms >= pending.request.at_ms + self.delay_ms:
            self._pending = None
            self._retrain(pending, now_ms)
        if (self.challenger is not None and self.challenger != self.champion
                and self._since_look >= self.judge_every):
            self._since_look = 0
            self._judge(now_ms)

    def _retrain(self, r: Retraining, now_ms: int) -> None:
        r.cutoff_ms = now_ms
        self.retrainings.append(r)
        reason = f"{r.request.reason}; run {(now_ms - r.request.at_ms) / 3_600_000:.0f} h later"
        try:
            r.result = run_retraining(self.job, self.log, self.registry, cutoff_ms=now_ms,
                                      reason=reason, from_offsets=self.from_offsets)
        except RetrainError as e:  # too few rows or labels yet: the next alarm tries again
            r.error = str(e)
            return
        self.challenger = r.result.version.version
        self.challenger_since_ms = now_ms
        self._evidence = []
        self._since_look = 0

    def _judge(self, now_ms: int) -> None:
        outcome = run_promotion(self.registry, self._evidence, self.model, policy=self.policy,
                                mode="auto", log=self.log)
        self.verdicts.append((now_ms, outcome))
        if outcome.alias_change is not None:
            self.promotions.append((now_ms, outcome))
            self.champion = int(outcome.alias_change.version or self.champion)


def _lean(v: Mapping[str, Any], p: Mapping[str, Any]) -> LabelledPrediction:
    """The labelled prediction without its features (the policy reads scores and labels)."""
    return LabelledPrediction(
        Prediction(event_id=p["event_id"], model=p["model"], version=p["version"],
                   score=float(p["score"]), features={}, decision=p.get("decision"),
                   role=p.get("role", "primary"), time_ms=int(p["time_ms"]), key=p.get("key")),
        float(v["label"]), int(v["label_time_ms"]), bool(v.get("imputed")),
    )
