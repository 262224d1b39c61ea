"""Micro-batches follow the lag: they grow while a backlog waits and shrink once caught up
(counted in records per poll, no clocks involved)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from numpy.typing import NDArray

from eventml.engine import App, Worker
from eventml.engine.batching import BatchSizer
from eventml.log import Log, Message, open_log
from eventml.ml import InferenceStats


def test_sizer_doubles_on_full_polls_and_halves_on_sparse_ones() -> None:
    s = BatchSizer(10, 80)
    assert s.size == 10
    assert [s.observe(full) for full in (10, 20, 40, 80, 80)] == [20, 40, 80, 80, 80]
    assert s.observe(30) == 80  # a quarter or more: keep the size
    assert [s.observe(n) for n in (19, 9, 4, 0, 0)] == [40, 20, 10, 10, 10]
    with pytest.raises(ValueError, match="min_size <= max_size"):
        BatchSizer(5, 4)


def _append(log: Log, topic: str, start: int, n: int) -> None:
    log.append(topic, [Message(orjson.dumps({"x": float(i)}), None, (("ce_id", f"e{i}".encode()),), 1_000 + i)
                       for i in range(start, start + n)])


@pytest.mark.parametrize("scheme", ["memory", "embedded"])
def test_batches_grow_under_backlog_and_shrink_when_caught_up(scheme: str, tmp_path: Path) -> None:
    url = f"memory://{uuid.uuid4().hex[:6]}" if scheme == "memory" else f"embedded://{tmp_path}/data"
    log = open_log(url)
    try:
        app = App(f"b{uuid.uuid4().hex[:6]}", broker=url, min_batch=10, max_batch=80)
        stats = InferenceStats()
        sizes_seen: list[int] = []

        def model(x: NDArray[np.float64]) -> NDArray[np.float64]:
            sizes_seen.append(len(x))
            return np.asarray(x[:, 0], dtype=np.float64)

        scored: list[Any] = []
        topic = app.topic("in")
        app.stream(topic).predict(model, features=["x"], stats=stats, version_of="v1").sink(scored.extend)
        worker = Worker(app, log=log)
        try:
            _append(log, "in", 0, 500)  # a backlog: every poll comes back full
            for _ in range(8):
                worker.step()
            assert worker.stats.batch_sizes == [10, 20, 40, 80, 80, 80, 80, 80]
            assert sizes_seen == worker.stats.batch_sizes  # one model call per batch, same size
            worker.step()  # the backlog's tail: 500 - 470
            assert worker.stats.batch_sizes[-1] == 30
            for i in range(5):  # caught up: three events arrive per poll
                _append(log, "in", 500 + 3 * i, 3)
                assert worker.step() == 3
            assert worker.stats.batch_sizes[-5:] == [3] * 5
            assert worker._sizer.size == 10  # back to the smallest batch for low latency
            assert worker.step() == 0 and worker._sizer.size == 10
        finally:
            worker.close()
        v = stats.versions["v1"]
        assert v.events == 515 == len(scored) and v.max_batch == 80
        assert v.sizes == {16: 1, 32: 2, 64: 1, 128: 5, 4: 5}  # the sizes the model saw, by bucket
        assert [(it.value["x"], it.value["score"]) for it in scored] == [(float(i), float(i)) for i in range(515)]
    finally:
        log.close()
