"""Structured logs: one JSON object per line, with secrets masked.

:class:`JsonFormatter` writes ``{"ts", "level", "logger", "msg", ...}``: ``ts`` in UTC
(RFC 3339, milliseconds), the record's extras (``extra={"topic": ..., "partition": ...,
"offset": ...}``) as fields, ``trace_id`` / ``span_id`` when an OpenTelemetry span is
current, and an exception as ``exc_type`` / ``exc_message`` / ``exc_at`` fields (never a
multi-line traceback). uvicorn's access lines become ``client``, ``method``, ``path``,
``http_version`` and ``status`` fields.

Secrets never reach the output: eventml API keys (``eml_<id>_<secret>``) keep only their
id (``eml_<id>_***``), values after ``password=``, ``token:``, ``api_key=``,
``Authorization: Bearer``... are masked, and extras named like a secret are dropped to
``***`` whatever they hold.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

import orjson

LogFormat = Literal["json", "text"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "text")
MASK = "***"

_KEY_TOKEN = re.compile(r"\beml_([a-z2-7]{8})_[A-Za-z0-9_-]+")
_SECRET_LABELS = r"password|passwd|secret|token|api[_-]?key|apikey|authorization|bearer|x-api-key"
_LABELLED = re.compile(
    rf"(?i)\b({_SECRET_LABELS})\b(\"?\s*[:=]\s*\"?|\s+)((?:bearer|basic|apikey)\s+)?([^\s&,;\"']+)"
)
_SECRET_NAME = re.compile(rf"(?i)({_SECRET_LABELS}|credential|dsn)")
# what every LogRecord has: the rest of its __dict__ are the caller's extras (but
# uvicorn's color_message, the message again with terminal colours)
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "color_message"}
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


def redact(text: str) -> str:
    """``text`` with API keys and labelled secrets masked."""
    if "eml_" in text:
        text = _KEY_TOKEN.sub(rf"eml_\1_{MASK}", text)
    return _LABELLED.sub(lambda m: f"{m[1]}{m[2]}{m[3] or ''}{MASK}", text)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clean(value: Any) -> Any:
    """An extra's value, JSON-ready, its strings redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): MASK if _SECRET_NAME.search(str(k)) else _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace"))
    return redact(str(value))


def _current_span_ids() -> tuple[str, str] | None:
    """The current OpenTelemetry span's (trace id, span id), if OpenTelemetry is loaded."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


class JsonFormatter(logging.Formatter):
    """Formats each record as one JSON object on one line (see the module docstring).

    Accepts (and ignores) the arguments of ``logging.Formatter`` and uvicorn's
    formatters, so it can replace them in a ``dictConfig``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            out["msg"] = "request"
            out.update(zip(_ACCESS_FIELDS, map(_clean, record.args), strict=True))
        else:
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: keep what was given
                message = f"{record.msg} {record.args}"
            out["msg"] = redact(message)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = MASK if _SECRET_NAME.search(key) else _clean(value)
        if "trace_id" not in out:
            ids = _current_span_ids()
            if ids is not None:
                out["trace_id"], out["span_id"] = ids
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            out["exc_type"] = type(error).__qualname__
            out["exc_message"] = redact(_one_line(str(error)))
            tb = record.exc_info[2]
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is not None:
                code = tb.tb_frame.f_code
                out["exc_at"] = f"{code.co_filename}:{tb.tb_lineno} in {code.co_name}"
        elif record.exc_text:
            out["exc_message"] = redact(_one_line(record.exc_text))
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """Plain lines (``time level logger: message``), secrets masked as in JSON."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return TextFormatter()
    raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")


def setup(log_format: LogFormat, level: int | str = logging.INFO, *,
          stream: IO[str] | None = None) -> logging.Handler:
    """Send the process's logs (the root logger's) to ``stream`` (default stderr) in
    ``log_format``, at ``level`` and above; replaces the handlers a previous call added."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.set_name("eventml")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "eventml"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.captureWarnings(True)
    return handler


def uvicorn_formatters(log_format: LogFormat) -> dict[str, dict[str, Any]]:
    """The ``formatters`` of uvicorn's logging config for ``log_format`` (JSON: both
    the server's and the access log's lines as JSON; text: uvicorn's, secrets masked)."""
    if log_format == "json":
        spec = {"()": f"{__name__}.JsonFormatter"}
        return {"default": dict(spec), "access": dict(spec)}
    if log_format == "text":  # uvicorn's own lines and colours, secrets masked
        from uvicorn.config import LOGGING_CONFIG

        own = LOGGING_CONFIG["formatters"]
        home = "eventml.observe._uvicorn_logging"
        return {"default": {**own["default"], "()": f"{home}.RedactingDefaultFormatter"},
                "access": {**own["access"], "()": f"{home}.RedactingAccessFormatter"}}
    raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
