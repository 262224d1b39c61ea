"""POST /v1/topics/{topic}/events: what each way in appends, read back from the log."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException
from starlette.requests import Request

from eventml.api.ingest import (
    INGEST_TIME_HEADER,
    NO_KEYS_MESSAGE,
    PRODUCER_HEADER,
    Authorize,
    IngestLimits,
    ingest_router,
)
from eventml.events import from_record, from_structured, to_message
from eventml.events.jsonlines import LineOptions, parse_line
from eventml.log import ConsumerConfig, Log, Record, TopicSpec, partition_for
from eventml.schema import SchemaRegistry

NOW_MS = 1_767_225_600_000
GOOD = {"Authorization": "Bearer good"}
JSON = {**GOOD, "Content-Type": "application/json"}
STRUCTURED = {**GOOD, "Content-Type": "application/cloudevents+json"}
BATCH = {**GOOD, "Content-Type": "application/cloudevents-batch+json"}


@dataclass(frozen=True)
class Key:
    key_id: str


class FakeAuthorize:
    """Lets ``Authorization: Bearer good`` in as key ``k-test``; 401 for anything else."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, request: Request, operation: str, resource: str) -> Key:
        self.calls.append((operation, resource))
        if request.headers.get("authorization") != "Bearer good":
            raise HTTPException(401, "bad key")
        return Key("k-test")


@pytest.fixture
def topic(log: Log, kafka_topic_name: str) -> str:
    log.create_topic(TopicSpec(kafka_topic_name, partitions=3))
    return kafka_topic_name


def url(topic: str, query: str = "") -> str:
    return f"/v1/topics/{topic}/events{query}"


def client(log: Log, authorize: Authorize | None = None, **kw: Any) -> TestClient:
    app = FastAPI()
    app.include_router(ingest_router(log, authorize=authorize or FakeAuthorize(),
                                     clock_ms=lambda: NOW_MS, **kw))
    return TestClient(app)


def read_all(log: Log, topic: str) -> list[Record]:
    """Every record of ``topic``, by partition and offset."""
    expected = sum(log.end_offsets(topic).values())
    out: list[Record] = []
    config = ConsumerConfig(auto_offset_reset="earliest")
    with log.consumer(f"read-{uuid.uuid4().hex[:8]}", [topic], config=config) as consumer:
        deadline = time.monotonic() + 30
        while len(out) < expected and time.monotonic() < deadline:
            out += consumer.poll(max_records=1000, timeout_s=0.5)
    assert len(out) == expected
    return sorted(out, key=lambda r: (r.partition, r.offset))


def ends(log: Log, topic: str) -> dict[int, int]:
    return log.end_offsets(topic)


def accepted(r: Any, topic: str, n: int) -> list[dict[str, Any]]:
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["topic"] == topic and len(body["events"]) == n
    events: list[dict[str, Any]] = body["events"]
    return events


