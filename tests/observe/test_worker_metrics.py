"""The workers' Prometheus metrics: exact counts against the log, model and drift metrics,
and ``eventml run --metrics-port`` serving them."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from eventml.deadletter import PermanentError
from eventml.engine import App, Worker
from eventml.log import (
    ConsumerConfig,
    Log,
    Message,
    Record,
    TopicPartition,
    TopicSpec,
    open_log,
)
from eventml.ml.inference import InferenceStats
from eventml.observe.worker import SCORE_BUCKETS, BulkHistograms, WorkerMetrics
from eventml.testing.faults import refuse_commits

NOW_MS = 1_700_000_100_000  # the worker's clock in these tests: fixed, so latencies are exact
T0 = 1_700_000_000_000


@pytest.fixture(params=["memory", "embedded"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Log]]:
    url = f"memory://{uuid.uuid4().hex[:6]}" if request.param == "memory" else f"embedded://{tmp_path}/data"
    log = open_log(url)
    try:
        yield url, log
    finally:
        log.close()


def _read(log: Log, topic: str) -> list[Record]:
    ends = {TopicPartition(topic, p): o for p, o in log.end_offsets(topic).items()}
    c = log.consumer(f"r{uuid.uuid4().hex[:8]}", [topic], config=ConsumerConfig(auto_offset_reset="earliest"))
    out: list[Record] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out += c.poll(10_000, 0.05)
            owned = c.assignment()
            if len(owned) == len(ends) and all(c.position(tp) >= ends[tp] for tp in owned):
                break
    finally:
        c.close()
    return out


def _value(m: WorkerMetrics, name: str, **labels: str) -> float:
    v = m.registry.get_sample_value(name, labels)
    assert v is not None, f"no sample {name}{labels}"
    return v


def _check(value: dict[str, Any]) -> dict[str, Any]:
    if value["bad"]:
        raise PermanentError(f"event {value['i']} is bad")
    return value


def _pipeline(url: str, **settings: Any) -> App:
    """tx (3 partitions) -> check (bad events: dead letters) -> out; big amounts -> alerts."""
    app = App(f"t{uuid.uuid4().hex[:8]}", broker=url, **settings)
    checked = app.stream(app.topic("tx", partitions=3, key="k")).map(_check)
    checked.to(app.topic("out", partitions=2))
    checked.filter(lambda v: v["amount"] >= 900).to(app.topic("alerts"))
    return app


def _events(n: int, bad: set[int]) -> list[Message]:
    return [Message(orjson.dumps({"i": i, "k": f"c{i % 11}", "amount": i % 1000, "bad": i in bad}),
                    f"c{i % 11}".encode(), (("ce_id", f"e{i}".encode()),), T0 + i)
            for i in range(n)]




@pytest.mark.parametrize("refuse", [False, True], ids=["plain", "refused-commits"])
def test_counts_equal_what_the_log_holds(log_url: tuple[str, Log], refuse: bool) -> None:
    url, log = log_url
    n, bad = 3_000, {7, 500, 1_234, 2_999}
    app = _pipeline(url, max_batch=200, min_batch=20)
    Worker(app, log=log).close()  # creates the topics
    log.append("tx", _events(n, bad))
    m = WorkerMetrics(lag_every_s=0.0) if refuse else WorkerMetrics()  # lag: each batch, or 1/s
    worker = Worker(app, log=log, metrics=m, clock_ms=lambda: NOW_MS)
    refused = refuse_commits(worker, 4) if refuse else [0, 0]
    worker.run(idle_timeout_s=0.3)
    stats = worker.stats

    ends = log.end_offsets("tx")
    assert sum(ends.values()) == n
    for p, end in ends.items():  # per partition, each record once (refused batches not twice)
        assert _value(m, "eventml_worker_events_in_total", topic="tx", partition=str(p)) == end
    out, alerts, dlq = _read(log, "out"), _read(log, "alerts"), _read(log, "tx.dlq")
    assert len(out) == n - len(bad) and len(dlq) == len(bad)
    assert _value(m, "eventml_worker_events_out_total", topic="out") == len(out)
    assert _value(m, "eventml_worker_events_out_total", topic="alerts") == len(alerts) > 0
    assert _value(m, "eventml_worker_dead_letters_total", topic="tx") == len(bad)
    assert m.registry.get_sample_value("eventml_worker_events_out_total", {"topic": "tx.dlq"}) is None
    assert _value(m, "eventml_worker_batch_size_count") == stats.batches
    assert _value(m, "eventml_worker_batch_size_sum") == n
    assert _value(m, "eventml_worker_batch_seconds_count") == stats.batches
    assert _value(m, "eventml_worker_commits_refused_total") == refused[1] == stats.commits_refused
    if refuse:
        assert refused[1] >= 3
    # end to end: the commit's clock minus each record's timestamp (T0 + i), every event
    # counted once (sampled: a few records per partition and batch, each for its share)
    assert _value(m, "eventml_worker_end_to_end_seconds_count", topic="tx") == n
    expected = sum(NOW_MS - (T0 + i) for i in range(n)) / 1000
    assert _value(m, "eventml_worker_end_to_end_seconds_sum", topic="tx") == pytest.approx(expected, rel=1e-3)
    assert _value(m, "eventml_worker_end_to_end_seconds_bucket", topic="tx", le="60.0") == 0
    assert _value(m, "eventml_worker_end_to_end_seconds_bucket", topic="tx", le="300.0") == n
    for p in ends:  # caught up
        assert _value(m, "eventml_worker_consumer_lag", topic="tx", partition=str(p)) == 0
    info = _value(m, "eventml_worker_info", app=app.name, worker="0", instance=worker.instance)
    assert info == 1


def _records(topic: str, partition: int, stamps: list[int]) -> list[Record]:
    return [Record(topic, partition, i, t, None, b"{}") for i, t in enumerate(stamps)]


@pytest.mark.parametrize("sample", [None, 1, 4, 64])
def test_end_to_end_latency_counts_every_record_once_however_sampled(sample: int | None) -> None:
    m = WorkerMetrics(latency_sample=sample)
    a = [NOW_MS - 1_000 * (i % 7) for i in range(50)]  # 0..6 s old
    b = [NOW_MS - 20_000] * 3
    by_tp = {TopicPartition("tx", 0): _records("tx", 0, a), TopicPartition("tx", 1): _records("tx", 1, b)}
    m.batch_committed(by_tp, {}, time.perf_counter(), NOW_MS)
    assert _value(m, "eventml_worker_end_to_end_seconds_count", topic="tx") == 53
    assert _value(m, "eventml_worker_end_to_end_seconds_bucket", topic="tx", le="10.0") == 50
    assert _value(m, "eventml_worker_end_to_end_seconds_bucket", topic="tx", le="30.0") == 53
    total = _value(m, "eventml_worker_end_to_end_seconds_sum", topic="tx")
    exact = sum(NOW_MS - t for t in a + b) / 1000
    # sampled: every stride-th record stands for the stride of records from it (the last
    # for the rest); e.g. 4 of a's 50: records 0, 13, 26, 39 (0, 6, 5, 4 s old) x 13, 13, 13, 11
    by_hand = {None: exact, 64: exact, 1: 0 * 50 + 20 * 3, 4: 6 * 13 + 5 * 13 + 4 * 11 + 20 * 3}
    assert total == pytest.approx(by_hand[sample])
    assert _value(m, "eventml_worker_batch_size_sum") == 53


def test_lag_is_end_offset_minus_position_while_behind(log_url: tuple[str, Log]) -> None:
    url, log = log_url
    n = 1_000
    app = _pipeline(url, max_batch=50, min_batch=50)
    Worker(app, log=log).close()
    log.append("tx", _events(n, set()))
    m = WorkerMetrics(lag_every_s=0.0)
    worker = Worker(app, log=log, metrics=m, clock_ms=lambda: NOW_MS)
    try:
        done = 0
        while not done:
            done = worker.step()
        lag = {p: _value(m, "eventml_worker_consumer_lag", topic="tx", partition=str(p))
               for p in log.end_offsets("tx")}
        assert sum(lag.values()) == n - done > 0
        for p, end in log.end_offsets("tx").items():
            assert lag[p] == end - worker.consumer.position(TopicPartition("tx", p))
    finally:
        worker.close()


def test_lag_is_read_at_most_every_interval_while_busy() -> None:
    reads: list[float] = []
    now = [0.0]

    class _Consumer:
        def assignment(self) -> frozenset[TopicPartition]:
            reads.append(now[0])
            return frozenset({TopicPartition("tx", 0)})

        def position(self, tp: TopicPartition) -> int:
            return 5

    class _Log:
        def end_offsets(self, topic: str) -> dict[int, int]:
            return {0: 8}

    m = WorkerMetrics(lag_every_s=1.0, monotonic=lambda: now[0])
    for t in (0.0, 0.3, 0.9, 1.0, 1.5, 2.2):
        now[0] = t
        m.sample_lag(_Consumer(), _Log(), idle=False)  # type: ignore[arg-type]
    assert reads == [0.0, 1.0, 2.2]
    assert _value(m, "eventml_worker_consumer_lag", topic="tx", partition="0") == 3
    now[0] = 2.25  # idle while behind: sooner, but not at every poll
    m.sample_lag(_Consumer(), _Log(), idle=True)  # type: ignore[arg-type]
    now[0] = 2.35
    m.sample_lag(_Consumer(), _Log(), idle=True)  # type: ignore[arg-type]
    assert reads == [0.0, 1.0, 2.2, 2.35]


class _Versioned:
    """A model with its own version label: a score in 0..1 from the first feature."""

    def __init__(self, version: str, scale: float) -> None:
        self.version = version
        self.scale = scale

    def predict_batch(self, x: Any) -> Any:
        return np.clip(x[:, 0] * self.scale, 0.0, 1.0)


def test_model_latency_and_scores_per_version(log_url: tuple[str, Log]) -> None:
    url, log = log_url
    n = 1_500
    app = App(f"t{uuid.uuid4().hex[:8]}", broker=url, max_batch=128, min_batch=16)
    src = app.topic("tx", partitions=2, key="k")
    stats = InferenceStats()
    app.stream(src).predict(_Versioned("1", 1.0), features=["a"], stats=stats,
                            shadow=_Versioned("2", 0.5)).to(app.topic("scored"))
    Worker(app, log=log).close()
    a = np.random.default_rng(3).random(n)
    log.append("tx", [Message(orjson.dumps({"k": f"c{i % 5}", "a": float(v)}), f"c{i % 5}".encode(),
                              (("ce_id", f"e{i}".encode()),), T0 + i) for i, v in enumerate(a)])
    m = WorkerMetrics()
    worker = Worker(app, log=log, metrics=m)
    worker.run(idle_timeout_s=0.3)
    scored = [orjson.loads(r.value or b"{}") for r in _read(log, "scored")]
    assert len(scored) == n
    for version, scores in (("1", a), ("2", a * 0.5)):
        labels = {"model": "_Versioned", "version": version}
        assert _value(m, "eventml_model_score_count", **labels) == n
        assert _value(m, "eventml_model_score_sum", **labels) == pytest.approx(scores.sum())
        for le in (0.25, 0.5, 0.75):  # cumulative buckets
            assert _value(m, "eventml_model_score_bucket", le=repr(le), **labels) == (scores <= le).sum()
        assert _value(m, "eventml_model_score_bucket", le="+Inf", **labels) == n
        calls = stats.versions[version]  # the scorer's own per-version call statistics
        assert _value(m, "eventml_model_latency_seconds_count", **labels) == calls.batches > 1
        assert _value(m, "eventml_model_latency_seconds_sum", **labels) == pytest.approx(calls.seconds)
    assert max(v["score"] for v in scored) == pytest.approx(a.max())  # the primary's scores acted on


def test_a_scorer_outside_a_worker_records_nothing(log_url: tuple[str, Log]) -> None:
    url, log = log_url
    app = App(f"t{uuid.uuid4().hex[:8]}", broker=url)
    app.stream(app.topic("tx")).predict(_Versioned("1", 1.0), features=["a"]).to(app.topic("scored"))
    Worker(app, log=log).close()
    log.append("tx", [Message(orjson.dumps({"a": 0.5}), None, (("ce_id", b"e0"),), T0)])
    m = WorkerMetrics()
    with_metrics = Worker(app, log=log, metrics=m)
    with_metrics.run(idle_timeout_s=0.2)  # closes it: unbound
    assert _value(m, "eventml_model_score_count", model="_Versioned", version="1") == 1
    log.append("tx", [Message(orjson.dumps({"a": 0.5}), None, (("ce_id", b"e1"),), T0)])
    Worker(app, log=log).run(idle_timeout_s=0.2)  # same thread, no metrics
    assert _value(m, "eventml_model_score_count", model="_Versioned", version="1") == 1


def test_drift_status_follows_the_last_tested_window(log_url: tuple[str, Log]) -> None:
    pytest.importorskip("scipy")
    from eventml.ml.drift import detect_error_drift

    url, log = log_url
    app = App(f"t{uuid.uuid4().hex[:8]}", broker=url, max_batch=200, min_batch=50)
    labelled = app.topic("labelled", partitions=2, key="k")
    detect_error_drift(app.stream(labelled), model="fraud", window=100, reference_size=300,
                       alpha=1e-3, after_drift="keep", to="model.drift")
    Worker(app, log=log).close()

    def lp(i: int, error: bool) -> Message:
        value = {"prediction": {"event_id": f"tx{i}", "score": 0.9 if error else 0.1, "decision": None},
                 "label": 0.0}
        return Message(orjson.dumps(value), f"c{i % 3}".encode(), (("ce_id", f"lp{i}".encode()),), T0 + i)

    rng = np.random.default_rng(0)
    log.append("labelled", [lp(i, bool(rng.random() < 0.05)) for i in range(600)])  # 3 quiet windows
    m = WorkerMetrics()
    Worker(app, log=log, metrics=m).run(idle_timeout_s=0.3)
    labels = {"model": "fraud", "detector": "fraud-error"}
    assert _value(m, "eventml_drift_status", **labels) == 0
    assert m.registry.get_sample_value("eventml_drift_alarms_total", labels) is None
    assert not _read(log, "model.drift")

    log.append("labelled", [lp(600 + i, True) for i in range(300)])  # every prediction wrong
    Worker(app, log=log, metrics=m).run(idle_timeout_s=0.3)
    alarms = [orjson.loads(r.value or b"{}") for r in _read(log, "model.drift")]
    assert alarms
    assert _value(m, "eventml_drift_status", **labels) == 1
    assert _value(m, "eventml_drift_alarms_total", **labels) == len(alarms)
    last = alarms[-1] if len(alarms) == 1 else max(alarms, key=lambda a: a["events_seen"])
    stat = {**labels, "feature": "", "statistic": last["statistic"]}
    assert _value(m, "eventml_drift_statistic", **stat) == pytest.approx(last["value"])
    assert _value(m, "eventml_drift_threshold", **stat) == pytest.approx(last["threshold"])


def test_bulk_histograms_agree_with_prometheus_semantics() -> None:
    h = BulkHistograms("x_seconds", "test", ["k"], [0.1, 0.5, 1.0])
    h.observe_many(("a",), [0.1, 0.2, 0.5, 0.7, 2.0, float("nan")])
    h.observe_many(("a",), [])
    family = next(iter(h.collect()))
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("x_seconds_bucket", "0.1")] == 1  # le: at or below the bound
    assert samples[("x_seconds_bucket", "0.5")] == 3
    assert samples[("x_seconds_bucket", "1.0")] == 4
    assert samples[("x_seconds_bucket", "+Inf")] == 6  # above every bound, and NaN
    assert samples[("x_seconds_count", None)] == 6
    assert samples[("x_seconds_sum", None)] == pytest.approx(3.5)
    with pytest.raises(ValueError, match="increasing"):
        BulkHistograms("y", "test", [], [1.0, 0.5])
    assert SCORE_BUCKETS[0] == 0.05 and SCORE_BUCKETS[-1] == 1.0


# -- eventml run --metrics-port --------------------------------------------------------------

_APP = """
from eventml.engine import App

