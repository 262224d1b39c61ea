"""`eventml bench ingest` at a tiny size: it runs end to end, counts every event, and a
count that does not add up is caught."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from eventml.bench.ingest import ACKNOWLEDGED, check_counts, transactions
from eventml.cli.app import main


def test_the_ingest_benchmark_runs_small(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "ingest", "-n", "600", "--batch", "50", "--rate", "200", "--duration", "1",
                 "--warmup", "0.2", "-c", "4", "--batch-connections", "2", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = orjson.loads(out)
    assert result["benchmark"] == "ingest" and result["settings"]["batch"] == 50
    single, batched, baseline = result["single"], result["batched"], result["baseline"]
    http = single["http"]
    assert http["requests"] == 200 and http["ok"] == 200 and http["errors"] == 0, http
    assert 0 < http["p50_ms"] <= http["p99_ms"] <= http["p999_ms"] <= http["max_ms"]
    assert single["counts"] == {"sent": 240, "acknowledged": 240, "appended": 240, "ok": True}
    assert batched["http"]["requests"] == 12 and batched["http"]["errors"] == 0
    assert batched["counts"] == {"sent": 600, "acknowledged": 600, "appended": 600, "ok": True}
    assert batched["events_per_s"] > 0 and batched["http"]["p99_ms"] > 0
    assert baseline["events"] == 600 and baseline["append_eps"] > 0
    assert baseline["single_append"]["calls"] == 240
    assert result["ratio"] == pytest.approx(batched["events_per_s"] / baseline["append_eps"], rel=0.01)
    targets = result["targets"]
    assert targets["at_target_scale"] is False and targets["counts"]["met"] is True
    assert targets["single_p99_ms"]["value"] == http["p99_ms"]
    assert targets["batched_eps"] == {"target": 20_000.0, "value": batched["events_per_s"],
                                      "met": batched["events_per_s"] >= 20_000}


def test_a_count_that_does_not_add_up_is_caught() -> None:
    before, after = {0: 10, 1: 5}, {0: 13, 1: 7}  # 5 appended
    assert check_counts(before, after, 5)["ok"] is True
    assert check_counts(before, after, 5, sent=5) == {"sent": 5, "acknowledged": 5, "appended": 5,
                                                      "ok": True}
    assert check_counts(before, after, 4)["ok"] is False  # a duplicate, or an unacknowledged append
    assert check_counts(before, after, 6)["ok"] is False  # an acknowledged event lost
    assert check_counts(before, after, 5, sent=6)["ok"] is False  # an event sent, never acknowledged


def test_events_are_card_transactions_of_about_200_bytes() -> None:
    txs = transactions(100, seed=7)
    sizes = [len(orjson.dumps(tx)) for tx in txs]
    assert all(170 <= n <= 230 for n in sizes) and all(tx["card"].startswith("c") for tx in txs)
    assert transactions(3, seed=7, start=5) != transactions(3, seed=7)  # batches differ from singles
    assert ACKNOWLEDGED in orjson.dumps({"duplicate": False})


def test_bad_options_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "ingest", "--batch", "5000"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--batch" in err[0]
    assert main(["bench", "ingest", "--broker", "memory://"]) != 0
    assert "--broker" in capsys.readouterr().err


# -- what keeps single-event ingest fast, and what it must not change --------------------------


def test_the_benchmark_says_which_durability_it_measured(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "ingest", "--durability", "none"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--durability" in err[0]
    assert main(["bench", "ingest", "--durability", "fast", "--broker", "embedded:///tmp/x"]) != 0
    assert "?durability=fast" in capsys.readouterr().err
    code = main(["bench", "ingest", "-n", "100", "--batch", "50", "--rate", "100", "--duration", "0.5",
                 "--warmup", "0", "-c", "2", "--batch-connections", "1", "--durability", "fast", "--json"])
    result = orjson.loads(capsys.readouterr().out)
    assert code == 0 and result["settings"]["durability"] == "fast"
    assert "synchronous=NORMAL" in result["broker"]
    assert result["single"]["counts"]["ok"] and result["batched"]["counts"]["ok"]
    assert all(len(p["http"]["load_average"]) == 2 for p in (result["single"], result["batched"]))


def test_a_batch_thread_hands_what_queued_meanwhile_over_at_once_in_order() -> None:
    import asyncio
    import threading

    from eventml.api._batch_thread import BatchThread

    batches: list[list[int]] = []
    first_in, release = threading.Event(), threading.Event()

    def handle(items: Sequence[int]) -> list[int | BaseException]:
        batches.append(list(items))
        if len(batches) == 1:
            first_in.set()
            release.wait(5)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    worker: BatchThread[int, int] = BatchThread(handle, name="test-batch", idle_s=0.2)

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(worker.submit(0))
        while not first_in.is_set():
            await asyncio.sleep(0.001)
        later = [asyncio.ensure_future(worker.submit(i)) for i in range(1, 6)]
        cancelled = later[1]  # item 2: its caller gives up, the others still get theirs
        await asyncio.sleep(0.01)
        cancelled.cancel()
        release.set()
        return await asyncio.gather(first, *later, return_exceptions=True)

    results = asyncio.run(scenario())
    assert batches == [[0], [1, 2, 3, 4, 5]]  # queued during the first: one batch, in order
    assert results[0] == 0 and results[4] == 40  # each item its own result or exception
    assert all(isinstance(results[i], ValueError) and f"odd {i}" in str(results[i]) for i in (1, 3, 5))
    assert isinstance(results[2], asyncio.CancelledError)
    deadline = time.monotonic() + 5
    while worker._running and time.monotonic() < deadline:  # idle: the thread ends
        time.sleep(0.01)
    assert not worker._running
    assert asyncio.run(worker.submit(8)) == 80  # and a new one starts for the next item


def test_a_handler_that_fails_fails_its_whole_batch() -> None:
    import asyncio

    from eventml.api._batch_thread import BatchThread

    def handle(items: Sequence[str]) -> list[str | BaseException]:
        raise RuntimeError("disk gone")

    worker: BatchThread[str, str] = BatchThread(handle, name="test-fail")
    with pytest.raises(RuntimeError, match="disk gone"):
        asyncio.run(worker.submit("a"))


def _ingest_app(log: Any, *, dependency: Any = None, registry: Any = None) -> Any:
    from fastapi import Depends, FastAPI

    from eventml.api.ingest import ingest_router

    async def key_check(request: Any, operation: str, resource: str) -> Any:
        if request.headers.get("authorization") != "Bearer good":
            from starlette.exceptions import HTTPException

            raise HTTPException(401, "bad key")
        return type("Key", (), {"key_id": "k"})()

    app = FastAPI(dependencies=[] if dependency is None else [Depends(dependency)])
    app.include_router(ingest_router(log, authorize=key_check, registry=registry))
    return app


def test_the_ingest_route_skips_fastapi_only_for_the_key_check() -> None:
    """DirectRoute: no dependency, or the app's key check alone, is solved by nobody (the
    route authorizes itself); any other dependency of an includer still runs."""
    from fastapi.testclient import TestClient

    from eventml.log import TopicSpec, open_log

    log = open_log("memory://")
    log.create_topic(TopicSpec("t", partitions=1))
    seen: list[str] = []

    async def audit() -> None:
        seen.append("audit")

    for dependency, runs in ((None, []), (audit, ["audit"])):
        seen.clear()
        c = TestClient(_ingest_app(log, dependency=dependency))
        assert c.post("/v1/topics/t/events?key_field=k", json={"k": "a"},
                      headers={"Authorization": "Bearer good"}).status_code == 202
        assert c.post("/v1/topics/t/events", json={"k": "a"}).status_code == 401
        assert seen == runs * 2
    op = _ingest_app(log).openapi()["paths"]["/v1/topics/{topic}/events"]["post"]
    assert {(p["name"], p["in"]) for p in op["parameters"]} == {
        ("topic", "path"), ("key_field", "query"), ("time_field", "query"), ("type", "query")}


def test_a_schema_registered_after_a_request_applies_to_the_next_one() -> None:
    """The route reuses a topic's look-up (exists, its schema) for a while, but not once
    the registry changed: the request right after a registration is validated."""
    from fastapi.testclient import TestClient

    from eventml.log import TopicSpec, open_log
    from eventml.schema import SchemaRegistry

    log = open_log("memory://")
    log.create_topic(TopicSpec("t", partitions=1))
    registry = SchemaRegistry(log, stale_after_s=3600)  # only a change may end the reuse
    c = TestClient(_ingest_app(log, registry=registry))
    good = {"Authorization": "Bearer good"}
    assert c.post("/v1/topics/t/events", json={"amount": "ten"}, headers=good).status_code == 202
    schema = {"type": "object", "properties": {"amount": {"type": "number"}}}
    registry.register("t-value", orjson.dumps(schema).decode(), "JSON")
    r = c.post("/v1/topics/t/events", json={"amount": "ten"}, headers=good)
    assert r.status_code == 422 and r.json()["error_code"] == 42202
    log.delete_topic("t")  # deleted after its look-up: the append refuses it
    r = c.post("/v1/topics/t/events", json={"amount": 1}, headers=good)
    assert r.status_code == 404 and "deleted" in r.json()["message"]
    r = c.post("/v1/topics/t/events", json={"amount": 1}, headers=good)
    assert r.status_code == 404 and "create it first" in r.json()["message"]


def test_wal_checkpoints_run_in_a_thread_while_appends_come_in(tmp_path: Any) -> None:
    """The embedded log copies its WAL into the database from a thread of its own, so no
    append's commit waits for it (the ~20 ms stall every ~0.7 s at 1,000 appends/s);
    the thread ends once appends stop. (Belongs with tests/test_embedded_log.py.)"""
    import threading

    from eventml.log import Message, TopicSpec, open_log
    from eventml.log.embedded.checkpoint import Checkpointer

    connected: list[int] = []

    class Conn:
        def __init__(self) -> None:
            self.sql: list[str] = []

        def execute(self, sql: str) -> Any:
            self.sql.append(sql)
            return self

        def fetchall(self) -> list[Any]:
            return []

        def close(self) -> None:
            connected.append(len(self.sql))

    conns: list[Conn] = []

    def connect() -> Any:
        conns.append(Conn())
        return conns[-1]

    cp = Checkpointer(connect, interval_s=0.01, idle_s=0.1)
    cp.appended()
    cp.appended()
    deadline = time.monotonic() + 5
    while cp.checkpoints < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert cp.checkpoints == 1 and conns[0].sql == ["PRAGMA wal_checkpoint(PASSIVE)"]
    while cp._running and time.monotonic() < deadline:  # no appends: it stops, closing
        time.sleep(0.01)
    assert not cp._running and connected == [1] and cp.checkpoints == 1
    cp.appended()  # and starts again with the next append
    while cp.checkpoints < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert cp.checkpoints == 2 and len(conns) == 2

    with open_log(f"embedded://{tmp_path}/data") as log:
        log.create_topic(TopicSpec("t", partitions=1))
        for i in range(20):
            log.append("t", [Message(str(i).encode())])
        shared = log._shared  # type: ignore[attr-defined]
        while (shared.checkpointer is None or shared.checkpointer.checkpoints < 1) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        assert shared.checkpointer.checkpoints >= 1
        assert any(t.name == "eventml-log-checkpoint" for t in threading.enumerate())
        assert sum(log.end_offsets("t").values()) == 20
