"""The view rebuild benchmark runs end to end (small; the 1M-event figure is run on demand)."""

from __future__ import annotations

from eventml.bench.views import run


def test_the_rebuild_benchmark_reports_events_per_second() -> None:
    result = run(3_000, keys=40, partitions=2, max_batch=500)
    assert result["events"] == 3_000 and result["batches"] >= 6
    assert result["rebuild_events_per_s"] > 0 and "met" in result["target"]
