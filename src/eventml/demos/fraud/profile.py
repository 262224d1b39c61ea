"""The demo's read model: a risk profile per card, folded from transactions and alerts.

The CQRS read side of the fraud demo. The pipeline writes ``fraud-alerts``; this
projection folds both streams into one row per card that an analyst (or a support
tool) can look up by card or filter by risk, without touching the pipeline's state:

* from ``card.transaction`` events: how often and how much the card is used, when
  it was last seen;
* from ``fraud.alert`` events: how many alerts, the highest and latest score, and
  the ``risk`` tier derived from them (``low``, ``elevated``, ``high``).

``eventml views get card_risk CARD --app eventml.demos.fraud.profile:views`` reads one.
"""

from __future__ import annotations

from typing import Any

from eventml.views import EventMeta, Projection, Table, Views

HIGH_SCORE = 0.9  # one alert this sure makes a card high risk


def risk_tier(alerts: int, max_score: float) -> str:
    """``high`` for two alerts or one very sure one, ``elevated`` for one, else ``low``."""
    if alerts >= 2 or (alerts and max_score >= HIGH_SCORE):
        return "high"
    return "elevated" if alerts else "low"


def card_risk(transactions: str = "transactions", alerts: str = "fraud-alerts") -> Projection:
    """The ``card_risk`` view over ``transactions`` and ``alerts`` (both keyed by card)."""

    def handle(value: Any, meta: EventMeta, table: Table) -> None:
        if value is None or meta.key is None:
            return
        row = table.get(meta.key) or {
            "card_id": meta.key, "transactions": 0, "spend": 0.0, "first_seen_ms": None,
            "last_seen_ms": None, "alerts": 0, "max_score": 0.0, "last_alert": None,
            "risk": "low",
        }
        if meta.topic == alerts:
            score = float(value["score"])
            row["alerts"] += 1
            row["max_score"] = max(row["max_score"], score)
            row["last_alert"] = {"transaction_id": value["transaction_id"], "score": score,
                                 "at_ms": meta.timestamp_ms}
            row["risk"] = risk_tier(row["alerts"], row["max_score"])
        else:
            row["transactions"] += 1
            row["spend"] = round(row["spend"] + float(value["amount"]), 2)
            if row["first_seen_ms"] is None:
                row["first_seen_ms"] = meta.timestamp_ms
            row["last_seen_ms"] = max(row["last_seen_ms"] or 0, meta.timestamp_ms)
        table.put(meta.key, row)

    return Projection(
        "card_risk", (transactions, alerts), handle, indexed=("risk",),
        description="Per card: use, spend, alerts and a risk tier (the fraud demo's read model).",
    )


views = Views(card_risk())
"""The demo's views with its default topic names, for ``eventml views --app``."""
