"""Structured logs: one JSON object per line, exceptions on one line, no API key printed."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider

from eventml.cli.app import main
from eventml.cli.serve import _log_config
from eventml.engine import App, Worker
from eventml.log import Message, open_log
from eventml.observe.logging import JsonFormatter, TextFormatter, redact, setup

KEY = "eml_abcdefgh_0123456789abcdefABCDEF0123456789"  # the shape of an eventml API key


def _record(msg: str, *args: Any, level: int = logging.INFO, name: str = "eventml.test",
            exc: bool = False, **extra: Any) -> logging.LogRecord:
    exc_info = sys.exc_info() if exc else None
    record = logging.LogRecord(name, level, __file__, 10, msg, args, exc_info)
    record.__dict__.update(extra)
    return record


def _line(record: logging.LogRecord) -> dict[str, Any]:
    text = JsonFormatter().format(record)
    assert "\n" not in text
    parsed: dict[str, Any] = orjson.loads(text)
    return parsed


def test_a_line_is_one_json_object_with_the_fields_and_extras() -> None:
    out = _line(_record("committed %d records", 42, topic="payments", partition=3, offset=1234))
    assert out["msg"] == "committed 42 records"
    assert out["level"] == "info" and out["logger"] == "eventml.test"
    assert out["ts"].endswith("Z") and out["ts"][10] == "T"
    assert (out["topic"], out["partition"], out["offset"]) == ("payments", 3, 1234)
    assert "trace_id" not in out  # no span is current


def test_a_multi_line_message_stays_one_line() -> None:
    text = JsonFormatter().format(_record("first\nsecond"))
    assert text.count("\n") == 0 and orjson.loads(text)["msg"] == "first\nsecond"


def test_an_exception_is_a_type_and_a_message_on_one_line() -> None:
    try:
        raise ValueError("bad amount\n  in row 7")
    except ValueError:
        out = _line(_record("scoring failed", level=logging.ERROR, exc=True))
    assert out["exc_type"] == "ValueError"
    assert out["exc_message"] == "bad amount in row 7"
    assert out["exc_at"].startswith(__file__) and "test_an_exception" in out["exc_at"]
    assert "Traceback" not in orjson.dumps(out).decode()


def test_through_a_logger_with_exc_info() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("eventml.test.exc")
    log.addHandler(handler)
    cards: dict[str, int] = {}
    try:
        try:
            cards["missing"]
        except KeyError:
            log.exception("lookup failed", extra={"key": "c1"})
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    out = orjson.loads(lines[0])
    assert (out["level"], out["exc_type"], out["exc_message"], out["key"]) == (
        "error", "KeyError", "'missing'", "c1")


def test_an_api_key_is_never_printed() -> None:
    lines = [
        JsonFormatter().format(_record(f"refused key {KEY} for POST /v1/x")),
        JsonFormatter().format(_record("request", authorization=f"Bearer {KEY}")),
        JsonFormatter().format(_record("client", api_key=KEY, config={"token": KEY, "n": 1})),
        JsonFormatter().format(_record("headers %s", {"Authorization": f"Bearer {KEY}"})),
        JsonFormatter().format(_record("dsn", where=f"https://x/?api_key={KEY}&a=1")),
        JsonFormatter().format(_record("nested", extra_keys=[KEY, "ok"])),
        TextFormatter().format(_record(f"text too: {KEY}")),
    ]
    try:
        raise RuntimeError(f"upstream refused password=hunter2 and {KEY}")
    except RuntimeError:
        lines.append(JsonFormatter().format(_record("failed", exc=True)))
    for line in lines:
        assert "0123456789abcdefABCDEF" not in line, line
        assert "hunter2" not in line
    first = orjson.loads(lines[0])
    assert first["msg"] == "refused key eml_abcdefgh_*** for POST /v1/x"  # the id stays: it names the key
    assert orjson.loads(lines[2])["config"] == {"token": "***", "n": 1}


def test_redact_leaves_ordinary_text_alone() -> None:
    for text in ("committed 500 records of payments (partition 3) in 12 ms",
                 "tokens per batch: 4; secrets rotated: no; key c1 scored 0.93"):
        assert redact(text) == text


def test_the_current_span_ids_are_fields() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        out = _line(_record("inside"))
    ctx = span.get_span_context()
    assert out["trace_id"] == f"{ctx.trace_id:032x}" and out["span_id"] == f"{ctx.span_id:016x}"


def test_serve_json_config_makes_uvicorn_access_lines_json() -> None:
    config = _log_config("info", "json")
    assert config["loggers"]["eventml"]["handlers"] == ["default"]
    formatters = config["formatters"]
    assert formatters["access"]["()"] == formatters["default"]["()"] == "eventml.observe.logging.JsonFormatter"
    access = _record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/v1/topics?api_key={KEY}",
                     "1.1", 401, name="uvicorn.access")
    out = _line(access)
    assert out["msg"] == "request"
    assert (out["client"], out["method"], out["http_version"], out["status"]) == ("127.0.0.1:5000", "GET", "1.1", 401)
    assert out["path"] == "/v1/topics?api_key=***"
    # uvicorn's coloured copy of a message is left out
    assert "color_message" not in _line(_record("Started", color_message="\x1b[36mStarted\x1b[0m"))



def test_serve_text_config_keeps_uvicorns_lines_and_masks_keys_in_them() -> None:
    import importlib

    def made(spec: dict[str, Any]) -> logging.Formatter:  # as logging.config makes it
        spec = dict(spec)
        module, _, name = spec.pop("()").rpartition(".")
        made: logging.Formatter = getattr(importlib.import_module(module), name)(**spec)
        return made

    formatters = _log_config("info")["formatters"]
    access, default = made(formatters["access"]), made(formatters["default"])
    line = access.format(_record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                                 f"/v1/topics?api_key={KEY}", "1.1", 401, name="uvicorn.access"))
    assert KEY not in line and "0123456789abcdef" not in line
    assert '"GET /v1/topics?api_key=*** HTTP/1.1" 401' in line  # uvicorn's own shape
    assert KEY not in default.format(_record("Authorization: Bearer %s", KEY, name="uvicorn.error"))


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        for h in root.handlers:
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)
        logging.captureWarnings(False)


def test_setup_sends_the_process_logs_as_json(restore_root_logging: None) -> None:
    stream = io.StringIO()
    setup("json", "INFO", stream=stream)
    setup("json", "INFO", stream=stream)  # a second call replaces the first handler
    logging.getLogger("eventml.engine.worker").info("batch committed", extra={"records": 3})
    logging.getLogger("eventml.engine.worker").debug("not shown at INFO")
    (line,) = stream.getvalue().splitlines()
    assert orjson.loads(line)["records"] == 3


_LOGGED = logging.getLogger("tests.observe.app")


def _score(value: dict[str, Any]) -> dict[str, Any]:
    _LOGGED.warning("scored with key %s", KEY, extra={"card": value["card"]})
    return value


def run_app(url: str) -> App:
    app = App("jsonlogs", broker=url, auto_offset_reset="earliest")
    app.stream(app.topic("jl-in")).map(_score).to(app.topic("jl-out"))
    return app


def test_eventml_run_log_format_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     restore_root_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"embedded://{tmp_path}/data"
    Worker(run_app(url)).close()
    with open_log(url) as log:
        log.append("jl-in", [Message(orjson.dumps({"card": "c1"}), None, (("ce_id", b"e1"),))])
    monkeypatch.setattr(sys.modules[__name__], "APP", run_app(url), raising=False)
    code = main(["run", f"{__name__}:APP", "--idle-exit", "0.5", "--log-format", "json"])
    assert code in (0, None)
    lines = [orjson.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    (scored,) = [x for x in lines if x["logger"] == "tests.observe.app"]
    assert scored["msg"] == "scored with key eml_abcdefgh_***" and scored["card"] == "c1"


def test_eventml_run_refuses_an_unknown_log_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "x:y", "--log-format", "yaml"]) != 0
    err = capsys.readouterr().err.strip()
    assert "--log-format must be json or text" in err and len(err.splitlines()) == 1
