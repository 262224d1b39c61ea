"""`eventml bench drift` refuses bad options in one line (the full run is a benchmark, not a test:
its checks are run by `eventml bench drift`, which exits 1 when one is missed)."""

from __future__ import annotations

import pytest

from eventml.bench import BenchmarkError
from eventml.bench.drift import run
from eventml.cli.app import main


def test_bad_sizes_are_refused_before_any_work(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "drift", "-n", "10"])
    _, err = capsys.readouterr()
    assert code == 2 and "--events must be >= 50000" in err and "Traceback" not in err
    code = main(["bench", "drift", "--seeds", "0"])
    _, err = capsys.readouterr()
    assert code == 2 and "--seeds must be >= 1" in err
    with pytest.raises(BenchmarkError, match="stream events must be >= 10,000"):
        run(events=50_000, stream_events=5)
