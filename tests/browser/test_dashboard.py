"""The dashboard in a real browser while the fraud demo's pipeline runs: throughput and
latency charts and the alerts feed update live, and a click replays a dead letter.

The pipeline: the fraud app on an embedded log, a worker in a thread recording its
Prometheus metrics (served on a free port, as ``eventml run --metrics-port`` does, and
scraped by the dashboard for processing latency), a seeded producer (~200 transactions/s
for ~15 s) and one malformed transaction (dead-lettered by the transactions topic's data
contract). Screenshots of each step: test-artifacts/browser/.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventml.api import create_app
from eventml.demos.fraud import train_demo_model
from eventml.demos.fraud.app import fraud_app
from eventml.demos.fraud.generator import GeneratorConfig, generate_transactions
from eventml.demos.fraud.producer import TransactionProducer
from eventml.engine import App, Worker
from eventml.log import Log, Message, TopicPartition, TopicSpec, open_log
from eventml.ml.control import move_alias
from eventml.ml.records import DriftDetected
from eventml.ml.registry import ModelRegistry
from eventml.observe.endpoint import MetricsEndpoint
from eventml.observe.worker import WorkerMetrics
from eventml.security import KeyStore

from .conftest import ServerThread

EVENTS = 3_000
NO_VALUE = "\N{EN DASH}"  # what the page shows for a missing figure
RATE_EPS = 200.0
BAD = b'{"card_id": "card-bad", "amount": "a lot"}'  # breaks the transactions contract
SCORE = "tests.api.test_models_api:score"


@dataclass
class Demo:
    log: Log
    app: App
    producer: TransactionProducer
    worker: Worker
    metrics: MetricsEndpoint
    admin_key: str
    api: Any  # the service (FastAPI)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    log = open_log(f"embedded://{tmp_path}/data")
    model = train_demo_model(seed=7, history_events=20_000)
    app = fraud_app(model, name="fraud-dashboard", broker=log.url, validate=True, partitions=2,
                    velocity=None, max_batch=500)
    endpoint = MetricsEndpoint(0, metrics=WorkerMetrics())
    endpoint.start()
    worker = Worker(app, log=log, metrics=endpoint.metrics)
    models = ModelRegistry(tmp_path / "models")
    models.register("fraud", SCORE, flavor="callable", features=["amount"])
    models.register("fraud", SCORE, flavor="callable", features=["amount"])
    move_alias(models, log, "fraud", "champion", 1, reason="first")
    move_alias(models, log, "fraud", "challenger", 2, reason="shadow it")
    drift = DriftDetected(model="fraud", kind="feature", statistic="psi", value=0.31,
                          threshold=0.2, alpha=0.01, feature="amount")
    log.create_topic(TopicSpec("model.drift", 1))
    log.append("model.drift", [Message(orjson.dumps(drift.to_dict()), timestamp_ms=1)])
    keys = KeyStore(tmp_path / "keys.sqlite")
    admin = keys.create("admin", ["admin"])[0]
    # few cards and much fraud: alerts all along the run
    live = generate_transactions(EVENTS, seed=(7, 0), config=GeneratorConfig(
        cards=300, fraud_episodes_per_transaction=0.03))
    producer = TransactionProducer(log, "transactions", live.transactions, batch_size=20,
                                   rate_eps=RATE_EPS)
    stop = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            while not stop.is_set():
                worker.step()
        except BaseException as e:  # reported by the test
            failure.append(e)

    thread = threading.Thread(target=work, name="fraud-worker", daemon=True)
    thread.start()
    _wait(lambda: worker.consumer.assignment() >= {TopicPartition("transactions", p) for p in (0, 1)},
          "the worker's partitions", 20)
    log.append("transactions", [Message(BAD, key=b"card-bad", partition=0)])
    producer.start()
    api = create_app(log=log, keys=keys, pipeline=app, models=models, worker_metrics=[endpoint.url])
    try:
        yield Demo(log, app, producer, worker, endpoint, admin, api)
    finally:
        producer.stop()
        stop.set()
        thread.join(10)
        worker.close()
        endpoint.close()
        log.close()
    assert not failure, failure


def _wait(ready: Callable[[], Any], what: str, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _number(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(k?)", text.strip().replace(",", ""))
    assert m, f"not a number: {text!r}"
    return float(m[1]) * (1000 if m[2] else 1)


def test_the_dashboard_follows_the_pipeline_and_replays_a_dead_letter(
    demo: Demo, browser_context: Any, artifacts: Path
) -> None:
    started = time.monotonic()
    page = browser_context.new_page()
    with ServerThread(demo.api) as base:
        page.goto(base + "/")
        page.wait_for_function("document.getElementById('status').dataset.state === 'error'")
        assert "API key" in page.inner_text("#status")
        page.screenshot(path=str(artifacts / "01-needs-key.png"), full_page=True)

        page.fill("#api-key", demo.admin_key)
        page.click("#key-form button[type=submit]")
        page.wait_for_function("document.getElementById('status').dataset.state === 'live'")
        assert demo.admin_key not in page.url
        assert page.evaluate("sessionStorage.getItem('eventml.apiKey')") == demo.admin_key

        # throughput: the transactions' count and rate move while the producer runs
        def tx_events() -> float:
            row = page.locator("#topics-table tbody tr", has_text="transactions").first
            return _number(row.locator("td").nth(1).inner_text())

        page.wait_for_function("parseFloat(document.getElementById('throughput-in').textContent) > 0")
        first_count, first_rate = tx_events(), page.inner_text("#throughput-in")
        edge = page.locator("#topology text.rate").first
        assert re.fullmatch(r"[0-9.k]+/s", edge.text_content() or ""), edge.text_content()
        page.screenshot(path=str(artifacts / "02-live.png"), full_page=True)
        # latency: the worker's processing latency (scraped from its metrics endpoint)
        def chart_points() -> int:
            return int(page.get_attribute("#latency-chart", "data-points") or 0)

        def latency_figures() -> tuple[str, ...]:
            return tuple(page.inner_text(f"#latency-{p}") for p in ("p50", "p95", "p99"))

        points = _wait(chart_points, "points on the latency chart", 10)
        assert page.get_attribute("#latency-chart", "data-kind") == "processing"
        assert float(page.get_attribute("#latency-chart", "data-max") or 0) > 0
        _wait(lambda: latency_figures()[2] != NO_VALUE, "processing latency figures", 10)
        first_figures = latency_figures()
        assert _number(first_figures[2]) > 0 and _number(first_figures[0]) > 0
        assert "Workers 1/1 up" in page.inner_text("#workers-status")
        assert "fraud-dashboard #0" in page.inner_text("#workers-status")
        assert "histogram_quantile" in page.inner_text("#latency-measures")
        alerts = page.locator("#alerts-feed li[data-alert-id]")
        _wait(lambda: alerts.count() > 0, "a first alert in the feed", 20)
        first_alert = alerts.first.get_attribute("data-alert-id")
        first_alert_count = alerts.count()

        _wait(lambda: tx_events() >= first_count + 2 * RATE_EPS, "transactions to grow", 15)
        _wait(lambda: page.inner_text("#throughput-in") != first_rate, "the rate to change", 20)
        _wait(lambda: chart_points() > points, "the latency chart to grow", 10)
        assert page.locator("#latency-chart path.series").count() == 3  # p50, p95, p99
        _wait(lambda: latency_figures() not in (first_figures, (NO_VALUE,) * 3),
              "the processing latency figures to change", 10)
        _wait(lambda: alerts.first.get_attribute("data-alert-id") != first_alert
              or alerts.count() > first_alert_count, "new alerts in the feed", 20)
        # models, aliases and drift are shown
        assert "champion→v1" in page.inner_text("#models-table")
        assert "challenger→v2" in page.inner_text("#models-table")
        assert "psi" in page.inner_text("#drift-feed")
        page.screenshot(path=str(artifacts / "03-alerts.png"), full_page=True)

        # the dead letter: replay it once the producer is done, so the topic grows by it alone
        demo.producer.join(60)
        assert demo.producer.error is None
        button = page.locator("#dlq-topics .replay-btn").first
        button.wait_for(timeout=15_000)
        row = page.locator("#dlq-topics tr[data-dlq-id]").first
        assert "card-bad" in row.inner_text()
        before = demo.log.end_offsets("transactions")
        page.screenshot(path=str(artifacts / "04-dead-letter.png"), full_page=True)
        button.click()
        page.wait_for_selector("#dlq-topics td[data-replayed=true]", timeout=10_000)
        assert "replayed (1 → transactions)" in row.inner_text()
        after = demo.log.end_offsets("transactions")
        assert sum(after.values()) == sum(before.values()) + 1
        (grown,) = [p for p in after if after[p] != before[p]]
        (record,) = demo.log.read(TopicPartition("transactions", grown), before[grown], 1)  # type: ignore[attr-defined]
        assert record.value == BAD and record.key == b"card-bad"
        assert any(name == "eventml.replay.of" for name, _ in record.headers)
        page.screenshot(path=str(artifacts / "05-replayed.png"), full_page=True)
    assert time.monotonic() - started < 60


def test_without_worker_metrics_the_latency_card_shows_time_lag_and_how_to_get_more(
    tmp_path: Path, browser_context: Any, artifacts: Path
) -> None:
    log = open_log(f"embedded://{tmp_path}/data")
    app = App("scorer", broker=log.url)
    app.stream(app.topic("payments", partitions=1)).to(app.topic("payment-alerts"))
    log.create_topic(TopicSpec("payments", 1))
    log.append("payments", [Message(b"{}", timestamp_ms=1)])
    page = browser_context.new_page()
    try:
        with ServerThread(create_app(log=log, pipeline=app)) as base:
            page.goto(base + "/")
            page.wait_for_function("document.getElementById('status').dataset.state === 'live'")
            page.wait_for_function("document.getElementById('latency-chart').dataset.kind")
            assert page.get_attribute("#latency-chart", "data-kind") == "time-lag"
            assert page.inner_text("#latency-kind") == "time lag"
            hint = page.inner_text("#workers-status")
            assert "eventml run --metrics-port" in hint and "eventml serve --worker-metrics" in hint
            assert page.is_hidden("#model-latency")
            page.screenshot(path=str(artifacts / "06-no-worker-metrics.png"), full_page=True)
    finally:
        log.close()
