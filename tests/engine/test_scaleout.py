"""Partitions and their state move between workers of one app."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from eventml.engine import KeyState, Worker

from .conftest import Backend


def _counting_app(backend: Backend, **settings: Any) -> tuple[Any, str, str]:
    app = backend.app(**settings)
    src = app.topic(app.name + "-in", partitions=4)
    out = app.topic(app.name + "-out", partitions=4)

    def count(value: dict[str, Any], state: KeyState) -> dict[str, Any]:
        state["n"] = state.get("n", 0) + 1
        return {"key": value["key"], "n": state["n"]}

    app.stream(src).process(count, state="n").to(out)
    return app, src.name, out.name


def _join(workers: list[Worker], timeout_s: float = 60.0) -> None:
    """Poll until every worker holds partitions (the group has settled)."""
    deadline = time.monotonic() + timeout_s
    while not all(w.consumer.assignment() for w in workers):
        assert time.monotonic() < deadline, [w.consumer.assignment() for w in workers]
        for w in workers:
            w.step()


def _drain(workers: list[Worker], want: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(w.stats.records for w in workers) < want:
        assert time.monotonic() < deadline, [w.stats for w in workers]
        for w in workers:
            w.step()


def test_state_follows_its_partition_when_a_worker_leaves(backend: Backend) -> None:
    app, src, out = _counting_app(backend, session_timeout_ms=6000, max_poll_interval_ms=10_000)
    first, second = Worker(app, index=0), Worker(app, index=1)
    _join([first, second])
    keys = [f"k{i}" for i in range(20)]
    backend.append_json(src, [(k, {"key": k}, 1_000) for k in keys])
    _drain([first, second], 20)
    assert first.stats.records and second.stats.records  # both had partitions
    first.close()  # leaves the group: its partitions and their state move to the second
    backend.append_json(src, [(k, {"key": k}, 2_000) for k in keys])
    _drain([second], 20 + second.stats.records)
    second.close()
    last = {}
    for r in backend.read_all(out):
        assert r.value is not None
        v = orjson.loads(r.value)
        last[v["key"]] = v["n"]
    assert last == {k: 2 for k in keys}  # every key's count continued from its state


@pytest.mark.kafka
def test_static_members_get_their_partitions_back_without_a_rebalance(kafka_bootstrap: str) -> None:
    from eventml.log import open_log

    from .conftest import Backend as B

    url = f"kafka://{kafka_bootstrap}"
    backend = B("kafka", url, open_log(url), 2.0)
    try:
        app, src, _ = _counting_app(backend, static_membership=True, session_timeout_ms=30_000)
        first, second = Worker(app, index=0), Worker(app, index=1)
        _join([first, second])
        backend.append_json(src, [(f"k{i}", {"key": f"k{i}"}, 1_000) for i in range(20)])
        _drain([first, second], 20)
        before = first.consumer.assignment()
        mine = second.consumer.assignment()
        first.close()  # a static member's close does not leave the group
        seen = set()
        pause = time.monotonic() + 4  # a leave would rebalance within this
        while time.monotonic() < pause:
            second.step()
            seen.add(second.consumer.assignment())
        again = Worker(app, index=0)  # same group.instance.id: same partitions, no rebalance
        deadline = time.monotonic() + 20
        while again.consumer.assignment() != before:
            assert time.monotonic() < deadline, again.consumer.assignment()
            again.step()
            second.step()
            seen.add(second.consumer.assignment())
        assert seen == {mine}  # the other member never gained nor lost a partition
        again.close()
        second.close()
    finally:
        backend.log.close()
