"""The inference benchmark runs end to end at a tiny size and reports well-formed results
(no timing assertions)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from eventml.bench import BenchmarkError, to_json
from eventml.bench.inference import run
from eventml.cli.app import main

pytest.importorskip("sklearn")


def test_result_is_well_formed(tmp_path: Path) -> None:
    result = run(f"embedded://{tmp_path}/data", events=1_500, features=4, max_batch=500,
                 per_event_calls=20, train_rows=400, profile=True)
    assert result["benchmark"] == "inference" and result["events"] == 1_500
    assert result["passthrough"]["events_per_s"] > 0
    assert set(result["models"]) == {"logreg", "hgb"}
    for r in result["models"].values():
        pipe = r["pipeline"]
        assert pipe["predictions_per_s"] > 0 and 0 < pipe["model_share"] <= 1
        assert pipe["mean_batch"] <= 500 and pipe["profile"]
        assert r["raw_batched"]["predictions_per_s"] > 0 and r["per_event"]["calls"] == 20
        assert r["pipeline_vs_per_event"] > 0
    checks = result["targets"]["checks"]
    assert len(checks) == 4 and result["targets"]["met"] == all(c["met"] for c in checks.values())
    orjson.loads(to_json(result))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(BenchmarkError, match="events"):
        run(events=0)
    with pytest.raises(BenchmarkError, match="models"):
        run(events=10, models=("svm",))


def test_cli_prints_one_json_object(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["bench", "inference", "-n", "600", "--features", "3", "--per-event-calls", "5",
                 "-m", "logreg", "--json", "-b", f"embedded://{tmp_path}/data"])
    assert code == 0
    result = orjson.loads(capsys.readouterr().out)
    assert set(result["models"]) == {"logreg"}


def test_cli_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["bench", "inference", "-n", "600", "--features", "3", "--per-event-calls", "5",
                 "-b", f"embedded://{tmp_path}/data"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "inference: 600 events" in out and "target hgb pipeline / per-event" in out
