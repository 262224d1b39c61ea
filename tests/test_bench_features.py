"""`eventml bench features` at a small scale: the structure, and that retrieval filled rows
(no timing asserted: benchmarks measure, tests check behaviour)."""

from __future__ import annotations

from eventml.bench.features import run


def test_small_run_reports_retrieval_and_lookups() -> None:
    result = run(events=20_000, rows=2_000, keys=200)
    h, o = result["historical"], result["online"]
    assert h["rows"] == 2_000 and h["events_read"] == 20_000 and h["features"] == 10
    assert 0 < h["filled"] <= h["rows"] and h["peak_rss_mb"] > 0
    assert o["warm"]["lookups"] == 50_000 and o["cold"]["lookups"] == 200
    assert set(result["targets"]) == {"at_target_scale", "historical_s", "historical_rss_mb",
                                      "online_p99_us"}
    assert result["targets"]["at_target_scale"] is False
