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
                 per_event_calls=20, train_rows=400, hgb_trees=5, hgb_leaves=4, repeat=2,
                 live_rate=1_000, profile=True)
    assert result["benchmark"] == "inference" and result["events"] == 1_500
    assert result["repeat"] == 2 and len(result["passthrough"]["runs"]) == 2
    p = result["passthrough"]
    assert p["min"] <= p["events_per_s"] <= p["max"]
    assert set(result["models"]) == {"logreg", "hgb"}
    for r in result["models"].values():
        pipe = r["pipeline"]
        assert pipe["predictions_per_s"] > 0 and 0 < pipe["model_share"] <= 1
        assert pipe["mean_batch"] <= 500 and pipe["model_max_batch"] == 500 and pipe["profile"]
        # the drain starts at min_batch and doubles: the model saw 100, 200, 400, then 500s
        assert pipe["model_batches"] == {"<=128": 1, "<=256": 1, "<=512": 3}
        assert r["raw_batched"]["predictions_per_s"] > 0 and r["per_event"]["calls"] == 20
        assert r["pipeline_vs_per_event"] > 0 and len(r["pipeline_vs_per_event_runs"]) == 2
        assert 0.5 <= r["holdout_auc"] <= 1
    assert result["models"]["hgb"]["size"]["trees"] == 5
    assert result["models"]["hgb"]["size"]["leaves"] <= 5 * 4
    live = result["caught_up"]
    assert live["model"] == "logreg" and live["events"] == 1_000
    assert sum(live["model_batches"].values()) >= 2 and live["max_batch"] <= 500
    checks = result["targets"]["checks"]
    assert len(checks) == 4 and result["targets"]["met"] == all(c["met"] for c in checks.values())
    assert set(result["targets"]["met_by"]) == {f"{m} {t}" for m in ("logreg", "hgb")
                                                for t in ("predictions/s", "/ per-event")}
    orjson.loads(to_json(result))


def test_two_worker_processes_share_the_topic(tmp_path: Path) -> None:
    result = run(f"embedded://{tmp_path}/data", events=2_000, features=3, max_batch=400,
                 per_event_calls=5, train_rows=400, models=("logreg",), workers=2, live_rate=0)
    assert result["workers"] == 2 and result["partitions"] == 2 and "caught_up" not in result
    for forked in (result["forked_passthrough"], result["models"]["logreg"]["forked"]):
        assert forked["workers"] == 2 and forked["events_per_s"] > 0 and forked["vs_one_worker"] > 0
        per_worker = forked["per_worker"]
        assert [w["index"] for w in per_worker] == [0, 1]
        assert [w["records"] for w in per_worker] == [1_000, 1_000]  # a partition each
    model = result["models"]["logreg"]["forked"]["per_worker"]
    assert all(sum(w["model_batches"].values()) >= 1 for w in model)
    # the 2-worker run is judged against the targets too, with the one-thread per-event rate
    targets = result["targets"]
    two = targets["checks"]["logreg pipeline / per-event, 2 workers"]
    forked, single = result["models"]["logreg"]["forked"], result["models"]["logreg"]["per_event"]
    assert two["value"] == round(forked["events_per_s"] / single["predictions_per_s"], 1)
    assert targets["met"] == all(
        any(c["met"] for name, c in targets["checks"].items() if name.startswith(f"logreg pipeline {t}"))
        for t in ("predictions/s", "/ per-event"))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(BenchmarkError, match="events"):
        run(events=0)
    with pytest.raises(BenchmarkError, match="models"):
        run(events=10, models=("svm",))
    with pytest.raises(BenchmarkError, match="memory"):
        run("memory://x", events=10, workers=2)


def test_cli_prints_one_json_object(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["bench", "inference", "-n", "600", "--features", "3", "--per-event-calls", "5",
                 "-m", "logreg", "--live-rate", "0", "--json", "-b", f"embedded://{tmp_path}/data"])
    assert code == 0
    result = orjson.loads(capsys.readouterr().out)
    assert set(result["models"]) == {"logreg"}


def test_cli_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["bench", "inference", "-n", "600", "--features", "3", "--per-event-calls", "5",
                 "--hgb-trees", "5", "--live-rate", "500", "-b", f"embedded://{tmp_path}/data"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "inference: 600 events" in out and "target hgb pipeline / per-event" in out
    assert "caught up" in out


def test_cli_refuses_two_workers_on_memory(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "inference", "-n", "600", "--workers", "2", "-b", "memory://x"])
    _, err = capsys.readouterr()
    assert code != 0 and "memory://" in err and "Traceback" not in err
