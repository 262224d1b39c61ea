"""Building dead-letter records (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from eventml.log.base import Headers, Message

DLQ_PREFIX = "eventml.dlq."
_MAX_MESSAGE = 500
_SECRET = re.compile(
    r"(?i)\b(password|passwd|secret|token|api[_-]?key|authorization|bearer)\b(\s*[:=]\s*|\s+)(\S+)"
)


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic that goes with ``topic``."""
    return f"{topic}.dlq"


def redact(message: str) -> str:
    """``message`` with secret-looking values masked and its length bounded."""
    cleaned = _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***", message)
    return cleaned if len(cleaned) <= _MAX_MESSAGE else cleaned[: _MAX_MESSAGE - 3] + "..."


def provenance(
    *,
    error: BaseException | str,
    source: Mapping[str, str | int],
    attempts: int = 1,
    now_ms: int,
) -> Headers:
    """Provenance headers for a dead letter: ``source`` names where it came from
    (e.g. topic/partition/offset/group, or file/line for CLI input)."""
    if isinstance(error, BaseException):
        error_class = f"{type(error).__module__}.{type(error).__qualname__}"
        text = str(error)
    else:
        error_class, text = "eventml.InvalidInput", error
    headers = [(f"{DLQ_PREFIX}source.{k}", str(v).encode()) for k, v in source.items()]
    headers += [
        (f"{DLQ_PREFIX}error.class", error_class.encode()),
        (f"{DLQ_PREFIX}error.message", redact(text).encode()),
        (f"{DLQ_PREFIX}attempts", str(attempts).encode()),
        (f"{DLQ_PREFIX}at_ms", str(now_ms).encode()),
    ]
    return tuple(headers)


def dead_letter_message(
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: Headers = (),
    error: BaseException | str,
    source: Mapping[str, str | int],
    attempts: int = 1,
    now_ms: int,
) -> Message:
    """A dead-letter message: the original bytes and headers plus provenance."""
    extra = provenance(error=error, source=source, attempts=attempts, now_ms=now_ms)
    return Message(value=value, key=key, headers=tuple(headers) + extra)
