"""`eventml bench state` runs end to end, reports well-formed results and cleans up (no timing assertions)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from eventml.bench import BenchmarkError
from eventml.bench.state import run_state_benchmark
from eventml.cli.app import main
from eventml.log import open_log


@pytest.mark.parametrize("kind", ["memory", "embedded"])
def test_state_benchmark_result_is_well_formed(kind: str, tmp_path: Path) -> None:
    url = "memory://" if kind == "memory" else f"embedded://{tmp_path}/data"
    result = run_state_benchmark(url, keys=3_000, batch_size=1_000)
    assert result["benchmark"] == "state" and result["keys"] == 3_000
    assert result["state_backend"] == {"memory": "MemoryStateBackend", "embedded": "SqliteStateBackend"}[kind]
    assert result["restore_s"] > 0 and result["restore_keys_per_s"] > 0 and result["write_s"] > 0
    checks = result["targets"]["checks"]
    if kind == "embedded":
        assert set(checks) == {"restore_keys_per_s"}
        assert checks["restore_keys_per_s"]["min"] == 100_000
        rows = sqlite3.connect(tmp_path / "data" / "log.db").execute("SELECT count(*) FROM state")
        assert rows.fetchone() == (0,)  # the benchmark's store was dropped
    else:
        assert checks == {} and result["targets"]["met"] is None


@pytest.mark.kafka
def test_state_benchmark_on_kafka_leaves_no_topic(kafka_bootstrap: str) -> None:
    url = f"kafka://{kafka_bootstrap}"
    result = run_state_benchmark(url, keys=5_000, batch_size=2_500)
    assert result["state_backend"] == "ChangelogStateBackend" and result["restore_s"] > 0
    with open_log(url) as log:
        assert not [t for t in log.list_topics() if t.startswith("bench-state-")]


def test_bad_settings_raise() -> None:
    with pytest.raises(BenchmarkError, match="keys must be >= 1"):
        run_state_benchmark("memory://", keys=0)


def test_cli_prints_one_json_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "state", "--broker", f"embedded://{tmp_path}/d", "--keys", "500", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    result = orjson.loads(out)
    assert result["keys"] == 500 and result["backend"] == "embedded"


def test_cli_table_and_out_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "r.json"
    code = main(["bench", "state", "-b", "memory://", "-n", "300", "--out", str(out_file)])
    out, _ = capsys.readouterr()
    assert code == 0 and "restore keys/s" in out
    assert orjson.loads(out_file.read_bytes())["keys"] == 300


def test_cli_bad_input_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "state", "--broker", "memory://", "--keys", "0"])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--keys must be >= 1" in err
