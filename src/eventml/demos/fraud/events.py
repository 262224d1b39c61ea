"""The demo's events on the log: ``card.transaction`` in, ``fraud.alert`` out, and the
``card.chargeback`` labels that arrive days later."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eventml.demos.fraud.catalog import CATEGORY_NAMES
from eventml.demos.fraud.transaction import Transaction, datetime_to_ms, ms_to_datetime
from eventml.events import Event

SOURCE = "eventml/demos/fraud"
TRANSACTION_TYPE = "card.transaction"
ALERT_TYPE = "fraud.alert"
CHARGEBACK_TYPE = "card.chargeback"


#: The ``card.transaction`` data as a JSON Schema: the transactions topic's data contract.
TRANSACTION_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "card.transaction",
    "type": "object",
    "properties": {
        "card_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "merchant_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "category": {"enum": list(CATEGORY_NAMES)},
        "amount": {"type": "number", "minimum": 0, "maximum": 1_000_000},
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
    },
    "required": ["card_id", "merchant_id", "category", "amount", "lat", "lon"],
    "additionalProperties": False,
}


class NotATransaction(ValueError):
    """An event on the transactions topic that is not a well-formed ``card.transaction``."""


def transaction_event(tx: Transaction) -> Event:
    """The ``card.transaction`` event for ``tx``: keyed by card, event time = ``tx.time``."""
    return Event(
        type=TRANSACTION_TYPE,
        source=SOURCE,
        key=tx.card_id,
        time=ms_to_datetime(tx.time_ms),
        data={
            "card_id": tx.card_id,
            "merchant_id": tx.merchant_id,
            "category": tx.category,
            "amount": tx.amount,
            "lat": tx.lat,
            "lon": tx.lon,
        },
    )


def transaction_from_event(event: Event) -> Transaction:
    """The transaction carried by ``event``; raises :class:`NotATransaction` if it is not one."""
    if event.type != TRANSACTION_TYPE:
        raise NotATransaction(
            f"event {event.id}: type {event.type!r}, expected {TRANSACTION_TYPE!r}"
        )
    data = event.data
    try:
        return Transaction(
            card_id=str(data["card_id"]),
            merchant_id=str(data["merchant_id"]),
            category=str(data["category"]),
            amount=float(data["amount"]),
            lat=float(data["lat"]),
            lon=float(data["lon"]),
            time_ms=datetime_to_ms(event.time),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise NotATransaction(f"event {event.id}: bad card.transaction data ({e!r})") from None


def alert_event(
    transaction_id: str,
    tx: Transaction,
    score: float,
    threshold: float,
    feature_names: Sequence[str],
    features: Sequence[float],
) -> Event:
    """A ``fraud.alert`` for the transaction event ``transaction_id`` (same key and event time)."""
    data: Mapping[str, Any] = {
        "transaction_id": transaction_id,
        "card_id": tx.card_id,
        "score": round(score, 6),
        "threshold": round(threshold, 6),
        "features": {n: round(float(v), 6) for n, v in zip(feature_names, features, strict=True)},
    }
    return Event(
        type=ALERT_TYPE,
        source=SOURCE,
        key=tx.card_id,
        time=ms_to_datetime(tx.time_ms),
        subject=transaction_id,
        data=data,
    )


def chargeback_event(transaction_id: str, tx: Transaction, delay_ms: int) -> Event:
    """A ``card.chargeback``: the cardholder disputes transaction ``transaction_id``, which
    confirms it as fraud ``delay_ms`` after it happened (the event's time). Only confirmed
    fraud gets one: a labels topic of positives, as card networks deliver them."""
    return Event(
        type=CHARGEBACK_TYPE,
        source=SOURCE,
        key=tx.card_id,
        time=ms_to_datetime(tx.time_ms + delay_ms),
        subject=transaction_id,
        data={
            "transaction_id": transaction_id,
            "card_id": tx.card_id,
            "transaction_time_ms": tx.time_ms,
            "amount": tx.amount,
        },
    )
