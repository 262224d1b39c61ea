"""Poison pills, retries and fatal errors in the engine, on every backend."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from eventml.deadletter import RetryPolicy, TransientError, parse_dead_letter, replay
from eventml.engine import Worker, WorkerFailed
from eventml.log import ConsumerConfig, Message, TopicPartition

from .conftest import Backend

FAST = RetryPolicy(max_attempts=3, initial_backoff_ms=1, max_backoff_ms=2)


def _inputs(n: int) -> list[Message]:
    """``n`` events keyed k0..k9; every 100th is malformed JSON (with non-UTF-8 bytes),
    every 50th (the others) carries ``"bug": true``."""
    out = []
    for i in range(n):
        headers = (("ce_id", f"e{i}".encode()), ("trace", f"t{i}".encode()))
        if i % 100 == 7:
            value = b'{"i": ' + str(i).encode() + b", \xff oops"
        else:
            value = orjson.dumps({"i": i, "bug": i % 50 == 3})
        out.append(Message(value, f"k{i % 10}".encode(), headers, 1_000 + i))
    return out


def test_poison_pills_go_to_the_dead_letter_topic_byte_exact_and_replay_has_one_effect(
    backend: Backend,
) -> None:
    app = backend.app(retry=FAST)
    src = app.topic(app.name + "-tx", partitions=3)
    out = app.topic(app.name + "-ok", partitions=3)
    broken = {"on": True}

    def handle(value: dict[str, Any]) -> dict[str, Any]:
        if value["bug"] and broken["on"]:
            raise ValueError(f"cannot handle event {value['i']} (password=hunter2)")
        return {"i": value["i"]}

    app.stream(src).map(handle).to(out)
    Worker(app).close()
    sent = _inputs(1_000)
    metas = backend.log.append(src.name, sent)
    worker = backend.run(app)
    assert worker.stats.records == 1_000
    bad = {i for i in range(1_000) if i % 100 == 7}
    buggy = {i for i in range(1_000) if i % 50 == 3}
    assert not bad & buggy
    good = [v["i"] for v in backend.values(out.name)]
    assert sorted(good) == sorted(set(range(1_000)) - bad - buggy)  # good events kept flowing

    dlq = backend.read_all(src.name + ".dlq")
    assert len(dlq) == len(bad) + len(buggy) == worker.stats.dead_letters
    where = {(m.partition, m.offset): i for i, m in enumerate(metas)}
    for record in dlq:
        dead = parse_dead_letter(record)
        i = where[(int(dead.source["partition"]), int(dead.source["offset"]))]
        assert dead.value == sent[i].value and dead.key == sent[i].key  # byte-exact
        assert dead.headers == sent[i].headers
        assert dead.source["topic"] == src.name and dead.source["group"] == app.name
        if i in bad:
            assert dead.source["operator"] == f"decode:{src.name}" and dead.attempts == 1
        else:
            assert i in buggy and dead.source["operator"].startswith("map-")
            assert dead.error_class == "builtins.ValueError" and "hunter2" not in dead.error_message

    broken["on"] = False  # the bug is fixed: replay the dead letters, twice
    first = replay(backend.log, src.name + ".dlq", timeout_s=10)
    second = replay(backend.log, src.name + ".dlq", timeout_s=10)
    assert first.total == len(dlq) and second.total == 0
    backend.run(app)
    after = [v["i"] for v in backend.values(out.name)]
    assert sorted(after) == sorted(set(range(1_000)) - bad)  # each fixed event exactly once
    assert len(backend.read_all(src.name + ".dlq")) == len(dlq) + len(bad)  # still malformed


def test_transient_errors_are_retried_then_succeed(backend: Backend) -> None:
    app = backend.app(retry=FAST)
    src = app.topic(app.name + "-in")
    out = app.topic(app.name + "-out")
    failures = {"left": 2}

    def flaky(value: dict[str, Any]) -> dict[str, Any]:
        if value["i"] == 5 and failures["left"]:
            failures["left"] -= 1
            raise TransientError("downstream busy")
        return value

    app.stream(src).map(flaky).to(out)
    Worker(app).close()
    backend.append_json(src.name, [("k", {"i": i}, i) for i in range(10)])
    worker = backend.run(app)
    assert [v["i"] for v in backend.values(out.name)] == list(range(10))
    assert worker.stats.retries == 2 and worker.stats.dead_letters == 0


def test_a_fatal_error_stops_the_worker_without_committing_the_batch(backend: Backend) -> None:
    app = backend.app()
    src = app.topic(app.name + "-in")
    out = app.topic(app.name + "-out")

    def explode(value: dict[str, Any]) -> dict[str, Any]:
        if value["i"] == 3:
            raise MemoryError("out of memory")
        return value

    app.stream(src).map(explode).to(out)
    Worker(app).close()
    backend.append_json(src.name, [("k", {"i": i}, i) for i in range(10)])
    with pytest.raises(WorkerFailed, match="fatally"):
        backend.run(app)
    assert backend.values(out.name) == []
    c = backend.log.consumer(app.name, [src.name], config=ConsumerConfig(auto_offset_reset="earliest"))
    try:
        assert c.committed([TopicPartition(src.name, 0)])[TopicPartition(src.name, 0)] in (None, 0)
    finally:
        c.close()


def test_records_without_the_declared_event_time_are_dead_lettered(backend: Backend) -> None:
    app = backend.app()
    src = app.topic(app.name + "-in", time="ts")
    out = app.topic(app.name + "-out")
    app.stream(src).to(out)
    Worker(app).close()
    backend.log.append(src.name, [
        Message(b'{"ts": 5}', b"k"), Message(b'{"no": 1}', b"k"), Message(b'[1]', b"k"),
        Message(b'{"ts": 7}', b"k", (("ce_id", b"\xff"),)),  # an id that is not UTF-8
    ])
    worker = backend.run(app)
    assert [r.timestamp_ms for r in backend.read_all(out.name)] == [5]
    assert worker.stats.dead_letters == 3
    assert len(backend.read_all(src.name + ".dlq")) == 3


def test_values_the_output_topic_cannot_hold_are_dead_lettered(backend: Backend) -> None:
    app = backend.app()
    src = app.topic(app.name + "-in")
    out = app.topic(app.name + "-out", key="user")  # keyed by a field of the value
    app.stream(src).to(out)
    Worker(app).close()
    backend.append_json(src.name, [("a", {"user": "u1"}, 1), ("b", {"nobody": 1}, 2),
                                   ("c", {"user": "u3"}, 3)])
    worker = backend.run(app)
    assert [r.key for r in backend.read_all(out.name)] == [b"u1", b"u3"]
    assert worker.stats.dead_letters == 1
    (dead,) = [parse_dead_letter(r) for r in backend.read_all(src.name + ".dlq")]
    assert dead.key == b"b" and dead.error_class == "builtins.KeyError"
