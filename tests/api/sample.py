"""A small app materializing a feature view, and a read model over the same topic (what the
API tests and ``eventml serve --app tests.api.sample:app --views tests.api.sample:views`` serve)."""

from __future__ import annotations

import random
from typing import Any

import orjson

from eventml.engine import App
from eventml.features import DAY, HOUR, FeatureView, count, materialize, since_last, total
from eventml.log import Message
from eventml.views import EventMeta, Projection, Table, projection

SOURCE = "tx"
T0 = 1_700_000_000_000
VIEW = FeatureView(
    "card_activity", entity="card", source=SOURCE, ttl_ms=DAY, time="ts",
    features=[count("tx_1h", HOUR), total("amount_1h", "amount", HOUR), since_last("secs_since_last")],
)


def build_app(name: str = "apitest", broker: str | None = None) -> App:
    app = App(name, broker=broker, min_batch=10)
    app.topic(SOURCE, partitions=2)
    materialize(app, VIEW)
    return app


@projection("cards", [SOURCE], indexed=["merchant"])
def cards(value: Any, meta: EventMeta, table: Table) -> None:
    """Per card: transactions, total and the last merchant."""
    row = table.get(value["card"]) or {"card": value["card"], "n": 0, "total": 0.0}
    row["n"] += 1
    row["total"] = round(row["total"] + value["amount"], 2)
    row["merchant"] = value["merchant"]
    table.put(value["card"], row)


def events(n: int, *, cards: int = 40, seed: int = 1, start: int = T0) -> list[Message]:
    """``n`` card transactions, one every second, keyed by card (a few keys hold a '/')."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        card = f"c{rng.randrange(cards)}" if i % 10 else f"c/{rng.randrange(3)}"
        t = start + i * 1000
        value = {"card": card, "ts": t, "amount": round(rng.uniform(1, 100), 2),
                 "merchant": f"m{rng.randrange(4)}"}
        out.append(Message(orjson.dumps(value), card.encode(), timestamp_ms=t))
    return out


app = build_app()
views: list[Projection] = [cards]
bare = App("bare")  # materializes nothing