app = App("metricsapp", broker="memory://")
app.stream(app.topic("tx", partitions=2)).filter(lambda v: v["n"] % 2 == 0).to(app.topic("even"))
"""


def _cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "EVENTML_BROKER"}
    return subprocess.Popen([sys.executable, "-m", "eventml", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_run_serves_each_workers_metrics(tmp_path: Path) -> None:
    (tmp_path / "metricsapp.py").write_text(textwrap.dedent(_APP))
    broker = f"embedded://{tmp_path}/data"
    log = open_log(broker)
    try:
        log.create_topic(TopicSpec("tx", 2), exist_ok=True)
        log.append("tx", [Message(orjson.dumps({"n": i}), None, (("ce_id", f"e{i}".encode()),))
                          for i in range(100)])
    finally:
        log.close()
    proc = _cli("run", "metricsapp:app", "--broker", broker, "--metrics-port", "0",
                "--idle-exit", "60", cwd=tmp_path)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.fullmatch(r"metrics of worker 0: (http://127\.0\.0\.1:(\d+)/metrics)\n", line)
        assert found, line
        text, deadline = "", time.monotonic() + 60
        while time.monotonic() < deadline:  # until the worker processed the 100 events
            with urllib.request.urlopen(found.group(1), timeout=5) as r:
                text = r.read().decode()
            counts = re.findall(r'^eventml_worker_events_in_total\{partition="\d",topic="tx"\} (\S+)$',
                                text, re.M)
            if sum(float(c) for c in counts) == 100:
                break
            time.sleep(0.1)
        assert re.search(r'^eventml_worker_events_out_total\{topic="even"\} 50\.0$', text, re.M), text
        for name in ("eventml_worker_batch_size_bucket", "eventml_worker_end_to_end_seconds_bucket",
                     "eventml_worker_consumer_lag", "eventml_worker_info"):
            assert name in text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_each_worker_process_serves_its_own_port(tmp_path: Path) -> None:
    (tmp_path / "metricsapp.py").write_text(textwrap.dedent(_APP))
    broker = f"embedded://{tmp_path}/data"
    proc = _cli("run", "metricsapp:app", "--broker", broker, "--workers", "2", "--metrics-port", "0",
                cwd=tmp_path)
    try:
        assert proc.stdout is not None
        urls = []
        for i in range(2):
            line = proc.stdout.readline()
            found = re.fullmatch(rf"metrics of worker {i}: (http://127\.0\.0\.1:\d+/metrics)\n", line)
            assert found, line
            urls.append(found.group(1))
        assert len(set(urls)) == 2
        for i, url in enumerate(urls):
            text, deadline = "", time.monotonic() + 60
            while time.monotonic() < deadline and "eventml_worker_info{" not in text:
                try:
                    with urllib.request.urlopen(url, timeout=5) as r:
                        text = r.read().decode()
                except OSError:  # bound by the supervisor, served once the worker started
                    time.sleep(0.1)
            assert re.search(rf'^eventml_worker_info{{app="metricsapp",instance="[^"]*",worker="{i}"}} 1\.0$',
                             text, re.M), text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err


def _assert_one_line_error(proc: subprocess.Popen[str], *needles: str) -> None:
    _, err = proc.communicate(timeout=60)
    assert proc.returncode not in (0, None)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_bad_metrics_port_fails_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "metricsapp.py").write_text(textwrap.dedent(_APP))
    broker = f"embedded://{tmp_path}/data"
    _assert_one_line_error(_cli("run", "metricsapp:app", "--broker", broker, "--metrics-port", "70000",
                                cwd=tmp_path), "0..65535")
    _assert_one_line_error(_cli("run", "metricsapp:app", "--broker", broker, "--workers", "3",
                                "--metrics-port", "65534", cwd=tmp_path), "65536")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _assert_one_line_error(_cli("run", "metricsapp:app", "--broker", broker, "--metrics-port",
                                    str(port), cwd=tmp_path), f"127.0.0.1:{port}")
