"""The pipeline benchmark runs end to end and reports consistent results (no timing assertions)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from eventml.bench import BenchmarkError, to_json
from eventml.bench.pipeline import run_pipeline_benchmark
from eventml.cli.app import main
from eventml.demos.fraud import FeatureExtractor, FraudModel, generate_transactions
from eventml.demos.fraud.run import train_demo_model
from eventml.log import open_log
from eventml.schema.registry import SchemaRegistry

N = 3_000
SEED = 7


@pytest.fixture(scope="module")
def model() -> FraudModel:
    return train_demo_model(seed=SEED, history_events=20_000)


@pytest.fixture(scope="module")
def expected_alerts(model: FraudModel) -> int:
    """Alerts the fraud app must raise on the benchmark's N transactions, computed offline."""
    txs = generate_transactions(N, seed=(SEED, 0)).transactions  # the benchmark's live stream
    scores = model.score_many(FeatureExtractor().update_many(txs))
    return int((scores >= model.threshold.value).sum())


def _check_side(side: dict[str, Any]) -> None:
    assert side["processed"] == N  # one worker, no refused commit: each record exactly once
    assert side["commits_refused"] == 0
    assert side["eps"] > 0 and side["seconds"] > 0
    assert 0 <= side["startup_s"] <= side["seconds"]
    assert side["steady_eps"] is None or side["steady_eps"] > 0
    assert side["batches"] >= 1 and side["mean_batch"] == round(N / side["batches"], 1)


def _check_latency(latency: dict[str, Any], rate: float) -> None:
    assert latency["offered_eps"] == rate and latency["achieved_eps"] > 0
    assert latency["events"] == round(rate * (latency["warmup_s"] + latency["duration_s"]))
    tap, alerts = latency["tap"], latency["alerts"]
    # every output seen exactly once; measured: those acknowledged after the warm-up
    assert tap["missing"] == 0 and tap["duplicates"] == 0
    assert 0 < tap["count"] <= latency["measured_events"]
    assert 0 < tap["p50_ms"] <= tap["p95_ms"] <= tap["p99_ms"] <= tap["max_ms"]
    assert alerts["missing"] == 0 and alerts["duplicates"] == 0
    assert latency["append"]["calls"] >= 1


@pytest.mark.parametrize("kind", ["memory", "embedded"])
def test_pipeline_benchmark_result_is_consistent(
    kind: str, tmp_path: Path, model: FraudModel, expected_alerts: int
) -> None:
    url = (
        f"memory://bench-pipeline-{uuid.uuid4().hex[:8]}"
        if kind == "memory"
        else f"embedded://{tmp_path}/data"
    )
    result = run_pipeline_benchmark(
        url, events=N, model=model, rate=2_000, duration_s=1.0, warmup_s=0.5, keep_topics=True
    )
    orjson.loads(to_json(result))  # JSON-ready

    assert (result["benchmark"], result["broker"], result["backend"]) == ("pipeline", url, kind)
    assert (result["events"], result["workers"], result["partitions"]) == (N, 1, 4)
    assert result["guarantee"] == "exactly_once" and result["velocity"] is True
    assert result["model"] == model.name and result["history_events"] is None
    assert result["machine"]["cores"] >= 1 and result["python"] and result["versions"]["eventml"]
    assert len(result["runs"]) == 1

    pipeline = result["pipeline"]
    _check_side(result["runs"][0]["pipeline"])
    assert pipeline["alerts"] == expected_alerts  # exactly the offline model's alerts
    assert pipeline["outputs"] == pipeline["alerts"] + pipeline["velocity_alerts"]
    assert pipeline["consistent"] is True

    base = result["baselines"]["log"]
    _check_side(result["runs"][0]["baselines"]["log"])
    assert base["outputs"] == N
    assert result["ratio"]["log"] == pytest.approx(pipeline["eps"] / base["eps"], rel=1e-2)
    assert result["ratio_target_baseline"] == "log"

    _check_latency(result["latency"], 2_000)

    checks = result["targets"]["checks"]
    if kind == "memory":
        assert checks == {} and result["targets"]["met"] is None
    else:
        assert set(checks) == {"pipeline_eps", "ratio", "latency_p99_ms"}
        assert checks["ratio"]["value"] == result["ratio"]["log"]
        assert checks["latency_p99_ms"]["value"] == result["latency"]["tap"]["p99_ms"]
        assert result["targets"]["met"] == all(c["met"] for c in checks.values())

    # the outputs it reported are the records in the log (topics kept)
    topics = result["runs"][0]["topics"]
    with open_log(url) as log:
        ends = log.end_offsets(topics["alerts"])
        assert sum(ends.values()) == pipeline["alerts"]
        assert sum(log.end_offsets(topics["velocity"]).values()) == pipeline["velocity_alerts"]
        lat = result["latency"]
        tapped = sum(log.end_offsets(lat["topics"]["tap"]).values())
        assert lat["tap_every"] == 10 and 0 < tapped < lat["events"]
        # alerts of the warm-up are in the topic too, but not measured
        assert sum(log.end_offsets(lat["topics"]["alerts"]).values()) >= lat["alerts"]["count"]


def test_two_worker_processes_and_cleanup(
    tmp_path: Path, model: FraudModel, expected_alerts: int
) -> None:
    url = f"embedded://{tmp_path}/data"
    result = run_pipeline_benchmark(
        url, events=N, workers=2, model=model, latency=False, repeat=2, statistic="median"
    )
    assert result["workers"] == 2 and result["latency"] is None
    for run in result["runs"]:
        for side in (run["pipeline"], run["baselines"]["log"]):
            # every record committed once; a refused commit (rebalance) repeats its batch
            assert side["processed"] >= N and side["eps"] > 0
        assert run["pipeline"]["alerts"] == expected_alerts
    assert result["pipeline"]["consistent"] is True
    assert result["pipeline"]["eps"] == float(
        np.median([r["pipeline"]["eps"] for r in result["runs"]])
    )
    assert result["targets"]["checks"]["latency_p99_ms"]["met"] is None  # not measured
    with open_log(url) as log:
        assert log.list_topics() == []  # everything the benchmark made is gone


