"""/v1/topics: names, per-partition offsets and counts, and a consumer group's lag, read over
HTTP on every log; the numbers are the ones the test wrote and committed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import jsonschema
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from eventml.api.topics import topics_router
from eventml.log import (
    ConsumerConfig,
    Log,
    Message,
    RebalanceListener,
    TopicPartition,
    TopicSpec,
)
from eventml.testing import MemoryLog

ROUTES = [("GET", "/v1/topics"), ("GET", "/v1/topics/{topic}"), ("GET", "/v1/topics/{topic}/lag")]


def one_line_error(r: Any, status: int, code: int) -> str:
    """The message of an error answer, checked: ``status``, ``{"error_code", "message"}``
    with ``code``, one line, no traceback."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error_code", "message"}, body
    assert body["error_code"] == code, body
    message: str = body["message"]
    assert message and "\n" not in message and "Traceback" not in r.text
    return message


def assert_matches_spec(app: Any, method: str, template: str, r: Any) -> None:
    """``r``'s body is valid against the schema the OpenAPI spec gives for its status."""
    operation = app.openapi()["paths"][template][method.lower()]
    declared = operation["responses"][str(r.status_code)]
    schema = declared["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(schema).validate(r.json())


def _client(log: Log) -> TestClient:
    app = FastAPI()
    app.include_router(topics_router(log))
    return TestClient(app)


@pytest.fixture
def topic(log: Log, kafka_topic_name: str) -> str:
    """3 partitions holding 5, 0 and 7 records."""
    log.create_topic(TopicSpec(kafka_topic_name, 3))
    for partition, n in ((0, 5), (2, 7)):
        log.append(kafka_topic_name, [Message(b"{}", f"k{i}".encode(), partition=partition)
                                      for i in range(n)])
    return kafka_topic_name


def test_topics_are_listed_and_described_with_offsets_and_counts(log: Log, topic: str) -> None:
    with _client(log) as c:
        r = c.get("/v1/topics")
        assert r.status_code == 200
        names = r.json()["topics"]
        assert topic in names and names == sorted(names)
        assert names == log.list_topics()
        assert_matches_spec(c.app, "GET", "/v1/topics", r)

        r = c.get(f"/v1/topics/{topic}")
        assert r.status_code == 200
        assert r.json() == {
            "topic": topic, "records": 12, "retention_ms": None, "retention_bytes": None,
            "cleanup_policy": "delete",
            "partitions": [
                {"partition": 0, "start_offset": 0, "end_offset": 5, "records": 5},
                {"partition": 1, "start_offset": 0, "end_offset": 0, "records": 0},
                {"partition": 2, "start_offset": 0, "end_offset": 7, "records": 7},
            ]}
        assert_matches_spec(c.app, "GET", "/v1/topics/{topic}", r)


def test_start_offsets_move_with_retention() -> None:
    now = [0]
    log = MemoryLog(clock=lambda: now[0])
    log.create_topic(TopicSpec("t", 2, retention_ms=500))
    log.append("t", [Message(b"old", partition=0)] * 3 + [Message(b"old", partition=1)])
    now[0] = 1000
    log.append("t", [Message(b"new", partition=0)] * 2)
    assert log.enforce_retention(now_ms=1200) == 4
    with _client(log) as c:
        body = c.get("/v1/topics/t").json()
    assert body["partitions"] == [
        {"partition": 0, "start_offset": 3, "end_offset": 5, "records": 2},
        {"partition": 1, "start_offset": 1, "end_offset": 1, "records": 0},
    ]
    assert (body["records"], body["retention_ms"]) == (2, 500)


def test_unknown_and_invalid_topics_are_one_line_errors() -> None:
    with _client(MemoryLog()) as c:
        assert one_line_error(c.get("/v1/topics/nope"), 404, 40401) == (
            "no topic 'nope' (GET /v1/topics lists them)")
        one_line_error(c.get("/v1/topics/nope/lag?group=g"), 404, 40401)
        for name in ("a%20b", "x" * 250, "caf%C3%A9", "a%00"):
            one_line_error(c.get(f"/v1/topics/{name}"), 422, 42203)
            one_line_error(c.get(f"/v1/topics/{name}/lag?group=g"), 422, 42203)


def _commit(log: Log, group: str, offsets: Mapping[TopicPartition, int]) -> None:
    """Commit ``offsets`` as a member of ``group`` (which then leaves)."""
    topic = next(iter(offsets)).topic
    with log.consumer(group, [topic], config=ConsumerConfig(auto_offset_reset="earliest")) as consumer:
        deadline = time.monotonic() + 30
        while not set(offsets) <= consumer.assignment():
            assert time.monotonic() < deadline, "partitions never assigned"
            consumer.poll(max_records=1, timeout_s=0.1)
        consumer.commit(offsets)


def test_lag_is_end_minus_committed_per_partition(log: Log, topic: str) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    with _client(log) as c:
        r = c.get(f"/v1/topics/{topic}/lag", params={"group": group})
        assert r.status_code == 200
        assert r.json() == {"topic": topic, "group": group, "lag": 0, "partitions": [
            {"partition": p, "committed": None, "end_offset": end, "lag": None}
            for p, end in enumerate((5, 0, 7))]}
        assert_matches_spec(c.app, "GET", "/v1/topics/{topic}/lag", r)

        _commit(log, group, {TopicPartition(topic, 0): 2, TopicPartition(topic, 2): 7})
        body = c.get(f"/v1/topics/{topic}/lag", params={"group": group}).json()
        assert [(p["committed"], p["lag"]) for p in body["partitions"]] == [(2, 3), (None, None), (7, 0)]
        assert body["lag"] == 3

        log.append(topic, [Message(b"{}", partition=2)] * 4)  # the group falls behind
        body = c.get(f"/v1/topics/{topic}/lag", params={"group": group}).json()
        assert [(p["end_offset"], p["lag"]) for p in body["partitions"]] == [(5, 3), (0, None), (11, 4)]
        assert body["lag"] == 7


def test_reading_lag_does_not_join_the_group() -> None:
    log = MemoryLog()
    log.create_topic(TopicSpec("t", 2))
    log.append("t", [Message(b"{}", partition=p) for p in (0, 0, 1)])
    moves: list[str] = []
    listener = RebalanceListener(on_assign=lambda tps: moves.append(f"assign {len(tps)}"),
                                 on_revoke=lambda tps: moves.append(f"revoke {len(tps)}"))
    with log.consumer("workers", ["t"], listener=listener,
                      config=ConsumerConfig(auto_offset_reset="earliest")) as worker:
        while len(worker.assignment()) < 2:
            worker.poll(timeout_s=0.1)
        worker.commit({TopicPartition("t", 0): 1})
        with _client(log) as c:
            for _ in range(3):
                body = c.get("/v1/topics/t/lag", params={"group": "workers"}).json()
                assert [p["lag"] for p in body["partitions"]] == [1, None]
                worker.poll(timeout_s=0.05)
        assert moves == ["assign 2"]  # never revoked: the reads were not members
        assert len(worker.assignment()) == 2


def test_the_group_is_required_and_bounded() -> None:
    log = MemoryLog()
    log.create_topic(TopicSpec("t", 1))
    with _client(log) as c:
        assert "group" in one_line_error(c.get("/v1/topics/t/lag"), 422, 422)
        one_line_error(c.get("/v1/topics/t/lag?group="), 422, 422)
        one_line_error(c.get("/v1/topics/t/lag", params={"group": "g" * 256}), 422, 422)
        assert "printable" in one_line_error(c.get("/v1/topics/t/lag", params={"group": "g\x00"}),
                                             422, 422)
        assert c.get("/v1/topics/t/lag", params={"group": "g" * 255}).status_code == 200


def test_the_spec_documents_each_route_with_its_answers() -> None:
    spec = _client(MemoryLog()).app.openapi()  # type: ignore[attr-defined]
    for method, template in ROUTES:
        responses = spec["paths"][template][method.lower()]["responses"]
        assert {"200", "401", "403", "429", "503"} <= set(responses), template
        assert "schema" in responses["200"]["content"]["application/json"]
        if "{topic}" in template:
            assert {"404", "422"} <= set(responses)


def _spec_check_catches(body: dict[str, Any]) -> bool:
    """Whether :func:`assert_matches_spec` refuses a describe body (for the broken case)."""
    app = _client(MemoryLog()).app

    class Fake:
        status_code = 200

        def json(self) -> dict[str, Any]:
            return body
    try:
        assert_matches_spec(app, "GET", "/v1/topics/{topic}", Fake())
    except jsonschema.ValidationError:
        return True
    return False


def test_the_spec_check_catches_a_body_off_the_spec() -> None:
    good = {"topic": "t", "partitions": [], "records": 0, "retention_ms": None,
            "retention_bytes": None, "cleanup_policy": "delete"}
    assert not _spec_check_catches(good)
    assert _spec_check_catches({**good, "records": "0"})
    assert _spec_check_catches({k: v for k, v in good.items() if k != "partitions"})
