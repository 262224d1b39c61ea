"""What a fraud demo run reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FraudDemoResult:
    events: int
    fraud_events: int
    alerts: int
    true_positives: int
    precision: float
    recall: float
    recall_by_pattern: Mapping[str, float]
    throughput_eps: float  # transactions scored per second of pipeline wall time
    latency_p50_ms: float | None  # transaction append acked -> its alert append acked
    latency_p99_ms: float | None
    offered_rate_eps: float | None  # the producer's pace; None: as fast as the log acknowledges
    pipeline_seconds: float
    train_seconds: float
    model: str
    threshold: float
    features: tuple[str, ...]
    broker: str
    topics: tuple[str, str]  # transactions, alerts
    seed: int
    guarantee: str = "exactly_once"
    velocity_alerts: int = 0  # cards used velocity_limit+ times in a one-minute window
    schema: str | None = None  # the transactions topic's contract: "SUBJECT v VERSION (id N)"
    dead_letters: int = 0  # transactions that broke it (in TRANSACTIONS.dlq)
    feature_skew: dict[str, Any] | None = None  # served feature values vs historical (--features)
    chargebacks: int = 0  # delayed labels appended after the run (one per fraudulent transaction)
    risk_profiles: dict[str, Any] | None = None  # the card_risk read model after the run
    view_features: tuple[str, ...] = ()  # of ``features``, those the card_activity view serves
    what_if: dict[str, Any] | None = None  # a candidate replayed over the run, diffed on its last day
    lifecycle: dict[str, Any] | None = None  # drift, retraining, promotion and recall per period

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "fraud_events": self.fraud_events,
            "alerts": self.alerts,
            "true_positives": self.true_positives,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "recall_by_pattern": {k: round(v, 4) for k, v in self.recall_by_pattern.items()},
            "throughput_eps": round(self.throughput_eps, 1),
            "latency_ms": {"p50": _ms(self.latency_p50_ms), "p99": _ms(self.latency_p99_ms)},
            "offered_rate_eps": self.offered_rate_eps,
            "pipeline_seconds": round(self.pipeline_seconds, 3),
            "train_seconds": round(self.train_seconds, 3),
            "model": self.model,
            "threshold": round(self.threshold, 6),
            "features": list(self.features),
            "broker": self.broker,
            "topics": {"transactions": self.topics[0], "alerts": self.topics[1]},
            "seed": self.seed,
            "guarantee": self.guarantee,
            "velocity_alerts": self.velocity_alerts,
            "schema": self.schema,
            "dead_letters": self.dead_letters,
            "feature_skew": self.feature_skew,
            "chargebacks": self.chargebacks,
            "risk_profiles": self.risk_profiles,
            "view_features": list(self.view_features),
            "what_if": self.what_if,
            "lifecycle": self.lifecycle,
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
