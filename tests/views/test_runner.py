"""The projection runner on every log backend and both view stores (SQLite, PostgreSQL):
exactly once across crashes, dead letters, rebuild."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from eventml.deadletter import FatalError, RetryPolicy, parse_dead_letter
from eventml.log import ConsumerConfig, Log, Message, Record, TopicPartition, TopicSpec
from eventml.testing import MemoryLog
from eventml.views import EventMeta, Projection, ProjectionFailed, ProjectionRunner, Table
from tests.views.conftest import (
    Backend,
    ViewDb,
    append_orders,
    by_customer,
    check_exactly_once,
    customers_view,
    expected,
    orders,
)


class Crash(Exception):
    """Stands for the process dying at a given point."""


def crash_at(stage: str, nth: int) -> Any:
    seen = {"n": 0}

    def hook(name: str) -> None:
        if name == stage:
            seen["n"] += 1
            if seen["n"] == nth:
                raise Crash(f"crash at {stage} #{nth}")

    return hook


def die(runner: ProjectionRunner) -> None:
    """The process is gone: its consumer leaves the group without a last commit."""
    runner.consumer.close()
    runner.store.close()


def table_of(runner: ProjectionRunner) -> dict[str, dict[str, Any]]:
    return dict(runner.query(limit=10_000))


def read_all(log: Log, topic: str, n: int, timeout_s: float = 30.0) -> list[Record]:
    c = log.consumer(f"r{uuid.uuid4().hex[:8]}", [topic], config=ConsumerConfig(auto_offset_reset="earliest"))
    out: list[Record] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            out += c.poll(1000, 0.2)
    finally:
        c.close()
    return out


def test_orders_project_into_a_per_customer_read_model(backend: Backend, view_db: ViewDb) -> None:
    topic = backend.topic()
    rows = orders(300)
    append_orders(backend.log, topic, rows)
    with ProjectionRunner(backend.log, customers_view(topic), view_db.target()) as runner:
        stats = runner.catch_up()
        assert stats.events == 300 and stats.dead_lettered == 0
        table = table_of(runner)
        check_exactly_once(table, rows)
        assert runner.get("c1") == {**expected(rows)["c1"], "type": "order.placed"}
        assert runner.get("nobody") is None
        eu = {k for k, _ in runner.query({"region": "eu"})}
        assert eu == {k for k, v in expected(rows).items() if v["region"] == "eu"}
        assert runner.count({"region": "eu"}) == len(eu) and runner.count() == 7
        status = runner.status()
        assert status.lag == 0 and status.rows == 7 and status.last_update_ms is not None
        assert sum(p.end_offset for p in status.partitions) == 300

        more = orders(350)[300:]
        append_orders(backend.log, topic, more)
        assert runner.status().lag == 50
        runner.catch_up()
        assert runner.status().lag == 0
        check_exactly_once(table_of(runner), orders(350))


@pytest.mark.parametrize("stage", ["before_commit", "after_commit"])
def test_a_crash_then_restart_applies_every_event_exactly_once(
    backend: Backend, view_db: ViewDb, stage: str
) -> None:
    topic = backend.topic()
    rows = orders(400)
    append_orders(backend.log, topic, rows)
    view, db = customers_view(topic), view_db.target()
    crashed = ProjectionRunner(backend.log, view, db, max_batch=60, group_commit_interval_s=0,
                               on_stage=crash_at(stage, 3))
    with pytest.raises(Crash):
        crashed.catch_up()
    die(crashed)
    with ProjectionRunner(backend.log, view, db, max_batch=60) as runner:
        runner.catch_up()
        check_exactly_once(table_of(runner), rows)
        assert runner.status().lag == 0


class PositionsFirst(ProjectionRunner):
    """Broken on purpose: positions in their own transaction, before the rows."""

    def _write(self, rows: Any, nexts: Any) -> None:
        self.store.commit_encoded({}, nexts, now_ms=0)
        self._stage("between")
        self.store.commit_encoded(rows, {}, now_ms=0)


class TrustsGroupOffsets(ProjectionRunner):
    """Broken on purpose: resumes from the consumer group's committed offsets."""

    def _applied_up_to(self, tp: TopicPartition) -> int:
        return -1

    def _seek_pending(self, consumer: Any) -> set[TopicPartition]:
        self._pending.clear()
        return set()


@pytest.mark.parametrize(("broken", "stage", "violation"), [
    (PositionsFirst, "between", "never applied"),
    (TrustsGroupOffsets, "after_commit", "applied more than once"),
])
def test_the_checker_catches_a_broken_checkpoint(
    backend: Backend, view_db: ViewDb, broken: type[ProjectionRunner], stage: str,
    violation: str,
) -> None:
    topic = backend.topic()
    rows = orders(400)
    append_orders(backend.log, topic, rows)
    view, db = customers_view(topic), view_db.target()
    crashed = broken(backend.log, view, db, max_batch=60, group_commit_interval_s=0,
                     on_stage=crash_at(stage, 3))
    with pytest.raises(Crash):
        crashed.catch_up()
    die(crashed)
    with broken(backend.log, view, db, max_batch=60, group_commit_interval_s=0) as runner:
        runner.catch_up()
        with pytest.raises(AssertionError, match=violation):
            check_exactly_once(table_of(runner), rows)


