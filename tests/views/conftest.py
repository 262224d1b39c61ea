"""View tests run the runner on every log backend (memory, embedded and a real Kafka broker)
and the view stores on both backends (SQLite files and a real PostgreSQL server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventml.log import Log, Message, TopicSpec, open_log
from eventml.views import EventMeta, Projection, RowStore, Table, open_view_store


@dataclass
class Backend:
    name: str
    url: str
    log: Log

    def topic(self, partitions: int = 3) -> str:
        name = f"orders-{uuid.uuid4().hex[:8]}"
        self.log.create_topic(TopicSpec(name, partitions))
        return name


@pytest.fixture(params=["memory", "embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        url = f"memory://{uuid.uuid4().hex[:6]}"
    elif request.param == "embedded":
        url = f"embedded://{tmp_path}/data"
    else:
        url = f"kafka://{request.getfixturevalue('kafka_bootstrap')}"
    b = Backend(request.param, url, open_log(url))
    try:
        yield b
    finally:
        b.log.close()


@dataclass
class ViewDb:
    """Where the test's views live: SQLite files in a temporary directory, or a schema of
    their own in the session's PostgreSQL database."""

    kind: str
    where: str | Path

    def target(self, view: str = "v") -> str | Path:
        """What ``ProjectionRunner(db_path=...)`` and ``open_view_store`` take for ``view``."""
        return self.where if isinstance(self.where, str) else self.where / f"{view}.sqlite"

    def open(self, view: str = "v", indexed: tuple[str, ...] = ()) -> RowStore:
        return open_view_store(self.target(view), view, indexed)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def view_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ViewDb]:
    if request.param == "sqlite":
        yield ViewDb("sqlite", tmp_path)
        return
    yield from _postgres_schema(request.getfixturevalue("postgres_dsn"))


@pytest.fixture
def pg_db(postgres_dsn: str) -> Iterator[ViewDb]:
    """PostgreSQL only: a schema of the test's own."""
    yield from _postgres_schema(postgres_dsn)


def _postgres_schema(dsn: str) -> Iterator[ViewDb]:
    import psycopg

    from eventml.testing.postgres import with_search_path

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield ViewDb("postgres", with_search_path(dsn, schema))
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def orders(n: int, customers: int = 7) -> list[dict[str, Any]]:
    """``n`` orders: order ``i`` by customer ``c{i % customers}``, amount ``i``."""
    return [{"order": i, "customer": f"c{i % customers}", "amount": i,
             "region": "eu" if i % customers % 2 else "us"} for i in range(n)]


def append_orders(log: Log, topic: str, rows: list[dict[str, Any]], batch: int = 97) -> None:
    for i in range(0, len(rows), batch):
        log.append(topic, [
            Message(orjson.dumps(o), o["customer"].encode(), (("ce_type", b"order.placed"),),
                    1_700_000_000_000 + o["order"])
            for o in rows[i : i + batch]
        ])


def by_customer(value: Any, meta: EventMeta, table: Table) -> None:
    """Orders per customer: a count, a total and the list of order ids (to see repeats)."""
    row = table.get(value["customer"]) or {"orders": 0, "total": 0, "ids": [],
                                          "region": value["region"]}
    row["orders"] += 1
    row["total"] += value["amount"]
    row["ids"].append(value["order"])
    row["type"] = meta.type
    table.put(value["customer"], row)


def customers_view(topic: str, name: str = "by_customer") -> Projection:
    return Projection(name, [topic], by_customer, indexed=["region"])


def expected(rows: list[dict[str, Any]], skip: set[int] | None = None) -> dict[str, dict[str, Any]]:
    skip = skip or set()
    out: dict[str, dict[str, Any]] = {}
    for o in rows:
        if o["order"] in skip:
            continue
        r = out.setdefault(o["customer"], {"orders": 0, "total": 0, "ids": [],
                                           "region": o["region"]})
        r["orders"] += 1
        r["total"] += o["amount"]
        r["ids"].append(o["order"])
    return out


def check_exactly_once(table: dict[str, dict[str, Any]], rows: list[dict[str, Any]],
                       skip: set[int] | None = None) -> None:
    """Every order applied exactly once: none missing, none twice."""
    skip = skip or set()
    seen: dict[int, int] = {}
    for row in table.values():
        for i in row["ids"]:
            seen[i] = seen.get(i, 0) + 1
    twice = sorted(i for i, n in seen.items() if n > 1)
    missing = sorted(o["order"] for o in rows if o["order"] not in seen and o["order"] not in skip)
    assert not twice, f"applied more than once: {twice[:10]}"
    assert not missing, f"never applied: {missing[:10]}"
    want = expected(rows, skip)
    assert {k: (v["orders"], v["total"]) for k, v in table.items()} == {
        k: (v["orders"], v["total"]) for k, v in want.items()}
