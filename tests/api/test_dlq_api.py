"""/v1/topics/{topic}/dlq: dead letters listed page by page with their original bytes and
provenance, and replayed by id or all, exactly once (counted in the topic they go back to)."""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from eventml.api import create_app
from eventml.api.dlq import DeadLettersRouter
from eventml.deadletter import REPLAY_GROUP, REPLAY_OF, dead_letter_message, replay
from eventml.deadletter.replay import read_records
from eventml.deadletter.selective import ledger_topic, replay_dead_letters
from eventml.log import ConsumerConfig, Log, Message, Record, TopicSpec
from eventml.testing import MemoryLog

from .conftest import Served
from .sample import SOURCE
from .test_topics_api import assert_matches_spec, one_line_error

AT_MS = 1_767_225_600_000
JSON = {"content-type": "application/json"}


@dataclass
class Dlq:
    """A topic, its dead-letter topic (2 partitions) and what was dead-lettered, by id."""

    log: Log
    topic: str
    originals: dict[str, Message]  # id -> the message as it was before it failed
    not_dead_letter: str  # the id of a record in the dead-letter topic without provenance

    @property
    def dlq(self) -> str:
        return f"{self.topic}.dlq"


def _dead_letter(original: Message, n: int, topic: str) -> Message:
    return dead_letter_message(
        original.value, key=original.key, headers=original.headers,
        error=ValueError(f"bad amount {n}, password=hunter2"), attempts=n,
        source={"topic": topic, "partition": n % 2, "offset": 100 + n, "group": "g",
                "operator": "score"},
        now_ms=AT_MS + n, kind="permanent")


def make_dlq(log: Log, topic: str) -> Dlq:
    """``topic``'s dead letters: 0:0-0:2 and 1:0-1:1, then at 1:2 a record that is none."""
    log.create_topic(TopicSpec(topic, 2))
    log.create_topic(TopicSpec(f"{topic}.dlq", 2))
    originals: dict[str, Message] = {}
    n = 0
    for partition, count in ((0, 3), (1, 2)):
        for offset in range(count):
            original = Message(
                b"\x00\xff" + f'{{"n": {n}}}'.encode() if n % 2 else f'{{"n": {n}}}'.encode(),
                key=None if n == 3 else f"card{n}".encode(),
                headers=(("traceparent", f"00-{n:032x}-{n:016x}-01".encode()), ("bin", b"\x00\x01")))
            log.append(f"{topic}.dlq", [_dead_letter(original, n, topic)._replace(partition=partition)])
            originals[f"{partition}:{offset}"] = original
            n += 1
    log.append(f"{topic}.dlq", [Message(b"stray", b"k", partition=1)])
    return Dlq(log, topic, originals, "1:2")


def _client(log: Log, **kw: Any) -> TestClient:
    app = FastAPI()
    app.include_router(DeadLettersRouter(log, writable=True, **kw).router)
    return TestClient(app)


def records_of(log: Log, topic: str) -> list[Record]:
    """Every record ``topic`` holds (transaction markers on Kafka are not records)."""
    return list(read_records(log, topic))


def _replay_marks(log: Log, topic: str) -> Counter[str]:
    """How many records of ``topic`` came from each dead letter (their eventml.replay.of)."""
    return Counter(dict(r.headers)[REPLAY_OF].decode() for r in records_of(log, topic)
                   if REPLAY_OF in dict(r.headers))


@pytest.fixture
def dlq(log: Log, kafka_topic_name: str) -> Dlq:
    return make_dlq(log, kafka_topic_name)


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


