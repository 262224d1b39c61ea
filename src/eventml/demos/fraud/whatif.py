"""What if a candidate model had been live? Replay it over history and compare.

After a demo run, :func:`what_if` re-runs the fraud pipeline with a candidate model
(:func:`~eventml.replay.replay`) into a sandbox (``<sandbox>.fraud-alerts``; the live
topics, offsets and state are untouched) and compares its alerts with the live ones
over the last day of event time (:func:`~eventml.replay.diff_decisions`): alerts
added and removed, and precision and recall of both against the chargebacks that
arrived later.

The replay starts at the run's first transaction, not at the compared day, because
a replay starts with empty state: per-card history (amount z-scores, home, the
feature view's 24 h windows) must warm up before the day's decisions are comparable.

From the command line, on the demo's data directory::

    eventml replay --app eventml.demos.fraud.whatif:candidate --into whatif \
        --from 2024-03-01T00:00:00Z --to 2024-03-02T00:00:00Z
    eventml diff fraud-alerts whatif.fraud-alerts --labels chargebacks \
        --from 2024-03-01T12:00:00Z --to 2024-03-02T00:00:00Z
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from eventml.demos.fraud.app import fraud_app
from eventml.demos.fraud.model import FraudModel
from eventml.engine import App
from eventml.replay import diff_decisions, replay

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class WhatIf:
    """A candidate replayed over a run, compared with the live alerts on its last day."""

    candidate: str  # how the candidate differs
    sandbox: str
    replayed: int  # transactions the candidate scored
    events_per_s: float
    from_ms: int  # the compared window
    to_ms: int
    diff: dict[str, Any]  # DecisionDiff.to_json()

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate, "sandbox": self.sandbox, "replayed": self.replayed,
            "events_per_s": round(self.events_per_s, 1), "from_ms": self.from_ms,
            "to_ms": self.to_ms, "diff": self.diff,
        }


def what_if(
    log: Any,
    candidate: FraudModel,
    *,
    description: str,
    sandbox: str,
    first_ms: int,
    last_ms: int,
    transactions: str,
    alerts: str,
    chargebacks: str,
    partitions: int,
    validate: bool,
) -> WhatIf:
    """Replay ``candidate`` over the transactions in ``[first_ms, last_ms]`` and diff its
    alerts with ``alerts`` over the last day of that span, against ``chargebacks``."""
    app = fraud_app(
        candidate, name="fraud-candidate", broker=log.url, transactions=transactions,
        alerts=alerts, velocity=None, partitions=partitions, validate=validate,
        auto_offset_reset="earliest",
    )
    result = replay(app, log, start_ms=first_ms, end_ms=last_ms + 1, sandbox=sandbox)
    window_from = max(first_ms, last_ms + 1 - DAY_MS)
    diff = diff_decisions(
        log, alerts, result.topics[alerts], start_ms=window_from, end_ms=last_ms + 1,
        labels_topic=chargebacks,
    )
    return WhatIf(description, sandbox, result.read.get(transactions, 0), result.events_per_s,
                  window_from, last_ms + 1, diff.to_json())


def __getattr__(name: str) -> Any:
    """``candidate``: the demo's candidate app, for the command line
    (``eventml replay --app eventml.demos.fraud.whatif:candidate ...``); its model is
    trained when first asked for."""
    if name == "candidate":
        return _candidate()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _candidate() -> App:
    from eventml.demos.fraud.run import CANDIDATE_PRECISION, train_demo_model

    model = train_demo_model(target_precision=CANDIDATE_PRECISION)
    return fraud_app(model, name="fraud-candidate", velocity=None, validate=True)
