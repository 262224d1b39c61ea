"""The log benchmark runs end to end and reports well-formed results (no timing assertions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from eventml.bench import BenchmarkError, run_log_benchmark, to_json
from eventml.cli.app import main

N = 2_000


def _broker(kind: str, tmp_path: Path) -> str:
    return "memory://" if kind == "memory" else f"embedded://{tmp_path}/data"


def _check_side(side: dict[str, Any]) -> None:
    assert side["read_events"] == N
    for key in ("append_eps", "read_eps", "read_steady_eps", "append_mb_s", "read_mb_s"):
        assert side[key] > 0, key
    for key in ("append_s", "read_s", "read_startup_s"):
        assert side[key] >= 0, key


@pytest.mark.parametrize("kind", ["memory", "embedded"])
def test_log_benchmark_result_is_well_formed(kind: str, tmp_path: Path) -> None:
    url = _broker(kind, tmp_path)
    result = run_log_benchmark(url, events=N, batch_size=500, partitions=2, repeat=2)

    assert result["broker"] == url
    assert result["backend"] == kind
    assert (result["events"], result["value_bytes"], result["batch_size"]) == (N, 200, 500)
    assert result["statistic"] == "best" and len(result["runs"]) == 2
    _check_side(result)
    assert result["machine"]["cores"] >= 1 and result["python"]
    if kind == "memory":
        assert result["baseline"] is None and result["ratio"] is None
        assert result["targets"] == {"checks": {}, "met": None}
    else:
        _check_side(result["baseline"])
        assert result["settings"] == {"durability": "fsync"}
        assert result["ratio"]["append"] == pytest.approx(
            result["append_eps"] / result["baseline"]["append_eps"], rel=1e-2
        )
        checks = result["targets"]["checks"]
        assert set(checks) == {"append_eps", "read_eps", "append_ratio", "read_ratio"}
        assert result["targets"]["met"] == all(c["met"] for c in checks.values())
    assert best_of_runs(result, "append_eps") == result["append_eps"]
    orjson.loads(to_json(result))  # JSON-ready


def best_of_runs(result: dict[str, Any], key: str) -> float:
    return float(max(run["eventml"][key] for run in result["runs"]))


@pytest.mark.kafka
def test_kafka_benchmark_against_bare_confluent_kafka(kafka_bootstrap: str) -> None:
    url = f"kafka://{kafka_bootstrap}"
    result = run_log_benchmark(url, events=N, batch_size=500, partitions=2, keys=50)
    assert result["backend"] == "kafka"
    _check_side(result)
    _check_side(result["baseline"])
    assert result["settings"]["producer"]["acks"] == "all"
    assert set(result["targets"]["checks"]) == {"append_ratio", "read_ratio"}
    from eventml.log import open_log

    with open_log(url) as log:
        assert not [t for t in log.list_topics() if t.startswith("bench-")]


def test_benchmark_leaves_no_topics_behind(tmp_path: Path) -> None:
    from eventml.log import open_log

    url = f"embedded://{tmp_path}/data"
    run_log_benchmark(url, events=100, batch_size=30, keys=7, partitions=3)
    with open_log(url) as log:
        assert log.list_topics() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # baseline file removed


def test_median_and_no_baseline(tmp_path: Path) -> None:
    result = run_log_benchmark(
        f"embedded://{tmp_path}/data?durability=fast",
        events=300,
        batch_size=100,
        repeat=3,
        statistic="median",
        baseline=False,
    )
    assert result["settings"] == {"durability": "fast"}
    assert result["baseline"] is None and result["ratio"] is None
    # without a baseline the ratios are not judged, so neither is the whole
    checks = result["targets"]["checks"]
    assert checks["append_ratio"] == {"min": 0.5, "value": None, "met": None}
    assert checks["append_eps"]["met"] in (True, False)
    assert result["targets"]["met"] in (None, False)
    values = sorted(run["eventml"]["read_eps"] for run in result["runs"])
    assert result["read_eps"] == values[1]


def test_bad_settings_raise() -> None:
    with pytest.raises(BenchmarkError, match="events must be >= 1"):
        run_log_benchmark("memory://", events=0)
    with pytest.raises(BenchmarkError, match="repeat"):
        run_log_benchmark("memory://", events=10, repeat=0)


def test_cli_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "log", "--broker", "memory://", "--events", str(N), "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    result = orjson.loads(out)
    assert result["events"] == N and result["read_events"] == N


def test_cli_table_and_out_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "result.json"
    code = main(
        [
            "bench",
            "log",
            "-b",
            "memory://",
            "-n",
            "500",
            "--batch-size",
            "100",
            "--out",
            str(out_file),
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    assert "append events/s" in out and "read events/s" in out
    assert orjson.loads(out_file.read_bytes())["read_events"] == 500


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--broker", "memory://", "--events", "0"], "--events must be >= 1"),
        (["--broker", "memory://", "--events", "10", "--repeat", "0"], "--repeat must be >= 1"),
        (["--broker", "nope://x", "--events", "10"], "unknown broker scheme"),
    ],
)
def test_cli_bad_input_is_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bench", "log", *args])
    out, err = capsys.readouterr()
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and message in err