def test_validation_runs_both_pipelines(
    tmp_path: Path, model: FraudModel, expected_alerts: int
) -> None:
    url = f"embedded://{tmp_path}/data"
    result = run_pipeline_benchmark(
        url, events=N, model=model, latency=False, baseline=False, repeat=2, validate=True
    )
    orjson.loads(to_json(result))  # JSON-ready
    v = result["validation"]
    assert set(v) >= {"plain_eps", "validated_eps", "ratio", "target", "met", "dead_letters"}
    assert v["plain_eps"] == result["pipeline"]["eps"] > 0 and v["validated_eps"] > 0
    assert v["ratio"] == pytest.approx(v["validated_eps"] / v["plain_eps"], rel=1e-2)
    assert v["target"] == 0.8 and v["met"] == (v["ratio"] >= 0.8)
    assert v["dead_letters"] == 0 and len(v["run_ratios"]) == 2
    assert v["validated"]["alerts"] == expected_alerts and v["validated"]["consistent"] is True
    orders = []
    for run in result["runs"]:
        validated = run["validation"]["pipeline"]
        for side in (run["pipeline"], validated):
            assert side["processed"] == N and side["commits_refused"] == 0
            assert side["dead_letters"] == 0 and side["alerts"] == expected_alerts
        orders.append(run["validation"]["order"])
    assert orders == [["plain", "validated"], ["validated", "plain"]]  # alternating
    checks = result["targets"]["checks"]
    assert checks["validation_ratio"]["value"] == v["ratio"]
    assert checks["validation_dead_letters"] == {"max": 0, "value": 0, "met": True}
    with open_log(url) as log:  # the runs' topics and the contract's subject are gone
        assert [t for t in log.list_topics() if t.startswith(result["topics"]["prefix"])] == []
        assert SchemaRegistry(log).subjects(deleted=True) == []


def test_bad_settings_raise(model: FraudModel) -> None:
    with pytest.raises(BenchmarkError, match="events must be >= 1"):
        run_pipeline_benchmark("memory://", events=0, model=model)
    with pytest.raises(BenchmarkError, match="one process"):
        run_pipeline_benchmark("memory://", events=10, workers=2, model=model)
    with pytest.raises(BenchmarkError, match="rate > 0"):
        run_pipeline_benchmark("memory://", events=10, rate=0, model=model)


def test_cli_prints_one_json_object(
    model: FraudModel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("eventml.bench.pipeline.train_demo_model", lambda *a: model)
    args = ["bench", "pipeline", "-b", "memory://", "-n", "500", "--no-latency", "--json"]
    code = main(args)
    out, _ = capsys.readouterr()
    assert code == 0
    result = orjson.loads(out)
    assert result["events"] == 500 and result["pipeline"]["processed"] == 500
    assert result["history_events"] == 100_000 and result["latency"] is None
    assert result["validation"] is None


def test_cli_table(
    model: FraudModel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("eventml.bench.pipeline.train_demo_model", lambda *a: model)
    code = main(
        [
            "bench",
            "pipeline",
            "-b",
            "memory://",
            "-n",
            "500",
            "--rate",
            "1000",
            "--duration",
            "0.5",
            "--warmup",
            "0.2",
            "--tap-every",
            "0",
            "--no-velocity",
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    assert "fraud pipeline" in out and "log pass-through" in out and "p99 ms" in out


def test_cli_table_with_validation(
    model: FraudModel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("eventml.bench.pipeline.train_demo_model", lambda *a: model)
    args = ["bench", "pipeline", "-b", "memory://", "-n", "500", "--no-latency", "--validate"]
    code = main([*args, "--no-baseline"])
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert code == 0
    assert "validated pipeline" in out and "dead letters 0" in out
    assert "target validation_ratio >= 0.8" in out and "target validation_dead_letters" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events", "0"], "--events must be >= 1"),
        (["--workers", "0"], "--workers must be >= 1"),
        (["--rate", "0"], "--rate must be > 0"),
        (["--guarantee", "twice"], "--guarantee must be"),
    ],
)
def test_cli_bad_input_is_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bench", "pipeline", "--broker", "memory://", *args])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


@pytest.mark.kafka
def test_kafka_pipeline_against_bare_confluent_kafka(
    kafka_bootstrap: str, model: FraudModel, expected_alerts: int
) -> None:
    url = f"kafka://{kafka_bootstrap}"
    result = run_pipeline_benchmark(
        url, events=N, model=model, rate=2_000, duration_s=1.0, warmup_s=0.5
    )
    assert set(result["baselines"]) == {"log", "confluent_kafka"}
    _check_side(result["runs"][0]["pipeline"])
    for name in ("log", "confluent_kafka"):
        _check_side(result["runs"][0]["baselines"][name])
    assert result["pipeline"]["alerts"] == expected_alerts
    assert result["ratio_target_baseline"] == "confluent_kafka"
    assert result["targets"]["checks"]["ratio"]["value"] == result["ratio"]["confluent_kafka"]
    assert result["settings"]["producer"]["acks"] == "all"
    _check_latency(result["latency"], 2_000)
    with open_log(url) as log:
        assert not [t for t in log.list_topics() if t.startswith(result["topics"]["prefix"])]
