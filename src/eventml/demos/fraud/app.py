"""The fraud pipeline on the stream engine.

``transactions`` (keyed by card) → per-card features (keyed state) → batched model
scoring → ``fraud-alerts`` for scores over the threshold; and, in parallel, a
one-minute tumbling count per card → ``card-velocity`` when a card is used
``velocity_limit`` times or more in a minute. Exactly-once by default: alerts,
card state and input offsets commit together.

The model is a fitted :class:`~eventml.demos.fraud.model.FraudModel`, or
:class:`LiveModels`: registry aliases (``fraud@champion``, shadowed by
``fraud@challenger``) that follow control events, every prediction logged
(:func:`eventml.ml.predict`): the lifecycle demo's pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from eventml.demos.fraud.events import ALERT_TYPE, TRANSACTION_SCHEMA
from eventml.demos.fraud.features import CardState, featurize
from eventml.demos.fraud.model import FraudModel
from eventml.demos.fraud.transaction import Transaction
from eventml.demos.fraud.views import card_activity
from eventml.engine import App, Item, KeyState, Stream, TopicRef
from eventml.features import materialize
from eventml.schema import contract_of
from eventml.windows import Count, Tumbling

VELOCITY_WINDOW_MS = 60_000
_NAN = float("nan")  # a view value the entity does not have yet (the model handles NaN)


@dataclass(frozen=True, slots=True)
class LiveModels:
    """Score with ``model@champion`` from ``registry``, shadowed by ``model@challenger``,
    switching versions when a control event says an alias moved (at a batch boundary);
    log every prediction to ``predictions``. ``threshold``: the alert policy
    (``score >= threshold``), the same whichever version scores. ``feature_names``: the
    versions' features (the card's own, then the ``view_features`` of card_activity)."""

    registry: Any  # eventml.ml.ModelRegistry
    threshold: float
    feature_names: tuple[str, ...]
    view_features: tuple[str, ...] = ()
    model: str = "fraud"
    champion: str = "champion"
    challenger: str | None = "challenger"
    predictions: str = "predictions"
    watch_every_ms: float = 0.0  # look for control events before every batch


def fraud_app(
    model: FraudModel | LiveModels,
    *,
    name: str = "fraud",
    broker: str | None = None,
    transactions: str = "transactions",
    alerts: str = "fraud-alerts",
    velocity: str | None = "card-velocity",
    velocity_limit: int = 5,
    partitions: int = 4,
    validate: bool = False,
    features: bool = False,
    **settings: Any,
) -> App:
    """The fraud-scoring app; ``settings`` are :class:`eventml.engine.Settings` fields.

    ``validate`` binds :data:`~eventml.demos.fraud.events.TRANSACTION_SCHEMA` to the
    transactions topic (bare JSON accepted, frames too): a malformed transaction goes
    to ``TRANSACTIONS.dlq`` with the validation errors instead of reaching the model.
    A model trained on the :func:`~eventml.demos.fraud.views.card_activity` feature view
    (``model.view_features``) is fed its values: the view is materialized on the
    transactions stream and each transaction is scored on the values it was served
    (logged, so the skew check can compare them with point-in-time retrieval).
    ``features`` materializes the view for a model that does not read it.
    """
    app = App(name, broker=broker, **settings)
    contract = contract_of(TRANSACTION_SCHEMA, framed=False) if validate else None
    tx_topic = app.topic(transactions, partitions=partitions, key="card_id", schema=contract)
    alert_topic = app.topic(alerts, partitions=partitions, event_type=ALERT_TYPE)

    def card_features(value: dict[str, Any], state: KeyState) -> tuple[Transaction, list[float]]:
        tx = Transaction(
            value["card_id"], value["merchant_id"], value["category"], float(value["amount"]),
            float(value["lat"]), float(value["lon"]), state.time_ms,
        )
        card: CardState | None = state.get("card")
        card = CardState() if card is None else card.copy()
        features = featurize(card, tx)
        state["card"] = card
        return tx, features

    stream = app.stream(tx_topic)
    if model.view_features:  # the model reads the view: score each event on the values it was served
        view = card_activity(transactions)
        folded = materialize(app, view, log_served=True, stream=stream).values
        assert folded is not None
        wanted = model.view_features

        def with_view(item: dict[str, Any], state: KeyState) -> tuple[Transaction, list[float]]:
            tx, own = card_features(item["event"], state)
            values = item["values"]
            return tx, own + [_NAN if values[n] is None else float(values[n]) for n in wanted]

        scored = folded.process(with_view, state="cards")
    else:
        if features:
            materialize(app, card_activity(transactions), log_served=True)
        scored = stream.process(card_features, state="cards")
    if isinstance(model, LiveModels):
        _score_live(scored, model, alert_topic)
    else:
        _score_fitted(scored, model, alert_topic)
    if velocity is not None:
        velocity_topic = app.topic(velocity, partitions=partitions, event_type="card.velocity")
        (stream.window(Tumbling(size_ms=VELOCITY_WINDOW_MS), emit="final", grace_ms=5_000)
            .aggregate(Count())
            .filter(lambda w: w["value"] >= velocity_limit)
            .to(velocity_topic))
    return app


def _score_fitted(scored: Stream, model: FraudModel, alert_topic: TopicRef) -> None:
    """``(transaction, features)`` → one ``score_many`` per batch → alerts over the threshold."""
    threshold = model.threshold.value
    names = model.feature_names

    def score(values: list[tuple[Transaction, list[float]]]) -> list[Any]:
        scores = model.score_many(np.asarray([f for _, f in values], dtype=np.float64))
        return [(tx, f, s) for (tx, f), s in zip(values, scores.tolist(), strict=True)]

    def alert(value: tuple[Transaction, list[float], float], item: Item) -> dict[str, Any]:
        tx, features, s = value
        return {
            "transaction_id": item.id,  # the alert's own id is the transaction's too
            "card_id": tx.card_id,
            "score": round(s, 6),
            "threshold": round(threshold, 6),
            "features": {n: round(v, 6) for n, v in zip(names, features, strict=True)},
        }

    (scored
        .map_batch(score)
        .filter(lambda v: v[2] >= threshold)
        .map(alert, metadata=True)
        .to(alert_topic))


def _score_live(scored: Stream, live: LiveModels, alert_topic: TopicRef) -> None:
    """``(transaction, features)`` → :func:`eventml.ml.predict` with the registry's
    aliases → alerts where the champion's decision is yes."""
    from eventml.ml import predict

    names = live.feature_names

    def named(value: tuple[Transaction, list[float]]) -> dict[str, Any]:
        tx, features = value
        out: dict[str, Any] = dict(zip(names, features, strict=True))
        out["card_id"] = tx.card_id
        return out

    def alert(value: dict[str, Any], item: Item) -> dict[str, Any]:
        return {
            "transaction_id": item.id,
            "card_id": value["card_id"],
            "score": round(value["score"], 6),
            "threshold": round(live.threshold, 6),
            "features": {n: round(float(value[n]), 6) for n in names},
            "model_version": value["model_version"],
        }

    challenger = None if live.challenger is None else f"{live.model}@{live.challenger}"
    acted = predict(
        scored.map(named), f"{live.model}@{live.champion}", features=names,
        registry=live.registry, shadow=challenger, predictions=live.predictions,
        decision=live.threshold, watch_every_ms=live.watch_every_ms,
    )
    acted.filter(lambda v: bool(v["decision"])).map(alert, metadata=True).to(alert_topic)
