"""A small rule app for replay tests: every payment to ``seen`` (an audit of what was
processed), payments of at least ``threshold`` to ``alerts``. Importable for the CLI."""

from __future__ import annotations

from typing import Any

from eventml.engine import App, Item


def rules_app(
    threshold: float,
    *,
    name: str = "rules",
    broker: str | None = None,
    payments: str = "payments",
    alerts: str = "alerts",
    seen: str = "seen",
    partitions: int = 3,
) -> App:
    app = App(name, broker=broker, max_wait_ms=1)
    source = app.topic(payments, partitions=partitions, key="card")

    def decision(value: dict[str, Any], item: Item) -> dict[str, Any]:
        return {"transaction_id": item.id, "card": value["card"], "n": value["n"],
                "amount": value["amount"]}

    stream = app.stream(source).map(decision, metadata=True)
    stream.to(app.topic(seen, partitions=partitions, key="card"))
    stream.filter(lambda v: v["amount"] >= threshold).to(
        app.topic(alerts, partitions=partitions, key="card"))
    return app


app = rules_app(100.0)
candidate = rules_app(60.0)
