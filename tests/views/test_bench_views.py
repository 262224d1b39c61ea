"""The view rebuild benchmark runs end to end (small; the 1M-event figure is run on demand)."""

from __future__ import annotations

import pytest

from eventml.bench.views import run
from tests.views.conftest import ViewDb


def test_the_rebuild_benchmark_reports_events_per_second(view_db: ViewDb) -> None:
    db = view_db.where if isinstance(view_db.where, str) else None
    result = run(3_000, keys=40, partitions=2, max_batch=500, db=db)
    assert result["events"] == 3_000 and result["batches"] >= 6
    assert result["rebuild_events_per_s"] > 0 and "met" in result["target"]
    assert result["store"] == view_db.kind.replace("postgres", "postgresql")


@pytest.mark.parametrize("args", [["--events", "0"], ["--max-batch", "0"]])
def test_the_bench_command_checks_its_options(args: list[str]) -> None:
    from typer.testing import CliRunner

    from eventml.cli.bench import bench_app

    result = CliRunner().invoke(bench_app, ["views", *args])
    assert result.exit_code == 2 and "must be >= 1" in result.output