def test_handler_failures_are_dead_lettered_and_the_view_keeps_going(
    backend: Backend, view_db: ViewDb
) -> None:
    topic = backend.topic()
    rows = orders(500)
    append_orders(backend.log, topic, rows)
    flaky = {7: 2}  # order 7 times out twice, then succeeds

    def handler(value: Any, meta: EventMeta, table: Table) -> None:
        by_customer(value, meta, table)  # changes first: a failure must undo them
        if value["order"] % 100 == 42:
            raise ValueError(f"bad order {value['order']} token=s3cret")
        if flaky.get(value["order"], 0) > 0:
            flaky[value["order"]] -= 1
            raise TimeoutError("downstream slow")

    view = Projection("fragile", [topic], handler)
    sleeps: list[float] = []
    with ProjectionRunner(backend.log, view, view_db.target(), max_batch=120,
                          retry=RetryPolicy(max_attempts=3, initial_backoff_ms=1, jitter=0),
                          sleep=sleeps.append) as runner:
        stats = runner.catch_up()
        assert stats.dead_lettered == 5 and sleeps == [0.001, 0.002]
        failed = {42, 142, 242, 342, 442}
        check_exactly_once(table_of(runner), rows, skip=failed)
        assert runner.status().lag == 0

    dead = [parse_dead_letter(r) for r in read_all(backend.log, f"{topic}.dlq", 5)]
    assert len(dead) == 5
    by_offset = {(r.partition, r.offset): r for r in _records(backend.log, topic)}
    got = set()
    for d in dead:
        assert d.source["group"] == "eventml-view-fragile" and d.source["operator"] == "view:fragile"
        assert d.source_topic == topic and d.error_kind == "permanent" and d.attempts == 1
        assert d.error_class == "builtins.ValueError" and "s3cret" not in d.error_message
        assert d.source_partition is not None and d.source_offset is not None
        original = by_offset[(d.source_partition, d.source_offset)]
        assert (d.value, d.key) == (original.value, original.key)
        assert ("ce_type", b"order.placed") in d.headers
        got.add(int(d.error_message.split()[2].rstrip(":")))
    assert got == failed


def _records(log: Log, topic: str) -> list[Record]:
    n = sum(log.end_offsets(topic).values())
    return read_all(log, topic, n)


def test_rebuild_gives_the_same_table(backend: Backend, view_db: ViewDb) -> None:
    topic = backend.topic()
    rows = orders(300)
    append_orders(backend.log, topic, rows)
    with ProjectionRunner(backend.log, customers_view(topic), view_db.target()) as runner:
        runner.catch_up()
        before = table_of(runner)
        stats = runner.rebuild()
        assert stats.events == 300 and stats.events_per_s > 0
        assert table_of(runner) == before
        assert runner.status().lag == 0
    # a fresh runner (another process) rebuilds too
    with ProjectionRunner(backend.log, customers_view(topic), view_db.target()) as runner:
        assert runner.rebuild().events == 300
        assert table_of(runner) == before


def test_a_fatal_failure_stops_without_committing_and_resumes_after_the_fix(view_db: ViewDb) -> None:
    log = MemoryLog()
    log.create_topic(TopicSpec("orders", 2))
    rows = orders(100)
    append_orders(log, "orders", rows)
    broken = {"on": True}

    def handler(value: Any, meta: EventMeta, table: Table) -> None:
        if broken["on"] and value["order"] == 50:
            raise FatalError("misconfigured")
        by_customer(value, meta, table)

    with ProjectionRunner(log, Projection("v", ["orders"], handler), view_db.target(),
                          max_batch=30) as runner:
        with pytest.raises(ProjectionFailed, match="failed fatally"):
            runner.catch_up()
        assert sum(r["orders"] for r in table_of(runner).values()) < 100
        broken["on"] = False
        runner.catch_up()
        check_exactly_once(table_of(runner), rows)


def test_a_runner_takes_an_open_store_and_says_where_the_view_is(view_db: ViewDb) -> None:
    log = MemoryLog()
    log.create_topic(TopicSpec("orders", 2))
    append_orders(log, "orders", orders(50))
    store = view_db.open("by_customer", indexed=("region",))
    with ProjectionRunner(log, customers_view("orders"), store) as runner:
        assert runner.store is store and runner.catch_up().events == 50
        check_exactly_once(table_of(runner), orders(50))
        if view_db.kind == "sqlite":
            assert runner.path == view_db.target("by_customer") and runner.location == str(runner.path)
        else:
            assert runner.path is None and "table view_by_customer" in runner.location
        assert runner.status().path == runner.location


def test_deletes_and_bad_rows(view_db: ViewDb) -> None:
    log = MemoryLog()
    log.create_topic(TopicSpec("t", 1))
    log.append("t", [Message(b'{"k": "a", "op": "put"}'), Message(b'{"k": "b", "op": "put"}'),
                     Message(b'{"k": "a", "op": "del"}'), Message(b'{"k": "c", "op": "list"}'),
                     Message(b"not json")])

    def handler(value: Any, meta: EventMeta, table: Table) -> None:
        if value["op"] == "del":
            table.delete(value["k"])
        else:
            table.put(value["k"], [1] if value["op"] == "list" else {"v": 1})  # type: ignore[arg-type]

    with ProjectionRunner(log, Projection("d", ["t"], handler), view_db.target()) as runner:
        assert runner.catch_up().dead_lettered == 2  # a list row, invalid JSON
        assert table_of(runner) == {"b": {"v": 1}}
