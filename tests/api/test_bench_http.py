"""`eventml bench http` at a tiny size: it runs end to end and reports what it promises."""

from __future__ import annotations

import orjson
import pytest

from eventml.bench._loadgen import complete as _complete
from eventml.cli.app import main


def test_the_http_benchmark_runs_small(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "http", "-n", "3000", "--rate", "200", "--duration", "1", "--warmup", "0.2",
                 "-c", "4", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = orjson.loads(out)
    assert result["benchmark"] == "http" and result["entities"] > 100
    for phase in (result["features"], result["views"]):
        http = phase["http"]
        assert http["requests"] == 200 and http["ok"] == 200 and http["errors"] == 0, http
        assert 0 < http["p50_ms"] <= http["p99_ms"] <= http["max_ms"]
        assert http["achieved_rate"] > 100
        assert phase["in_process"]["lookups"] == 240 and phase["in_process"]["p99_us"] > 0
    target = result["targets"]["http_p99_ms"]
    assert target["target"] == 5.0 and target["value"] == result["features"]["http"]["p99_ms"]
    assert result["targets"]["at_target_scale"] is False


def test_bad_options_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "http", "--rate", "0"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--rate" in err[0]


def test_responses_are_framed_by_content_length() -> None:
    head = b"HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\ncontent-type: application/json\r\n\r\n"
    assert _complete(bytearray(head + b"{}")) is None
    assert _complete(bytearray(head + b"{...}")) == 404
    assert _complete(bytearray(b"HTTP/1.1 200 OK\r\ncontent-le")) is None
