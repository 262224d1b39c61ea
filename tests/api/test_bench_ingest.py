"""`eventml bench ingest` at a tiny size: it runs end to end, counts every event, and a
count that does not add up is caught."""

from __future__ import annotations

import orjson
import pytest

from eventml.bench.ingest import ACKNOWLEDGED, check_counts, transactions
from eventml.cli.app import main


def test_the_ingest_benchmark_runs_small(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "ingest", "-n", "600", "--batch", "50", "--rate", "200", "--duration", "1",
                 "--warmup", "0.2", "-c", "4", "--batch-connections", "2", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = orjson.loads(out)
    assert result["benchmark"] == "ingest" and result["settings"]["batch"] == 50
    single, batched, baseline = result["single"], result["batched"], result["baseline"]
    http = single["http"]
    assert http["requests"] == 200 and http["ok"] == 200 and http["errors"] == 0, http
    assert 0 < http["p50_ms"] <= http["p99_ms"] <= http["p999_ms"] <= http["max_ms"]
    assert single["counts"] == {"sent": 240, "acknowledged": 240, "appended": 240, "ok": True}
    assert batched["http"]["requests"] == 12 and batched["http"]["errors"] == 0
    assert batched["counts"] == {"sent": 600, "acknowledged": 600, "appended": 600, "ok": True}
    assert batched["events_per_s"] > 0 and batched["http"]["p99_ms"] > 0
    assert baseline["events"] == 600 and baseline["append_eps"] > 0
    assert baseline["single_append"]["calls"] == 240
    assert result["ratio"] == pytest.approx(batched["events_per_s"] / baseline["append_eps"], rel=0.01)
    targets = result["targets"]
    assert targets["at_target_scale"] is False and targets["counts"]["met"] is True
    assert targets["single_p99_ms"]["value"] == http["p99_ms"]
    assert targets["batched_eps"] == {"target": 20_000.0, "value": batched["events_per_s"],
                                      "met": batched["events_per_s"] >= 20_000}


def test_a_count_that_does_not_add_up_is_caught() -> None:
    before, after = {0: 10, 1: 5}, {0: 13, 1: 7}  # 5 appended
    assert check_counts(before, after, 5)["ok"] is True
    assert check_counts(before, after, 5, sent=5) == {"sent": 5, "acknowledged": 5, "appended": 5,
                                                      "ok": True}
    assert check_counts(before, after, 4)["ok"] is False  # a duplicate, or an unacknowledged append
    assert check_counts(before, after, 6)["ok"] is False  # an acknowledged event lost
    assert check_counts(before, after, 5, sent=6)["ok"] is False  # an event sent, never acknowledged


def test_events_are_card_transactions_of_about_200_bytes() -> None:
    txs = transactions(100, seed=7)
    sizes = [len(orjson.dumps(tx)) for tx in txs]
    assert all(170 <= n <= 230 for n in sizes) and all(tx["card"].startswith("c") for tx in txs)
    assert transactions(3, seed=7, start=5) != transactions(3, seed=7)  # batches differ from singles
    assert ACKNOWLEDGED in orjson.dumps({"duplicate": False})


def test_bad_options_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "ingest", "--batch", "5000"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--batch" in err[0]
    assert main(["bench", "ingest", "--broker", "memory://"]) != 0
    assert "--broker" in capsys.readouterr().err