def test_dead_letters_are_listed_in_bounded_pages_with_bytes_and_provenance(dlq: Dlq) -> None:
    with _client(dlq.log) as c:
        pages, after = [], None
        while True:
            params: dict[str, Any] = {"limit": 2} | ({} if after is None else {"after": after})
            r = c.get(f"/v1/topics/{dlq.topic}/dlq", params=params)
            assert r.status_code == 200, r.text
            assert_matches_spec(c.app, "GET", "/v1/topics/{topic}/dlq", r)
            body = r.json()
            assert (body["topic"], body["dead_letter_topic"], body["held"]) == (dlq.topic, dlq.dlq, 6)
            assert len(body["dead_letters"]) <= 2
            pages.append(body["dead_letters"])
            after = body["next"]
            if after is None:
                break
    assert [[d["id"] for d in page] for page in pages] == [["0:0", "0:1"], ["0:2", "1:0"], ["1:1", "1:2"]]
    listed = {d["id"]: d for page in pages for d in page}
    for n, (id_, original) in enumerate(dlq.originals.items()):
        d = listed[id_]
        assert (d["partition"], d["offset"]) == tuple(int(x) for x in id_.split(":"))
        assert base64.b64decode(d["value"]) == original.value  # byte-exact, UTF-8 or not
        assert d["key"] == _b64(original.key)
        assert [(h["name"], base64.b64decode(h["value"])) for h in d["headers"]] == list(original.headers)
        assert d["source"] == {"topic": dlq.topic, "partition": str(n % 2), "offset": str(100 + n),
                               "group": "g", "operator": "score"}
        assert d["error"] == {"class": "builtins.ValueError", "kind": "permanent",
                              "message": f"bad amount {n}, password=***"}  # redacted when written
        assert (d["attempts"], d["at_ms"], d["replayed"], d["problem"]) == (n, AT_MS + n, False, None)
    stray = listed[dlq.not_dead_letter]
    assert base64.b64decode(stray["value"]) == b"stray" and stray["error"] is None
    assert "is not a dead letter" in stray["problem"]


def test_a_full_last_page_has_no_next_and_pages_are_capped() -> None:
    log = MemoryLog()
    dlq = make_dlq(log, "t")
    with _client(log) as c:
        r = c.get("/v1/topics/t/dlq", params={"limit": 6})
        assert [d["id"] for d in r.json()["dead_letters"]] == [*dlq.originals, "1:2"]
        assert r.json()["next"] is None
        assert r.json() == c.get("/v1/topics/t/dlq", params={"limit": 500}).json()
        r = c.get("/v1/topics/t/dlq", params={"after": "1:2"})
        assert (r.json()["dead_letters"], r.json()["next"]) == ([], None)
        r = c.get("/v1/topics/t/dlq", params={"after": "0:1", "limit": 1})
        assert [d["id"] for d in r.json()["dead_letters"]] == ["0:2"] and r.json()["next"] == "0:2"
        one_line_error(c.get("/v1/topics/t/dlq", params={"limit": 501}), 422, 422)
        one_line_error(c.get("/v1/topics/t/dlq", params={"limit": 0}), 422, 422)
        for cursor in ("x", "0", "0:", ":1", "-1:2", "0:1:2", "1" * 10 + ":0"):
            assert "PARTITION:OFFSET" in one_line_error(
                c.get("/v1/topics/t/dlq", params={"after": cursor}), 422, 422), cursor


def test_unknown_topics_are_404s_and_a_topic_without_dead_letters_has_none() -> None:
    log = MemoryLog()
    log.create_topic(TopicSpec("clean", 1))
    with _client(log) as c:
        assert one_line_error(c.get("/v1/topics/nope/dlq"), 404, 40401) == (
            "no topic 'nope' (GET /v1/topics lists them)")
        one_line_error(c.post("/v1/topics/nope/dlq/replay", json={"all": True}), 404, 40401)
        one_line_error(c.get("/v1/topics/a%20b/dlq"), 422, 42203)
        assert c.get("/v1/topics/clean/dlq").json() == {
            "topic": "clean", "dead_letter_topic": "clean.dlq", "held": 0, "dead_letters": [],
            "next": None}
        r = c.post("/v1/topics/clean/dlq/replay", json={"all": True})
        assert (r.status_code, r.json()["total"]) == (200, 0)
        assert "has no dead letters" in one_line_error(
            c.post("/v1/topics/clean/dlq/replay", json={"ids": ["0:0"]}), 404, 40471)
    assert log.list_topics() == ["clean"]  # nothing created


