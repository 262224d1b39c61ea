"""Windowed aggregation through the engine, on every backend.

The pure window logic is tested against Kafka Streams' bounds in tests/windows;
here the same input runs through a real worker (state in the backend's store,
late records to a side topic) and must give exactly what the pure logic gives,
plus hand-checked figures for each case.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from eventml.engine import Worker
from eventml.windows import (
    Count,
    Emitted,
    Hopping,
    Retracted,
    Session,
    Sliding,
    Sum,
    Tumbling,
    WindowedAggregation,
    WindowSpec,
)

from .conftest import Backend

# (key, amount, event time ms): out of order, with one record late beyond grace
ROWS: list[tuple[str, int, int]] = [
    ("a", 1, 1_000), ("a", 2, 4_000), ("b", 5, 2_000), ("a", 3, 11_000),
    ("a", 4, 9_500),   # out of order, within grace of [0, 10 s)
    ("b", 6, 25_000),  # advances stream time past 10 s + grace: [0, 10 s) closes
    ("a", 7, 3_000),   # late: its window closed
    ("a", 8, 26_000), ("b", 9, 40_000),
]

CASES: dict[str, tuple[WindowSpec, str]] = {
    "tumbling-final": (Tumbling(size_ms=10_000), "final"),
    "tumbling-update": (Tumbling(size_ms=10_000), "update"),
    "hopping-final": (Hopping(size_ms=10_000, advance_ms=5_000), "final"),
    "sliding-update": (Sliding(time_difference_ms=3_000), "update"),
    "session-update": (Session(gap_ms=4_000), "update"),
    "session-final": (Session(gap_ms=4_000), "final"),
}


def _reference(spec: WindowSpec, emit: str, grace_ms: int) -> tuple[list[Any], int]:
    logic = WindowedAggregation(spec, Sum(), grace_ms, emit).build()  # type: ignore[arg-type]
    out: list[Any] = []
    for key, amount, t in ROWS:
        for o in logic.process(key, t, amount):
            if isinstance(o, Emitted):
                out.append((o.key, o.window.start_ms, o.window.end_ms, o.value))
            elif isinstance(o, Retracted):
                out.append((o.key, o.window.start_ms, o.window.end_ms, None))
    return out, logic.late_count


@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_windows_match_the_pure_logic(backend: Backend, case: str) -> None:
    spec, emit = CASES[case]
    app = backend.app(max_batch=3, min_batch=1)  # several batches: state must survive commits
    src = app.topic(app.name + "-amounts")
    late = app.topic(app.name + "-amounts-late")
    out = app.topic(app.name + "-sums")
    (app.stream(src)
        .window(spec, grace_ms=2_000, emit=emit, late_to=late)  # type: ignore[arg-type]
        .aggregate(Sum(), value="amount")
        .to(out))
    Worker(app).close()
    backend.append_json(src.name, [(k, {"amount": a}, t) for k, a, t in ROWS])
    worker = backend.run(app)
    got = []
    for r in backend.read_all(out.name):
        assert r.key is not None
        v = None if r.value is None else orjson.loads(r.value)
        if v is None:
            got.append(("?", None))
        else:
            got.append((r.key.decode(), v["start_ms"], v["end_ms"], v["value"]))
    expected, late_count = _reference(spec, emit, 2_000)
    assert [g for g in got if g[1] is not None] == [e for e in expected if e[3] is not None]
    assert sum(1 for g in got if g[1] is None) == sum(1 for e in expected if e[3] is None)
    late_values = [orjson.loads(r.value)["amount"] for r in backend.read_all(late.name) if r.value]
    assert late_count >= 1 and len(late_values) == late_count == worker.stats.late


def test_tumbling_final_figures_by_hand(backend: Backend) -> None:
    app = backend.app(max_batch=2, min_batch=1)
    src = app.topic(app.name + "-amounts")
    late = app.topic(app.name + "-late")
    out = app.topic(app.name + "-counts")
    (app.stream(src).window(Tumbling(size_ms=10_000), grace_ms=2_000, emit="final", late_to=late)
        .aggregate(Count()).to(out))
    Worker(app).close()
    backend.append_json(src.name, [(k, {"amount": a}, t) for k, a, t in ROWS])
    backend.run(app)
    got = [(r.key, orjson.loads(r.value)) for r in backend.read_all(out.name) if r.value]
    # [0,10s) closes at stream time 12 s (a: 1 s, 4 s, 9.5 s; b: 2 s), [10s,20s) at 22 s
    assert got == [
        (b"a", {"start_ms": 0, "end_ms": 10_000, "value": 3}),
        (b"b", {"start_ms": 0, "end_ms": 10_000, "value": 1}),
        (b"a", {"start_ms": 10_000, "end_ms": 20_000, "value": 1}),
        (b"b", {"start_ms": 20_000, "end_ms": 30_000, "value": 1}),
        (b"a", {"start_ms": 20_000, "end_ms": 30_000, "value": 1}),
    ]
    assert [orjson.loads(r.value) for r in backend.read_all(late.name)] == [{"amount": 7}]
