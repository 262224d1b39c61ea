"""Stateless and stateful operators end to end, on every backend."""

from __future__ import annotations

from typing import Any

import orjson

from eventml.engine import KeyState
from eventml.log import ConsumerConfig, TopicPartition

from .conftest import Backend


def test_map_filter_to_keeps_every_event_once_and_in_key_order(backend: Backend) -> None:
    app = backend.app()
    src = app.topic(app.name + "-nums", partitions=3)
    out = app.topic(app.name + "-odd-squares", partitions=3)
    app.stream(src).filter(lambda v: v["n"] % 2 == 1).map(lambda v: {"n": v["n"] ** 2}).to(out)
    worker = backend.app  # keep mypy quiet about unused names
    del worker
    from eventml.engine import Worker

    Worker(app).close()  # creates the topics
    rows = [(f"k{i % 7}", {"n": i}, 1_000 + i) for i in range(300)]
    backend.append_json(src.name, rows)
    w = backend.run(app)
    assert w.stats.records == 300
    got = backend.read_all(out.name)
    assert sorted(orjson.loads(r.value)["n"] for r in got if r.value) == [
        i * i for i in range(300) if i % 2
    ]
    # per key, the order of the input survives
    by_key: dict[bytes, list[int]] = {}
    for r in got:
        assert r.key is not None and r.value is not None
        by_key.setdefault(r.key, []).append(orjson.loads(r.value)["n"])
    for seq in by_key.values():
        assert seq == sorted(seq)
    # the ids of the outputs are those of the inputs they came from
    ids = {dict(r.headers)["ce_id"] for r in got}
    assert ids == {f"in-{i}".encode() for i in range(300) if i % 2}


def test_process_keeps_state_per_key_across_restarts(backend: Backend) -> None:
    app = backend.app()
    src = app.topic(app.name + "-clicks", partitions=2)
    out = app.topic(app.name + "-totals", partitions=2)

    def running_total(value: dict[str, Any], state: KeyState) -> dict[str, Any]:
        total = state.get("total", 0) + value["n"]
        state["total"] = total
        return {"total": total}

    app.stream(src).process(running_total, state="totals").to(out)
    from eventml.engine import Worker

    Worker(app).close()
    backend.append_json(src.name, [(f"u{i % 3}", {"n": 1}, 1_000 + i) for i in range(30)])
    backend.run(app)
    backend.append_json(src.name, [(f"u{i % 3}", {"n": 10}, 2_000 + i) for i in range(3)])
    backend.run(app)  # a new worker: state comes back from the store
    finals: dict[bytes | None, int] = {}
    for r in backend.read_all(out.name):
        assert r.value is not None
        finals[r.key] = orjson.loads(r.value)["total"]
    assert finals == {b"u0": 20, b"u1": 20, b"u2": 20}


def test_flat_map_branch_and_sink(backend: Backend) -> None:
    app = backend.app()
    src = app.topic(app.name + "-sentences", value="str")
    words = app.topic(app.name + "-words", value="str")
    seen: list[str] = []
    s = app.stream(src).flat_map(str.split)
    short, long = s.branch(lambda w: len(w) <= 3, lambda w: len(w) > 3)
    short.to(words)
    long.sink(lambda items: seen.extend(it.value for it in items))
    from eventml.engine import Worker
    from eventml.log import Message

    Worker(app).close()
    backend.log.append(src.name, [Message(b"the quick brown fox"), Message(b"is ok")])
    backend.run(app)
    assert [r.value for r in backend.read_all(words.name)] == [b"the", b"fox", b"is", b"ok"]
    assert seen == ["quick", "brown"]


def test_key_by_repartitions_so_state_is_per_new_key(backend: Backend) -> None:
    app = backend.app()
    src = app.topic(app.name + "-orders", partitions=3)
    out = app.topic(app.name + "-per-country", partitions=3)

    def count(value: dict[str, Any], state: KeyState) -> dict[str, Any]:
        state["n"] = state.get("n", 0) + 1
        return {"country": value["country"], "n": state["n"]}

    app.stream(src).key_by("country").process(count, state="c").to(out)
    from eventml.engine import Worker

    Worker(app).close()
    countries = ["fr", "de", "es", "it"]
    backend.append_json(src.name, [(f"o{i}", {"country": countries[i % 4]}, 1_000 + i)
                                   for i in range(40)])
    backend.run(app)
    got = [orjson.loads(r.value) for r in backend.read_all(out.name) if r.value]
    assert len(got) == 40
    assert {c: max(v["n"] for v in got if v["country"] == c) for c in countries} == {
        c: 10 for c in countries}


def test_table_join_and_stream_join(backend: Backend) -> None:
    app = backend.app()
    users = app.topic(app.name + "-users", partitions=2, compact=True)
    clicks = app.topic(app.name + "-clicks", partitions=2)
    views = app.topic(app.name + "-views", partitions=2)
    enriched = app.topic(app.name + "-enriched", partitions=2)
    pairs = app.topic(app.name + "-pairs", partitions=2)
    app.stream(clicks).join_table(users, lambda c, u: {"page": c["page"], "tier": u and u["tier"]}).to(enriched)
    left = app.stream(clicks)
    right = app.stream(views)
    left.join(right, within_ms=100, fn=lambda c, v: {"c": c["page"], "v": v["page"]}).to(pairs)
    from eventml.engine import Worker

    Worker(app).close()
    backend.append_json(users.name, [("a", {"tier": "gold"}, 0), ("b", {"tier": "free"}, 0)])
    backend.run(app)  # the table first, so lookups find it
    backend.append_json(views.name, [("a", {"page": "v1"}, 1_000), ("b", {"page": "v2"}, 5_000)])
    backend.append_json(clicks.name, [("a", {"page": "p1"}, 1_050), ("b", {"page": "p2"}, 1_000),
                                      ("c", {"page": "p3"}, 1_000)])
    backend.run(app)
    assert sorted(backend.values(enriched.name), key=lambda v: v["page"]) == [
        {"page": "p1", "tier": "gold"}, {"page": "p2", "tier": "free"}, {"page": "p3", "tier": None}]
    assert backend.values(pairs.name) == [{"c": "p1", "v": "v1"}]  # b's are 4 s apart


def test_committed_offsets_follow_processing(backend: Backend) -> None:
    app = backend.app()
    src = app.topic(app.name + "-in", partitions=2)
    app.stream(src).map(lambda v: v).to(app.topic(app.name + "-out", partitions=2))
    from eventml.engine import Worker

    Worker(app).close()
    backend.append_json(src.name, [(f"k{i}", {"i": i}, i) for i in range(50)])
    backend.run(app)
    c = backend.log.consumer(app.name, [src.name], config=ConsumerConfig(auto_offset_reset="earliest"))
    try:
        committed = c.committed([TopicPartition(src.name, 0), TopicPartition(src.name, 1)])
    finally:
        c.close()
    assert sum(v or 0 for v in committed.values()) == 50