def test_replay_by_id_then_all_appends_each_dead_letter_once(dlq: Dlq) -> None:
    log, topic = dlq.log, dlq.topic
    url = f"/v1/topics/{topic}/dlq/replay"
    with _client(log) as c:
        r = c.post(url, json={"ids": ["0:1", "1:0", "0:1"]})
        assert r.status_code == 200, r.text
        assert_matches_spec(c.app, "POST", "/v1/topics/{topic}/dlq/replay", r)
        assert r.json() == {"topic": topic, "dead_letter_topic": dlq.dlq, "replayed": {topic: 2},
                            "total": 2, "ids": ["0:1", "1:0"], "already_replayed": [], "skipped": 0,
                            "remaining": 4}
        back = records_of(log, topic)
        assert len(back) == 2
        by_mark = {dict(rec.headers)[REPLAY_OF].decode(): rec for rec in back}
        for id_ in ("0:1", "1:0"):
            original, rec = dlq.originals[id_], by_mark[f"{dlq.dlq}:{id_}"]
            assert (rec.key, rec.value) == (original.key, original.value)  # byte-exact
            assert rec.headers == (*original.headers, (REPLAY_OF, f"{dlq.dlq}:{id_}".encode()))

        r = c.post(url, json={"ids": ["1:0", "0:1"]})  # again: nothing appended
        assert r.json() == {
            "topic": topic, "dead_letter_topic": dlq.dlq, "replayed": {}, "total": 0, "ids": [],
            "already_replayed": ["1:0", "0:1"], "skipped": 0, "remaining": 4}
        assert len(records_of(log, topic)) == 2
        flags = {d["id"]: d["replayed"] for d in c.get(f"/v1/topics/{topic}/dlq").json()["dead_letters"]}
        assert flags == {"0:0": False, "0:1": True, "0:2": False, "1:0": True, "1:1": False, "1:2": False}

        r = c.post(url, json={"all": True})  # the rest, skipping what was replayed by id
        assert r.json() == {"topic": topic, "dead_letter_topic": dlq.dlq, "replayed": {topic: 3},
                            "total": 3, "ids": None, "already_replayed": [], "skipped": 1,
                            "remaining": 0}
        assert c.post(url, json={"all": True}).json()["total"] == 0
        assert c.post(url, json={"ids": ["0:1", "0:2"]}).json()["already_replayed"] == ["0:1", "0:2"]
        flags = {d["id"]: d["replayed"] for d in c.get(f"/v1/topics/{topic}/dlq").json()["dead_letters"]}
        assert all(flags.values())
    marks = _replay_marks(log, topic)
    assert marks == Counter({f"{dlq.dlq}:{i}": 1 for i in dlq.originals})  # each once, no other
    assert len(records_of(log, topic)) == 5
    # what `eventml dlq replay` runs agrees: the group's offsets cover everything
    assert replay(log, dlq.dlq).total == 0
    # the records of replays by id were removed once the offsets covered them
    latest = {rec.key: rec.value for rec in records_of(log, ledger_topic(dlq.dlq))}
    assert latest == {b"0:1": None, b"1:0": None}