def refused(r: Any, status: int, code: int, *needles: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body: dict[str, Any] = r.json()
    assert body["error_code"] == code and set(body) <= {"error_code", "message", "errors"}, body
    assert "Traceback" not in body["message"] and "\n" not in body["message"]
    for needle in needles:
        assert needle in body["message"], body["message"]
    return body


def server_headers(record: Record) -> list[tuple[str, bytes]]:
    return [h for h in record.headers if h[0] in (INGEST_TIME_HEADER, PRODUCER_HEADER)]


def without_server_headers(headers: Any, *drop: str) -> list[tuple[str, bytes]]:
    return [h for h in headers if h[0] not in (INGEST_TIME_HEADER, PRODUCER_HEADER, *drop)]


def test_one_json_object_is_appended_as_eventml_produce_appends_it(log: Log, topic: str) -> None:
    auth = FakeAuthorize()
    obj = {"card": "c1", "amount": 12.5}
    r = client(log, auth).post(url(topic, "?key_field=card"), content=orjson.dumps(obj),
                               headers=JSON)
    (entry,) = accepted(r, topic, 1)
    assert auth.calls == [("produce", topic)]
    (record,) = read_all(log, topic)
    assert (entry["partition"], entry["offset"]) == (record.partition, record.offset)
    assert entry["duplicate"] is False
    event = from_record(record)
    assert (event.id, event.data, event.key) == (entry["id"], obj, "c1")
    assert (event.type, event.source) == (topic, "/eventml/http")
    assert record.partition == partition_for(b"c1", 3)
    # the record `eventml produce --key-field card --type TOPIC --source /eventml/http` writes
    options = LineOptions(type=topic, source="/eventml/http", key_field="card")
    cli = to_message(parse_line(orjson.dumps(obj), options))
    assert (record.key, record.value) == (cli.key, cli.value)
    assert without_server_headers(record.headers, "ce_id", "ce_time") == without_server_headers(
        cli.headers, "ce_id", "ce_time")


def test_a_json_batch_is_appended_in_order(log: Log, topic: str) -> None:
    objs = [{"card": f"c{i % 4}", "n": i} for i in range(10)]
    r = client(log).post(url(topic, "?key_field=card&type=tx.made"), json=objs, headers=GOOD)
    entries = accepted(r, topic, 10)
    records = read_all(log, topic)
    assert len(records) == 10
    by_place = {(rec.partition, rec.offset): from_record(rec) for rec in records}
    for obj, entry in zip(objs, entries, strict=True):
        event = by_place[entry["partition"], entry["offset"]]
        assert (event.id, event.data) == (entry["id"], obj)
        assert (event.key, event.type) == (obj["card"], "tx.made")
    assert len({e["id"] for e in entries}) == 10
    # per key, the order of the request
    for card in ("c0", "c1", "c2", "c3"):
        ns = [from_record(rec).data["n"] for rec in records if rec.key == card.encode()]
        assert ns == sorted(ns) and ns


def test_a_structured_cloudevent_keeps_its_attributes(log: Log, topic: str) -> None:
    ce = {"specversion": "1.0", "id": "ev-1", "source": "/pos/7", "type": "payment.made",
          "time": "2026-01-01T12:00:00+00:00", "subject": "s-1", "partitionkey": "card-9",
          "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
          "data": {"amount": 990.0}}
    r = client(log).post(url(topic), content=orjson.dumps(ce), headers=STRUCTURED)
    (entry,) = accepted(r, topic, 1)
    (record,) = read_all(log, topic)
    assert entry == {"id": "ev-1", "partition": record.partition, "offset": record.offset,
                     "duplicate": False}
    got, sent = from_record(record), from_structured(ce)
    for attribute in ("id", "source", "type", "time", "subject", "key", "data", "datacontenttype"):
        assert getattr(got, attribute) == getattr(sent, attribute), attribute
    assert got.extensions == {"traceparent": ce["traceparent"]} and record.key == b"card-9"
    assert record.partition == partition_for(b"card-9", 3)
    assert without_server_headers(record.headers) == list(to_message(sent).headers)


def test_a_binary_mode_cloudevent_takes_its_attributes_from_ce_headers(log: Log, topic: str) -> None:
    headers = {**JSON, "ce-specversion": "1.0", "ce-id": "bin-1", "ce-source": "/device/42",
               "ce-type": "reading.taken", "ce-subject": "temp%20sensor", "ce-partitionkey": "dev-42",
               "ce-time": "2026-01-01T12:00:00Z"}
    r = client(log).post(url(topic), content=b'{"celsius": 21.5}', headers=headers)
    (entry,) = accepted(r, topic, 1)
    (record,) = read_all(log, topic)
    assert (entry["id"], entry["offset"]) == ("bin-1", record.offset)
    assert entry["partition"] == record.partition == partition_for(b"dev-42", 3)
    event = from_record(record)
    assert (event.id, event.source, event.type, event.subject, event.key, event.data) == (
        "bin-1", "/device/42", "reading.taken", "temp sensor", "dev-42", {"celsius": 21.5})
    assert event.time.isoformat() == "2026-01-01T12:00:00+00:00"
    assert event.datacontenttype == "application/json"
    # not JSON: the body is the data, byte for byte
    text = {**headers, "Content-Type": "text/plain", "ce-id": "bin-2"}
    accepted(client(log).post(url(topic), content=b"21.5 C", headers=text), topic, 1)
    records = read_all(log, topic)
    assert len(records) == 2
    (plain,) = [rec for rec in records if from_record(rec, decode_data=False).id == "bin-2"]
    assert plain.value == b"21.5 C" and ("content-type", b"text/plain") in plain.headers
    # missing attributes: 422 naming them, nothing appended
    before = ends(log, topic)
    partial = {**GOOD, "ce-specversion": "1.0", "ce-id": "bin-3"}
    body = refused(client(log).post(url(topic), content=b"{}", headers=partial),
                   422, 42201, "source", "type")
    assert body["errors"][0]["index"] == 0
    assert ends(log, topic) == before


def test_a_cloudevents_batch_appends_each_event(log: Log, topic: str) -> None:
    batch = [{"specversion": "1.0", "id": f"b-{i}", "source": "/s", "type": "t",
              "partitionkey": f"k{i}", "data": {"i": i}} for i in range(5)]
    entries = accepted(client(log).post(url(topic), content=orjson.dumps(batch),
                                        headers=BATCH), topic, 5)
    records = read_all(log, topic)
    assert len(records) == 5
    assert [e["id"] for e in entries] == [f"b-{i}" for i in range(5)]
    got = {from_record(rec).id: (rec.partition, rec.offset, from_record(rec).data) for rec in records}
    for i, entry in enumerate(entries):
        assert got[entry["id"]] == (entry["partition"], entry["offset"], {"i": i})
    # one bad event refuses the batch: its index in the errors, nothing appended
    bad = [*batch[:2], {"specversion": "1.0", "id": "x", "type": "t", "data": 1}]
    body = refused(client(log).post(url(topic), content=orjson.dumps(bad), headers=BATCH),
                   422, 42201, "event 2", "source")
    assert [e["index"] for e in body["errors"]] == [2]
    assert len(read_all(log, topic)) == 5


def test_a_body_over_the_limit_is_refused_while_it_streams(log: Log, topic: str) -> None:
    limits = IngestLimits(max_body_bytes=1000)
    app = FastAPI()
    app.include_router(ingest_router(log, authorize=FakeAuthorize(), limits=limits))
    before = ends(log, topic)
    chunk = b" " * 100
    pulled = 0
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:  # 1 MB in 100-byte chunks, no Content-Length
        nonlocal pulled
        pulled += 1
        if pulled > 10_000:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunk, "more_body": pulled < 10_000}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": url(topic), "raw_path": b"", "root_path": "",
             "query_string": b"", "client": ("127.0.0.1", 1), "server": ("testserver", 80),
             "headers": [(b"authorization", b"Bearer good"), (b"content-type", b"application/json"),
                         (b"transfer-encoding", b"chunked")]}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert orjson.loads(sent[1]["body"])["error_code"] == 41301
    assert pulled == 11  # stopped at the first chunk past 1000 bytes, not after 1 MB
    assert ends(log, topic) == before
    # an announced Content-Length over the limit: refused before reading
    big = orjson.dumps([{"pad": "x" * 100} for _ in range(20)])
    refused(client(log, limits=limits).post(url(topic), content=big, headers=JSON),
            413, 41301, "1000 bytes")
    assert ends(log, topic) == before
    assert read_all(log, topic) == []


