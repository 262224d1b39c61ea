"""Percentiles from Prometheus histograms, and scraping the workers' metrics endpoints."""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator

import numpy as np
import pytest

from eventml.observe.endpoint import MetricsEndpoint
from eventml.observe.scrape import (
    MODEL_LATENCY,
    PROCESSING,
    WorkerScraper,
    histogram_delta,
    metrics_url,
    parse_metrics,
    sum_histograms,
)
from eventml.observe.series import histogram_quantile
from eventml.observe.worker import WorkerMetrics

INF = math.inf


# -- the estimate ---------------------------------------------------------------------------

def test_quantiles_interpolate_linearly_within_the_bucket_holding_the_rank() -> None:
    buckets = [(1.0, 10.0), (2.0, 30.0), (4.0, 40.0), (INF, 40.0)]
    assert histogram_quantile(0.25, buckets) == 1.0  # rank 10: the first bucket's top
    assert histogram_quantile(0.5, buckets) == pytest.approx(1.5)  # rank 20: 10 of 20 into (1, 2]
    assert histogram_quantile(0.99, buckets) == pytest.approx(3.92)  # rank 39.6: 9.6 of 10 into (2, 4]
    assert histogram_quantile(0.05, buckets) == pytest.approx(0.2)  # (0, 1]: from 0
    assert histogram_quantile(0.0, buckets) == 0.0


def test_a_rank_in_the_inf_bucket_gets_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.9, [(1.0, 5.0), (2.0, 5.0), (INF, 10.0)]) == 2.0
    assert histogram_quantile(0.4, [(1.0, 5.0), (2.0, 5.0), (INF, 10.0)]) == pytest.approx(0.8)


def test_no_observations_or_no_inf_bucket_is_no_estimate() -> None:
    assert histogram_quantile(0.5, [(1.0, 0.0), (INF, 0.0)]) is None
    assert histogram_quantile(0.5, [(1.0, 3.0), (2.0, 4.0)]) is None
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.5, [(-1.0, 4.0), (0.0, 4.0), (INF, 4.0)]) == -1.0
    with pytest.raises(ValueError, match=r"in 0\.\.1"):
        histogram_quantile(1.5, [(1.0, 1.0), (INF, 1.0)])


def test_the_estimate_is_close_to_the_true_percentile_on_fine_buckets() -> None:
    values = np.random.default_rng(3).exponential(0.01, 20_000)
    bounds = [*np.linspace(0.001, 0.1, 100).tolist(), INF]
    buckets = [(b, float(np.sum(values <= b))) for b in bounds]
    for q in (0.5, 0.95, 0.99):
        estimate = histogram_quantile(q, buckets)
        assert estimate == pytest.approx(float(np.quantile(values, q)), abs=0.001)


# -- parsing, deltas and sums ---------------------------------------------------------------

def test_deltas_restart_with_the_process_and_sums_keep_common_bounds() -> None:
    before = {0.1: 2.0, 1.0: 5.0, INF: 6.0}
    assert histogram_delta({0.1: 3.0, 1.0: 9.0, INF: 10.0}, before) == {0.1: 1.0, 1.0: 4.0, INF: 4.0}
    assert histogram_delta({0.1: 1.0, 1.0: 1.0, INF: 1.0}, before) == {0.1: 1.0, 1.0: 1.0, INF: 1.0}
    assert histogram_delta({0.1: 1.0, INF: 1.0}, None) == {0.1: 1.0, INF: 1.0}
    assert sum_histograms([{0.1: 1.0, INF: 2.0}, {0.1: 3.0, 0.5: 1.0, INF: 5.0}]) == {0.1: 4.0, INF: 7.0}
    assert sum_histograms([]) == {}


def test_parse_reads_histogram_buckets_by_labels_and_the_worker_info() -> None:
    m = WorkerMetrics()
    m.attach(app="fraud", worker=1, instance="i-1", dead_letter_topics={})
    m.batch_seconds.observe(0.003)
    m.model_seconds.labels("fraud", "2").observe(0.0002)
    hists, info = parse_metrics(m.render().decode())
    assert info == [{"app": "fraud", "worker": "1", "instance": "i-1"}]
    (batch,) = hists[PROCESSING].values()
    assert batch[0.0025] == 0 and batch[0.005] == 1 and batch[INF] == 1
    assert list(hists[MODEL_LATENCY]) == [(("model", "fraud"), ("version", "2"))]
    with pytest.raises(ValueError):
        parse_metrics("this is { not metrics")


