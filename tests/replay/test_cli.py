"""`eventml replay` and `eventml diff` as a user runs them: real processes, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from eventml.log import open_log

from .helpers import STEP_MS, T0, append_payments, payments, run_live
from .rules import rules_app

ROOT = Path(__file__).resolve().parents[2]
FROM, TO = "2025-11-25T02:00:00Z", "2025-11-25T04:00:00Z"  # payments 1000..1999


def eventml(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EVENTML_BROKER"}
    return subprocess.run([sys.executable, "-m", "eventml", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"embedded://{tmp_path_factory.mktemp('cli')}/data"
    with open_log(url) as log:
        append_payments(log, "payments", payments(3000))
        run_live(rules_app(100.0, broker=url), log, 3000)
    return url


def test_replay_then_diff(broker: str) -> None:
    same = eventml("replay", "--app", "tests.replay.rules:app", "--from", FROM, "--to", TO,
                   "--into", "same", "--broker", broker, "--json")
    assert same.returncode == 0, same.stderr
    report = orjson.loads(same.stdout)
    assert report["events"] == 1000 and report["read"] == {"payments": 1000}
    assert report["topics"] == {"alerts": "same.alerts", "seen": "same.seen"}

    diff = eventml("diff", "alerts", "same.alerts", "--from", FROM, "--to", TO, "--broker", broker,
                   "--json")
    assert diff.returncode == 0, diff.stderr
    d = orjson.loads(diff.stdout)
    assert (d["added"], d["removed"]) == (0, 0) and d["common"] > 0
    assert d["baseline"]["duplicates"] == d["candidate"]["duplicates"] == 0

    start, end = str(T0 + 1000 * STEP_MS), "2025-11-25T04:00:00+00:00"  # epoch ms, offset
    cand = eventml("replay", "--app", "tests.replay.rules:candidate", "--from", start, "--to", end,
                   "--into", "lower", "--broker", broker)
    assert cand.returncode == 0, cand.stderr
    assert "1000 events in" in cand.stdout and "lower.alerts" in cand.stdout
    table = eventml("diff", "alerts", "lower.alerts", "--from", FROM, "--to", TO, "--broker", broker)
    assert table.returncode == 0, table.stderr
    assert "removed 0" in table.stdout and "added e.g. tx-" in table.stdout

    again = eventml("replay", "--app", "tests.replay.rules:app", "--from", FROM, "--to", TO,
                    "--into", "same", "--broker", broker)
    one_line_error(again, "sandbox 'same' was used before", "--reset")
    reset = eventml("replay", "--app", "tests.replay.rules:app", "--from", "-100000d", "--to", "now",
                    "--into", "same", "--reset", "--broker", broker, "--json")
    assert reset.returncode == 0, reset.stderr
    assert orjson.loads(reset.stdout)["events"] == 3000


@pytest.mark.parametrize(("args", "needles"), [
    (("--app", "tests.replay.rules:nope"), ("has no attribute 'nope'",)),
    (("--app", "no_such_module:app"), ("cannot import 'no_such_module'",)),
    (("--from", TO, "--to", FROM), ("must be before",)),
    (("--from", "yesterday"), ("cannot read time 'yesterday'",)),
    (("--to", "2025-11-25T04:00:00"), ("no timezone",)),
    (("--into", "a.b"), ("invalid sandbox name 'a.b'",)),
    (("--into", "payments"), ("prefix of live topic 'payments'",)),
])
def test_replay_bad_arguments(broker: str, args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    given = dict(zip(args[::2], args[1::2], strict=True))
    options = {"--app": "tests.replay.rules:app", "--from": FROM, "--to": TO, "--into": "bad",
               **given}
    flat = [x for kv in options.items() for x in kv]
    one_line_error(eventml("replay", *flat, "--broker", broker), *needles)


def test_missing_topics_are_one_line_errors(tmp_path: Path, broker: str) -> None:
    empty = f"embedded://{tmp_path}/empty"
    one_line_error(eventml("replay", "--app", "tests.replay.rules:app", "--from", FROM, "--to", TO,
                           "--into", "x", "--broker", empty), "topic 'payments' does not exist")
    one_line_error(eventml("diff", "alerts", "nope", "--broker", broker),
                   "topic 'nope' does not exist")
    one_line_error(eventml("diff", "alerts", "alerts", "--labels", "nope", "--broker", broker),
                   "topic 'nope' does not exist")
    one_line_error(eventml("diff", "alerts", "alerts", "--from", "soon", "--broker", broker),
                   "cannot read time 'soon'")
    one_line_error(eventml("diff", "alerts", "alerts", "--from", TO, "--to", FROM, "--broker", broker),
                   "must be before")