def test_too_many_events_in_one_request(log: Log, topic: str) -> None:
    c = client(log, limits=IngestLimits(max_events=3))
    refused(c.post(url(topic), json=[{"n": i} for i in range(4)], headers=GOOD),
            413, 41302, "at most 3")
    ces = [{"specversion": "1.0", "id": f"e{i}", "source": "/s", "type": "t"} for i in range(4)]
    refused(c.post(url(topic), content=orjson.dumps(ces), headers=BATCH), 413, 41302)
    assert read_all(log, topic) == []
    accepted(c.post(url(topic), json=[{"n": i} for i in range(3)], headers=GOOD), topic, 3)
    assert len(read_all(log, topic)) == 3


def nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` levels deep (itself the first)."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


def test_json_nested_too_deep_is_refused(log: Log, topic: str) -> None:
    c = client(log, limits=IngestLimits(max_depth=8))
    body = refused(c.post(url(topic), json=[nested(3), nested(9)], headers=GOOD),
                   422, 42201, "event 1", "deeper than 8")
    assert [e["index"] for e in body["errors"]] == [1]
    assert read_all(log, topic) == []
    binary = {**JSON, "ce-specversion": "1.0", "ce-id": "d", "ce-source": "/s", "ce-type": "t"}
    refused(c.post(url(topic), json=nested(9), headers=binary), 422, 42201, "deeper than 8")
    # far deeper than any parser should recurse: still one JSON line, no 500
    refused(c.post(url(topic), content=b"[" * 5000 + b"]" * 5000, headers=JSON), 422, 42201)
    assert read_all(log, topic) == []
    accepted(c.post(url(topic), json=nested(8), headers=GOOD), topic, 1)
    assert len(read_all(log, topic)) == 1


def test_schema_violations_refuse_the_whole_batch(log: Log, topic: str) -> None:
    registry = SchemaRegistry(log)
    schema = {"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]}
    registry.register(f"{topic}-value", orjson.dumps(schema).decode(), "JSON")
    c = client(log, registry=registry)
    batch = [{"amount": 1}, {"amount": "ten"}, {"other": 2}]
    body = refused(c.post(url(topic), json=batch, headers=GOOD), 422, 42202,
                   f"{topic}-value", "event 1")
    assert [e["index"] for e in body["errors"]] == [1, 2] and all(e["errors"] for e in body["errors"])
    assert read_all(log, topic) == []
    ce = {"specversion": "1.0", "id": "s-1", "source": "/s", "type": "t", "data": {"amount": "x"}}
    refused(c.post(url(topic), content=orjson.dumps(ce), headers=STRUCTURED), 422, 42202)
    assert read_all(log, topic) == []
    # valid: written framed, as `eventml produce --validate` writes it
    accepted(c.post(url(topic), json=[{"amount": 1}, {"amount": 2.5}], headers=GOOD),
             topic, 2)
    records = read_all(log, topic)
    assert len(records) == 2
    schema_id = registry.version(f"{topic}-value").id
    for rec in records:
        assert rec.value is not None and rec.value[:5] == b"\x00" + schema_id.to_bytes(4, "big")
        assert ("content-type", b"application/vnd.schemaregistry.v1+json") in rec.headers
    assert sorted(orjson.loads(rec.value[5:])["amount"] for rec in records if rec.value) == [1, 2.5]


def test_a_repeated_event_id_is_appended_once(log: Log, topic: str) -> None:
    c = client(log)
    ce = {"specversion": "1.0", "id": "once", "source": "/s", "type": "t", "partitionkey": "k",
          "data": {}}
    (first,) = accepted(c.post(url(topic), content=orjson.dumps(ce), headers=STRUCTURED),
                        topic, 1)
    (again,) = accepted(c.post(url(topic), content=orjson.dumps(ce), headers=STRUCTURED),
                        topic, 1)
    assert not first["duplicate"] and again == {**first, "duplicate": True}
    # repeated within one batch, and alongside a new one
    other = {**ce, "id": "twice"}
    entries = accepted(c.post(url(topic), content=orjson.dumps([other, ce, other]),
                              headers=BATCH), topic, 3)
    assert [e["duplicate"] for e in entries] == [False, True, True]
    assert entries[1] == again and entries[2] == {**entries[0], "duplicate": True}
    # Idempotency-Key: the id of a plain JSON event
    keyed = {**JSON, "Idempotency-Key": "req-77"}
    a = accepted(c.post(url(topic), json={"n": 1}, headers=keyed), topic, 1)
    b = accepted(c.post(url(topic), json={"n": 1}, headers=keyed), topic, 1)
    assert a[0]["id"] == "req-77" and b == [{**a[0], "duplicate": True}]
    records = read_all(log, topic)
    assert sorted(from_record(rec).id for rec in records) == ["once", "req-77", "twice"]
    assert {(e["partition"], e["offset"]) for e in (first, entries[0], a[0])} == {
        (rec.partition, rec.offset) for rec in records}


def test_dedup_window_is_bounded(log: Log, topic: str) -> None:
    c = client(log, limits=IngestLimits(dedup_window=2))
    duplicates = []
    for i in (1, 2, 3, 1, 3):  # 1 has left the window of 2 when it comes again; 3 has not
        r = c.post(url(topic), json={"n": i}, headers={**JSON, "Idempotency-Key": f"i{i}"})
        duplicates.append(accepted(r, topic, 1)[0]["duplicate"])
    assert duplicates == [False, False, False, False, True]
    assert sorted(from_record(rec).id for rec in read_all(log, topic)) == ["i1", "i1", "i2", "i3"]


def test_server_owned_headers_are_overwritten(log: Log, topic: str) -> None:
    c = client(log)
    forged = {INGEST_TIME_HEADER: "1", PRODUCER_HEADER: "mallory"}
    ce = {"specversion": "1.0", "id": "f-1", "source": "/s", "type": "t", "data": {},
          **{name: value for name, value in forged.items()}}
    accepted(c.post(url(topic), content=orjson.dumps(ce), headers={**STRUCTURED, **forged}),
             topic, 1)
    binary = {**JSON, **forged, "ce-specversion": "1.0", "ce-id": "f-2", "ce-source": "/s",
              "ce-type": "t", f"ce-{PRODUCER_HEADER}": "mallory"}
    accepted(c.post(url(topic), content=b"{}", headers=binary), topic, 1)
    accepted(c.post(url(topic), json={"n": 1}, headers={**JSON, **forged}), topic, 1)
    records = read_all(log, topic)
    assert len(records) == 3
    for rec in records:
        assert server_headers(rec) == [(INGEST_TIME_HEADER, str(NOW_MS).encode()),
                                       (PRODUCER_HEADER, b"k-test")]
        assert b"mallory" not in dict(server_headers(rec)).values()


def test_unknown_and_invalid_topics(log: Log, topic: str) -> None:
    c = client(log)
    missing = f"{topic}-missing"
    refused(c.post(f"/v1/topics/{missing}/events", json={"n": 1}, headers=GOOD), 404, 40401,
            f"'{missing}'", "never creates")
    refused(c.post(url("bad%20name"), json={"n": 1}, headers=GOOD), 422, 42203, "invalid topic")
    refused(c.post(f"/v1/topics/{topic}%3F/events", json={"n": 1}, headers=GOOD), 422, 42203)
    assert missing not in log.list_topics() and read_all(log, topic) == []
    # and the body is not read for them: a body far over the limit still gets the 404
    refused(c.post(f"/v1/topics/{missing}/events", content=b"x" * 2_000_000, headers=JSON), 404, 40401)
    assert missing not in log.list_topics()


def test_without_an_authorizer_every_request_is_refused(log: Log, topic: str) -> None:
    app = FastAPI()
    app.include_router(ingest_router(log, authorize=None))
    r = TestClient(app).post(url(topic), json={"n": 1}, headers=GOOD)
    body = refused(r, 401, 40101)
    assert body["message"] == NO_KEYS_MESSAGE and r.headers["www-authenticate"].startswith("Bearer")
    # with one, a bad key is refused by it before anything else
    auth = FakeAuthorize()
    refused(client(log, auth).post(url(topic), json={"n": 1},
                                   headers={"Authorization": "Bearer bad"}), 401, 401)
    refused(client(log, auth).post("/v1/topics/no-such-topic/events", json={"n": 1}), 401, 401)
    assert auth.calls == [("produce", topic), ("produce", "no-such-topic")]
    assert read_all(log, topic) == []


def test_malformed_bodies_and_content_types(log: Log, topic: str) -> None:
    c = client(log)
    refused(c.post(url(topic), content=b"{not json", headers=JSON), 422, 42201, "not valid JSON")
    refused(c.post(url(topic), content=b"a,b", headers={**GOOD, "Content-Type": "text/csv"}),
            415, 41501, "text/csv")
    refused(c.post(url(topic), json=[], headers=GOOD), 422, 42201, "empty")
    refused(c.post(url(topic), json=[{"a": 1}, 3], headers=GOOD), 422, 42201, "event 1")
    refused(c.post(url(topic, "?key_field=card"), json={"a": 1}, headers=GOOD), 422, 42201,
            "key_field")
    refused(c.post(url(topic), json=[{"specversion": "1.0"}], headers=STRUCTURED), 422, 42201,
            "one event")
    assert read_all(log, topic) == []


def test_the_openapi_spec_describes_bodies_and_answers(log: Log, topic: str) -> None:
    app = FastAPI()
    app.include_router(ingest_router(log, authorize=FakeAuthorize()))
    op = app.openapi()["paths"]["/v1/topics/{topic}/events"]["post"]
    assert set(op["requestBody"]["content"]) == {
        "application/json", "application/cloudevents+json", "application/cloudevents-batch+json"}
    assert {"202", "401", "404", "413", "415", "422"} <= set(op["responses"])
    assert "error_code" in op["responses"]["422"]["content"]["application/json"]["schema"]["properties"]


def test_requests_waiting_for_an_append_go_in_one_append_in_arrival_order() -> None:
    """Group commit: while one append runs, the requests that queue behind it are appended
    together by the next thread, each told where its own events landed; an id sent by two
    of them is appended once."""
    import threading

    from eventml.api.ingest import _RecentIds
    from eventml.log import Message, open_log

    inner = open_log("memory://")
    inner.create_topic(TopicSpec("t", partitions=1))
    calls: list[int] = []
    first_started, release = threading.Event(), threading.Event()

    class SlowLog:
        def append(self, topic: str, messages: Any) -> Any:
            calls.append(len(messages))
            if len(calls) == 1:
                first_started.set()
                release.wait(5)
            return inner.append(topic, messages)

    recent = _RecentIds(100)
    results: dict[str, Any] = {}

    def send(name: str, ids: list[str]) -> None:
        msgs = [Message(i.encode()) for i in ids]
        results[name] = recent.append_new(SlowLog(), "t", ids, msgs)  # type: ignore[arg-type]

    first = threading.Thread(target=send, args=("first", ["a"]))
    first.start()
    assert first_started.wait(5)
    later = [threading.Thread(target=send, args=(f"r{n}", [f"x{n}", "dup"])) for n in range(4)]
    for t in later:
        t.start()
    deadline = time.monotonic() + 5
    while len(recent._waiting) < 4 and time.monotonic() < deadline:
        time.sleep(0.001)
    release.set()
    for t in [first, *later]:
        t.join(5)
    assert calls == [1, 5]  # the four queued requests: one append, "dup" once
    places = [p for name in sorted(results) for p, _ in results[name]]
    assert len(set(places)) == 6 and results["first"] == [((0, 0), False)]
    dups = [results[f"r{n}"][1] for n in range(4)]
    assert sum(not dup for _, dup in dups) == 1 and len({p for p, _ in dups}) == 1
    earliest = ConsumerConfig(auto_offset_reset="earliest")
    with inner.consumer("g", ["t"], config=earliest) as consumer:
        values = [r.value or b"" for r in consumer.poll(max_records=100, timeout_s=1)]
    assert inner.end_offsets("t") == {0: 6} and sorted(values) == sorted([b"a", b"dup", b"x0", b"x1", b"x2", b"x3"])