def test_the_cli_replay_after_a_replay_by_id_skips_what_was_replayed(dlq: Dlq) -> None:
    """``eventml dlq replay`` (deadletter.replay) reads the ledger of replays by id."""
    log, topic = dlq.log, dlq.topic
    with _client(log) as c:
        r = c.post(f"/v1/topics/{topic}/dlq/replay", json={"ids": ["0:1", "1:0"]})
        assert r.json()["total"] == 2
    result = replay(log, dlq.dlq)
    assert (result.total, result.already_replayed, result.skipped) == (3, 2, 1)
    assert _replay_marks(log, topic) == Counter({f"{dlq.dlq}:{i}": 1 for i in dlq.originals})
    assert len(records_of(log, topic)) == 5
    latest = {rec.key: rec.value for rec in records_of(log, ledger_topic(dlq.dlq))}
    assert latest == {b"0:1": None, b"1:0": None}  # tombstoned with the offsets that cover them
    again = replay(log, dlq.dlq)
    assert (again.total, again.already_replayed) == (0, 0)


def test_replay_all_is_bounded_per_request_and_resumes() -> None:
    log = MemoryLog()
    dlq = make_dlq(log, "t")
    first = replay_dead_letters(log, "t", ids=None, max_records=2)
    assert (first["total"], first["remaining"]) == (2, 4)  # 3 dead letters + 1 stray left
    runs = [first]
    while runs[-1]["remaining"]:
        runs.append(replay_dead_letters(log, "t", ids=None, max_records=2))
        assert runs[-1]["remaining"] < runs[-2]["remaining"] and len(runs) <= 3
    assert [r["total"] for r in runs] == [2, 2, 1]  # at most 2 a request
    assert sum(r["skipped"] for r in runs) == 1  # the stray record
    assert _replay_marks(log, "t") == Counter({f"t.dlq:{i}": 1 for i in dlq.originals})


@pytest.mark.parametrize(("body", "status", "code", "says"), [
    ({"ids": ["0:9"]}, 404, 40471, "no dead letter in t.dlq at 0:9"),
    ({"ids": ["0:0", "7:0"]}, 404, 40471, "at 7:0"),  # all or nothing
    ({"ids": ["0:0", "1:2"]}, 422, 42271, "not dead letters"),
    ({"ids": []}, 422, 422, "ids"),
    ({"ids": "0:0"}, 422, 422, "ids"),
    ({"ids": [0]}, 422, 422, "ids"),
    ({"ids": ["zero"]}, 422, 422, "PARTITION:OFFSET"),
    ({"ids": ["0:0"] * 501}, 422, 422, "at most 500"),
    ({"all": False}, 422, 422, '{"all": true}'),
    ({"all": "yes"}, 422, 422, '{"all": true}'),
    ({"all": True, "ids": ["0:0"]}, 422, 422, '{"all": true}'),
    ({}, 422, 422, '{"all": true}'),
    ([], 422, 422, '{"all": true}'),
    (b"{nope", 422, 422, "not valid JSON"),
    (b" " * 70_000, 413, 41301, "exceeds"),
])
def test_a_refused_replay_appends_nothing(body: Any, status: int, code: int, says: str) -> None:
    log = MemoryLog()
    make_dlq(log, "t")
    with _client(log) as c:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        assert says in one_line_error(c.post("/v1/topics/t/dlq/replay", content=content,
                                             headers=JSON), status, code)
    assert log.end_offsets("t") == {0: 0, 1: 0}
    assert ledger_topic("t.dlq") not in log.list_topics()


def test_a_dead_letter_whose_source_topic_is_gone_is_not_replayed() -> None:
    log = MemoryLog()
    make_dlq(log, "t")
    log.append("t.dlq", [dead_letter_message(b"x", error="bad", now_ms=1,
                                             source={"topic": "deleted"})._replace(partition=0)])
    with _client(log) as c:
        message = one_line_error(c.post("/v1/topics/t/dlq/replay", json={"ids": ["0:0", "0:3"]}),
                                 404, 40401)
        assert "topic 'deleted', which does not exist" in message
    assert log.end_offsets("t") == {0: 0, 1: 0}