def test_metrics_urls_are_checked_and_get_a_default_path() -> None:
    assert metrics_url("http://127.0.0.1:9100") == "http://127.0.0.1:9100/metrics"
    assert metrics_url(" http://[::1]:9100/metrics ") == "http://[::1]:9100/metrics"
    assert metrics_url("https://w1:9100/x?y=1") == "https://w1:9100/x?y=1"
    for bad in ("127.0.0.1:9100", "ftp://h/metrics", "http://", "http://h:99999/",
                "http://u:p@h:1/metrics"):
        with pytest.raises(ValueError, match="worker metrics URL"):
            metrics_url(bad)


# -- against real endpoints -----------------------------------------------------------------

@pytest.fixture
def endpoints() -> Iterator[list[MetricsEndpoint]]:
    served = [MetricsEndpoint(0), MetricsEndpoint(0)]
    for i, e in enumerate(served):
        e.metrics.attach(app="fraud", worker=i, instance=f"i-{i}", dead_letter_topics={})
        e.start()
    try:
        yield served
    finally:
        for e in served:
            e.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_scrape_sums_the_batches_of_every_worker_since_the_previous_scrape(
    endpoints: list[MetricsEndpoint],
) -> None:
    down = f"http://127.0.0.1:{_free_port()}/metrics"
    scraper = WorkerScraper([e.url for e in endpoints] + [down], timeout_s=2.0, window=3)
    first, second = endpoints[0].metrics, endpoints[1].metrics
    first.batch_seconds.observe(9.0)  # before the baseline: never counted

    base = scraper.scrape()
    assert base["processing"] == {"p50_ms": None, "p95_ms": None, "p99_ms": None, "batches": 0}
    ups = {e["url"]: e for e in base["endpoints"]}
    assert ups[endpoints[1].url] == {"url": endpoints[1].url, "up": True, "error": None,
                                     "app": "fraud", "worker": "1"}
    assert not ups[down]["up"] and "refused" in ups[down]["error"].lower()

    for _ in range(60):
        first.batch_seconds.observe(0.003)  # (0.0025, 0.005]
    for _ in range(40):
        second.batch_seconds.observe(0.04)  # (0.025, 0.05]
    first.model_seconds.labels("fraud", "1").observe(0.0003)
    second.model_seconds.labels("fraud", "1").observe(0.0003)
    now = scraper.scrape()
    p = now["processing"]
    assert p["batches"] == 100
    # rank 50 of 100: 50 of the 60 in (2.5, 5] ms; rank 95: 35 of the 40 in (25, 50] ms
    assert p["p50_ms"] == pytest.approx(2.5 + 2.5 * 50 / 60, abs=1e-3)
    assert p["p95_ms"] == pytest.approx(25 + 25 * 35 / 40, abs=1e-3)
    assert now["models"] == [{"model": "fraud", "version": "1", "calls": 2,
                              "p50_ms": pytest.approx(0.25 + 0.25 * 1 / 2, abs=1e-3),
                              "p99_ms": pytest.approx(0.25 + 0.25 * 1.98 / 2, abs=1e-3)}]

    second.batch_seconds.observe(0.2)
    later = scraper.scrape()
    assert later["processing"]["batches"] == 1
    assert 100 < later["processing"]["p50_ms"] <= 250
    assert later["models"][0]["calls"] == 2  # still within the window of 3 scrapes
    scraper.scrape()
    assert scraper.scrape()["models"][0]["calls"] == 0  # slid out of it
    scraper.close()


def test_a_restarted_worker_counts_from_zero_and_a_garbled_one_is_down() -> None:
    texts = {"http://a:1/metrics": "", "http://b:1/metrics": "garbage {"}

    def text(m: WorkerMetrics) -> str:
        return m.render().decode()

    old = WorkerMetrics()
    for _ in range(10):
        old.batch_seconds.observe(0.003)
    texts["http://a:1/metrics"] = text(old)
    scraper = WorkerScraper(list(texts), fetch=lambda url, _timeout: texts[url])
    scraper.scrape()
    restarted = WorkerMetrics()
    restarted.batch_seconds.observe(0.0007)
    texts["http://a:1/metrics"] = text(restarted)
    snap = scraper.scrape()
    assert snap["processing"]["batches"] == 1
    assert 0.5 < snap["processing"]["p99_ms"] <= 1.0
    garbled = snap["endpoints"][1]
    assert garbled["up"] is False and garbled["error"].startswith("not Prometheus metrics")


def test_serve_refuses_a_bad_worker_metrics_url_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventml.cli.app import main

    monkeypatch.delenv("EVENTML_BROKER", raising=False)
    args = ["serve", "--port", "0", "--broker", "memory://", "--worker-metrics",
            "http://127.0.0.1:9100/metrics", "--worker-metrics", "127.0.0.1:9101"]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "--worker-metrics" in err and "'127.0.0.1:9101'" in err and "http://HOST:PORT" in err
