"""The pipeline sampler behind the dashboard and the log's gauges on /metrics, on the memory
and embedded logs, with a fake clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from eventml.api import create_app
from eventml.deadletter.record import dead_letter_message
from eventml.demos.fraud import train_demo_model
from eventml.demos.fraud.app import fraud_app
from eventml.engine import App
from eventml.log import Log, Message, TopicPartition, TopicSpec, open_log
from eventml.log.memory import MemoryLog
from eventml.ml.records import DriftDetected, Prediction
from eventml.observe.log_metrics import LogCollector
from eventml.observe.pipeline import PipelineSampler, SamplerConfig
from eventml.observe.series import AppendTimes, Rate, percentile, time_lag_s
from eventml.observe.topology import pipeline_graph


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "embedded"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Log]:
    opened: Log = MemoryLog() if request.param == "memory" else open_log(f"embedded://{tmp_path}/data")
    try:
        yield opened
    finally:
        opened.close()


def small_app() -> App:
    app = App("scorer", broker="memory://")
    (app.stream(app.topic("payments", partitions=2))
        .filter(lambda v: v["amount"] > 100)
        .to(app.topic("payment-alerts")))
    return app


def _append(log: Log, topic: str, n: int, partition: int = 0, start: int = 0) -> None:
    log.append(topic, [Message(orjson.dumps({"amount": 500, "n": start + i}), key=b"k",
                               partition=partition, timestamp_ms=1) for i in range(n)])


def _commit(log: Log, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = log.consumer(group, sorted({tp.topic for tp in offsets}))
    try:
        while not set(offsets) <= consumer.assignment():
            consumer.poll(max_records=1, timeout_s=0.1)
        consumer.commit(offsets)
    finally:
        consumer.close()


# -- the pure cores ---------------------------------------------------------------------------

def test_rate_is_growth_over_the_window_and_restarts_when_the_counter_shrinks() -> None:
    r = Rate(window=3)
    assert r.per_s() is None
    for t, n in ((0.0, 0), (1.0, 10), (2.0, 40), (3.0, 70)):
        r.add(t, n)
    assert r.per_s() == 30.0  # (70 - 10) / 2: only the last three samples
    r.add(4.0, 5)  # a recreated topic
    assert r.per_s() is None


def test_append_time_is_interpolated_and_time_lag_is_zero_when_caught_up() -> None:
    a = AppendTimes()
    a.add(10.0, 100)
    a.add(12.0, 300)
    assert a.appended_at(199) == pytest.approx(11.0)
    assert a.appended_at(50) is None  # before the history: unknown
    assert a.appended_at(300) is None  # not appended yet
    assert time_lag_s(a, 300, 300, 13.0) == 0.0
    assert time_lag_s(a, 199, 300, 13.0) == pytest.approx(2.0)
    assert time_lag_s(a, 50, 300, 13.0) == pytest.approx(3.0)  # at least since the oldest sample
    assert time_lag_s(a, None, 300, 13.0) is None


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 50) is None


# -- the topology -------------------------------------------------------------------------------

def test_the_fraud_apps_graph_goes_from_transactions_to_alerts_in_layers() -> None:
    app = fraud_app(train_demo_model(seed=7, history_events=5_000), name="fraud-graph",
                    broker="memory://")
    g = pipeline_graph(app.topology())
    ids = {n.id: n for n in g.nodes}
    assert g.topics_read == ["transactions"]
    assert {"fraud-alerts", "card-velocity"} <= set(g.topics_written)
    for e in g.edges:
        assert e.source in ids and e.target in ids
        assert ids[e.target].layer > ids[e.source].layer
    kinds = {n.kind for n in g.nodes}
    assert kinds == {"topic", "source", "operator"}


def test_the_graph_of_a_small_app() -> None:
    g = pipeline_graph(small_app().topology())
    assert [(e.source, e.target, e.direction) for e in g.edges] == [
        ("topic:payments", "source-1", "out_of"), ("source-1", "filter-2", "within"),
        ("filter-2", "topic:payment-alerts", "into")]
    assert g.group == "scorer"


# -- the sampler --------------------------------------------------------------------------------

def test_rates_lag_time_lag_and_edge_throughput(log: Log) -> None:
    clock = FakeClock()
    app = small_app()
    log.create_topic(TopicSpec("payments", 2))
    log.create_topic(TopicSpec("payment-alerts", 1))
    sampler = PipelineSampler(log, app=app, clock=clock)
    _append(log, "payments", 10)
    first = sampler.sample()
    assert {t["topic"]: t["rate_eps"] for t in first["topics"]}["payments"] is None  # one sample
    clock.now += 2.0
    _append(log, "payments", 10)
    _append(log, "payments", 20, partition=1)
    _commit(log, "scorer", {TopicPartition("payments", 0): 15, TopicPartition("payments", 1): 20})
    snap = sampler.sample()
    rates = {t["topic"]: t for t in snap["topics"]}
    assert rates["payments"]["end_offset"] == 40
    assert rates["payments"]["rate_eps"] == pytest.approx(15.0)  # 30 events in 2 s
    (group,) = snap["groups"]
    assert (group["group"], group["topic"], group["lag"], group["committed"]) == (
        "scorer", "payments", 5, 35)
    # offset 15 of partition 0 came between the samples (ends 10 and 20): at 1000 + 2 * 6/10
    assert group["time_lag_ms"] == pytest.approx(800.0)
    assert snap["series"][-1]["time_lag_ms"] == pytest.approx(800.0)
    clock.now += 1.0
    _commit(log, "scorer", {TopicPartition("payments", 0): 20})
    snap = sampler.sample()
    (group,) = snap["groups"]
    assert group["lag"] == 0 and group["time_lag_ms"] == 0.0
    assert group["rate_eps"] == pytest.approx(5 / 1.0)  # committed 35 -> 40 in 1 s
    edges = {(e["source"], e["target"]): e["rate_eps"] for e in snap["graph"]["edges"]}
    assert edges[("topic:payments", "source-1")] == pytest.approx(5.0)  # the group's commits
    assert edges[("source-1", "filter-2")] is None  # between operators: not measured
    assert [p["p99_ms"] for p in snap["series"]][-1] == pytest.approx(800.0)


def test_alerts_dead_letters_drift_and_predictions(log: Log) -> None:
    clock = FakeClock()
    log.create_topic(TopicSpec("payments", 2))
    log.create_topic(TopicSpec("payment-alerts", 1))
    sampler = PipelineSampler(log, app=small_app(), clock=clock,
                              config=SamplerConfig(alerts_kept=3))
    log.append("payment-alerts", [Message(orjson.dumps({"n": i}), key=b"c%d" % i, timestamp_ms=i)
                                  for i in range(2)])
    snap = sampler.sample()
    assert snap["alerts"]["topics"] == ["payment-alerts"]
    assert [a["value"]["n"] for a in snap["alerts"]["recent"]] == [1, 0]  # newest first
    log.append("payment-alerts", [Message(orjson.dumps({"n": i}), timestamp_ms=i) for i in (2, 3)])
    clock.now += 1
    snap = sampler.sample()
    assert [a["value"]["n"] for a in snap["alerts"]["recent"]] == [3, 2, 1]  # kept 3, none twice
    assert snap["alerts"]["total"] == 4

    log.create_topic(TopicSpec("payments.dlq", 1))
    log.create_topic(TopicSpec("payments.dlq.replayed", 1))
    log.append("payments.dlq", [dead_letter_message(b"{bad", key=b"k", error=ValueError("x"),
                                                    now_ms=1, source={"topic": "payments"})] * 2)
    log.create_topic(TopicSpec("model.drift", 1))
    drift = DriftDetected(model="fraud", kind="feature", statistic="psi", value=0.4,
                          threshold=0.2, alpha=0.01, feature="amount")
    log.append("model.drift", [Message(orjson.dumps(drift.to_dict()), timestamp_ms=5)])
    log.create_topic(TopicSpec("predictions", 1))
    preds = [Prediction(f"e{i}", "fraud", v, score, {}, decision=score > 0.5, role=role)
             for i in range(4) for v, score, role in ((1, 0.2, "primary"), (2, 0.8, "shadow"))]
    log.append("predictions", [Message(orjson.dumps(p.to_dict())) for p in preds])
    clock.now += 1
    snap = sampler.sample()
    assert snap["dead_letters"] == [{"topic": "payments", "dead_letter_topic": "payments.dlq",
                                     "held": 2, "rate_eps": None}]
    assert [(d["model"], d["statistic"], d["feature"]) for d in snap["drift"]] == [("fraud", "psi", "amount")]
    by_role = {p["role"]: p for p in snap["predictions"]}
    assert by_role["primary"]["version"] == 1 and by_role["primary"]["decision_rate"] == 0.0
    assert by_role["shadow"]["mean_score"] == pytest.approx(0.8)
    assert by_role["shadow"]["predictions"] == 4
    assert snap["errors"] == []


def test_latest_samples_at_most_once_per_interval() -> None:
    clock = FakeClock()
    log = MemoryLog()
    sampler = PipelineSampler(log, clock=clock, config=SamplerConfig(interval_s=1.0))
    first = sampler.latest()
    assert sampler.latest() is first
    clock.now += 0.5
    assert sampler.latest() is first
    clock.now += 0.6
    assert sampler.latest() is not first


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_logs_gauges_on_metrics(log: Log) -> None:
    log.create_topic(TopicSpec("payments", 2))
    log.create_topic(TopicSpec("payments.dlq", 1))
    _append(log, "payments", 7)
    log.append("payments.dlq", [dead_letter_message(b"x", key=None, error=ValueError("x"), now_ms=1,
                                                    source={"topic": "payments"})])
    _commit(log, "scorer", {TopicPartition("payments", 0): 3})
    with TestClient(create_app(log=log, pipeline=small_app())) as client:
        sampler = client.app.state.dashboard  # type: ignore[attr-defined]
        client.get("/metrics")  # the handler is async: it answers at once, sampling in a thread
        deadline = time.monotonic() + 10
        while sampler.last is None and time.monotonic() < deadline:  # sampled in a thread
            time.sleep(0.01)
        samples = _samples(client.get("/metrics").text)
    assert samples[("eventml_topic_events", (("topic", "payments"),))] == 7
    assert samples[("eventml_consumer_lag", (("group", "scorer"), ("topic", "payments")))] == 4
    assert samples[("eventml_dead_letters", (("topic", "payments"),))] == 1


def test_drift_status_is_recent_alarms_per_model() -> None:
    clock = FakeClock()
    log = MemoryLog()
    log.create_topic(TopicSpec("model.drift", 1))
    drift = DriftDetected(model="fraud", kind="error", statistic="adwin", value=1, threshold=0.5,
                          alpha=0.01)
    log.append("model.drift", [Message(orjson.dumps(drift.to_dict()), timestamp_ms=990_000)])
    sampler = PipelineSampler(log, clock=clock)
    fresh = _collect(LogCollector(sampler, drift_recent_s=60))
    assert fresh[("eventml_model_drift_alarms", (("model", "fraud"),))] == 1
    assert fresh[("eventml_model_drift_detected", (("model", "fraud"),))] == 1  # 10 s ago
    clock.now += 120
    stale = _collect(LogCollector(sampler, drift_recent_s=60))
    assert stale[("eventml_model_drift_detected", (("model", "fraud"),))] == 0


def _collect(collector: LogCollector) -> dict[Any, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in collector.collect() for s in family.samples}


def test_processing_latency_from_the_workers_metrics_in_snapshots_and_on_the_route() -> None:
    from eventml.api.dashboard import Snapshot
    from eventml.observe.endpoint import MetricsEndpoint

    log = MemoryLog()
    log.create_topic(TopicSpec("payments", 2))
    endpoint = MetricsEndpoint(0)
    endpoint.metrics.attach(app="scorer", worker=0, instance="i", dead_letter_topics={})
    endpoint.start()
    try:
        with TestClient(create_app(log=log, pipeline=small_app(),
                                   worker_metrics=[endpoint.url])) as client:
            sampler = client.app.state.dashboard  # type: ignore[attr-defined]
            first = client.get("/v1/dashboard/snapshot").json()
            Snapshot.model_validate(first)
            assert first["workers"]["endpoints"] == [{"url": endpoint.url, "up": True, "error": None,
                                                      "app": "scorer", "worker": "0"}]
            assert first["series"][-1]["processing_p50_ms"] is None  # the baseline
            for seconds in (0.004, 0.004, 0.004, 0.2):
                endpoint.metrics.batch_seconds.observe(seconds)
            endpoint.metrics.model_seconds.labels("fraud", "3").observe(0.002)
            sampler.sample()
            snap = client.get("/v1/dashboard/snapshot").json()
        Snapshot.model_validate(snap)
        point = snap["series"][-1]
        assert 2.5 < point["processing_p50_ms"] <= 5 and 100 < point["processing_p99_ms"] <= 250
        assert snap["workers"]["processing"]["batches"] == 4
        assert snap["workers"]["models"][0]["model"] == "fraud"
        assert snap["workers"]["models"][0]["version"] == "3"
        assert "histogram_quantile" in snap["workers"]["processing_measures"]
    finally:
        endpoint.close()
    # the endpoint gone: the worker shows as down, the snapshot is still whole
    down = sampler.sample()
    assert down["workers"]["endpoints"][0]["up"] is False and down["errors"] == []
    assert down["series"][-1]["processing_p50_ms"] is None


def test_without_worker_metrics_there_is_no_workers_section() -> None:
    snap = PipelineSampler(MemoryLog(), app=small_app()).sample()
    assert snap["workers"] is None and snap["series"][-1]["processing_p99_ms"] is None