def test_a_replay_while_another_holds_the_topic_is_a_409() -> None:
    log = MemoryLog()
    make_dlq(log, "t")
    holder = log.consumer(REPLAY_GROUP, ["t.dlq"], config=ConsumerConfig(auto_offset_reset="earliest"))
    while len(holder.assignment()) < 2:  # an `eventml dlq replay` running
        holder.poll(max_records=1, timeout_s=0.05)
    router = DeadLettersRouter(log, writable=True, timeout_s=0.3)
    app = FastAPI()
    app.include_router(router.router)
    with TestClient(app) as c:
        r = c.post("/v1/topics/t/dlq/replay", json={"all": True})
        assert "another replay of t.dlq" in one_line_error(r, 409, 40971)
        holder.close()
        with router._lock("t"):  # one in this process at a time
            one_line_error(c.post("/v1/topics/t/dlq/replay", json={"all": True}), 409, 40971)
        assert log.end_offsets("t") == {0: 0, 1: 0}
        assert c.post("/v1/topics/t/dlq/replay", json={"all": True}).json()["total"] == 5


def test_an_open_server_lists_but_never_replays() -> None:
    log = MemoryLog()
    make_dlq(log, "t")
    with TestClient(create_app(log=log)) as c:
        assert len(c.get("/v1/topics/t/dlq").json()["dead_letters"]) == 6
        r = c.post("/v1/topics/t/dlq/replay", json={"all": True})
        assert "admin API key" in one_line_error(r, 401, 40101)
    assert log.end_offsets("t") == {0: 0, 1: 0}


def test_the_engines_dead_letters_are_listed_and_replayed(served: Served) -> None:
    """Poison records in the sample app's topic: the worker and the view dead-letter them."""
    log = served.log
    ends = log.end_offsets(SOURCE)
    poison = [Message(b"not json", b"c1", partition=0), Message(b'{"card": "c2"}', b"c2", partition=1)]
    log.append(SOURCE, poison)
    served.catch_up()
    with _client(log) as c:
        body = c.get(f"/v1/topics/{SOURCE}/dlq").json()
        by_source = {(d["source"]["partition"], d["source"]["operator"]): d for d in body["dead_letters"]}
        decode = by_source[("0", "decode:tx")]
        assert decode["source"]["offset"] == str(ends[0]) and decode["source"]["group"] == "apitest"
        assert base64.b64decode(decode["value"]) == b"not json" and decode["key"] == _b64(b"c1")
        assert decode["error"]["class"] == "eventml.engine.codecs.DecodeError"
        view = by_source[("1", "view:cards")]  # the view's function reads value["amount"]
        assert view["source"]["offset"] == str(ends[1]) and view["source"]["group"] == "eventml-view-cards"
        assert (view["error"]["class"], view["error"]["message"]) == ("builtins.KeyError", "'amount'")
        r = c.post(f"/v1/topics/{SOURCE}/dlq/replay", json={"ids": [decode["id"]]})
        assert r.json()["replayed"] == {SOURCE: 1}
    assert sum(log.end_offsets(SOURCE).values()) == sum(ends.values()) + 3
    replayed = [rec for rec in records_of(log, SOURCE) if REPLAY_OF in dict(rec.headers)]
    assert [(rec.key, rec.value, dict(rec.headers)[REPLAY_OF]) for rec in replayed] == [
        (b"c1", b"not json", f"tx.dlq:{decode['id']}".encode())]


def test_the_spec_documents_the_dead_letter_routes() -> None:
    spec = _client(MemoryLog()).app.openapi()  # type: ignore[attr-defined]
    listing = spec["paths"]["/v1/topics/{topic}/dlq"]["get"]["responses"]
    assert {"200", "401", "403", "404", "422", "429", "503"} <= set(listing)
    post = spec["paths"]["/v1/topics/{topic}/dlq/replay"]["post"]
    assert {"200", "401", "403", "404", "409", "413", "422", "429", "503"} <= set(post["responses"])
    assert post["requestBody"]["content"]["application/json"]["schema"]["oneOf"]

