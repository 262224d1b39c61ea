"""The schema validation benchmark runs end to end and reports well-formed results
(no timing assertions)."""

from __future__ import annotations

import orjson
import pytest
from jsonschema import Draft7Validator

from eventml.bench import BenchmarkError, to_json
from eventml.bench.schema import EVENT_SCHEMA, invalid_events, run, sample_events
from eventml.cli.app import main

N = 2_000
MEASUREMENTS = {"loads", "loads_validate", "loads_jsonschema", "invalid_validate", "avro_decode"}


def test_result_is_well_formed() -> None:
    result = run(events=N)
    assert result["benchmark"] == "schema" and result["events"] == N
    assert 150 <= result["event_bytes"] <= 260  # a realistic ~200-byte event
    assert result["validator"] == "fastjsonschema"
    assert set(result["results"]) == MEASUREMENTS
    for name, row in result["results"].items():
        assert row["events"] == (N // 10 if name in ("loads_jsonschema", "invalid_validate") else N)
        assert row["us_per_event"] > 0 and row["events_per_s"] > 0 and row["seconds"] > 0
    assert result["valid_ok"] is True
    assert len(result["invalid_errors"]) == 4 and all(result["invalid_errors"])
    check = result["targets"]["checks"]["loads_validate_us"]
    assert check["max"] == 10.0 and check["met"] == (check["value"] <= 10.0)
    assert result["targets"]["met"] == check["met"]
    assert set(result["versions"]) == {"orjson", "fastjsonschema", "jsonschema", "fastavro"}
    orjson.loads(to_json(result))


def test_events_are_valid_and_broken_ones_are_not() -> None:
    reference = Draft7Validator(dict(EVENT_SCHEMA))
    good = sample_events(64)
    assert all(reference.is_valid(e) for e in good)
    assert not any(reference.is_valid(e) for e in invalid_events(good))


def test_bad_settings_raise() -> None:
    with pytest.raises(BenchmarkError, match="events must be >= 1"):
        run(events=0)


def test_cli_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "schema", "--events", "500", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    result = orjson.loads(out)
    assert result["events"] == 500 and set(result["results"]) == MEASUREMENTS


def test_cli_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "schema", "-n", "300"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "loads + compiled validator" in out and "target loads + validate" in out


def test_cli_bad_input_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "schema", "--events", "0"])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--events must be >= 1" in err
