"""The fraud demo's feature view: per-card activity over sliding windows.

Materialized next to the model's own features (``fraud_app(..., features=True)``), it
shows the feature store on the demo's stream: values served per transaction, an online
store, and the skew check against point-in-time retrieval.
"""

from __future__ import annotations

from eventml.features import (
    DAY,
    HOUR,
    MINUTE,
    FeatureView,
    count,
    distinct,
    maximum,
    mean,
    since_last,
    total,
)


def card_activity(transactions: str = "transactions") -> FeatureView:
    """Per card: transactions and spend over 10 min, 1 h and 24 h, the mean and largest
    amount, distinct merchants in 24 h, and seconds since the card's previous use."""
    return FeatureView(
        "card_activity",
        entity="card_id",
        source=transactions,
        ttl_ms=7 * DAY,
        features=[
            count("tx_10m", 10 * MINUTE),
            count("tx_1h", HOUR),
            count("tx_24h", DAY),
            total("spend_1h", "amount", HOUR),
            total("spend_24h", "amount", DAY),
            mean("amount_mean_24h", "amount", DAY),
            maximum("amount_max_24h", "amount", DAY),
            distinct("merchants_24h", "merchant_id", DAY),
            since_last("secs_since_last"),
        ],
    )
