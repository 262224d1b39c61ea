"""Building dead-letter records (pure).

Provenance header names are stable (tools and replays read them); values are UTF-8:

==============================  ===================================================
``eventml.dlq.source.<field>``  where the record came from, one header per field:
                                ``topic``, ``partition``, ``offset``, ``group``,
                                ``operator``, ``timestamp_ms`` from the engine;
                                ``topic``, ``input``, ``line``, ``stage`` from
                                ``eventml produce``
``eventml.dlq.error.class``     the exception's qualified class name
``eventml.dlq.error.message``   its message, secrets masked, at most 500 characters
``eventml.dlq.error.kind``      ``permanent``, ``transient`` or ``fatal`` (when known)
``eventml.dlq.attempts``        calls made before giving up
``eventml.dlq.at_ms``           when it was dead-lettered, epoch milliseconds
==============================  ===================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from eventml.deadletter.retry import ErrorKind
from eventml.log.base import Headers, Message

DLQ_PREFIX = "eventml.dlq."
SOURCE_PREFIX = f"{DLQ_PREFIX}source."
ERROR_CLASS = f"{DLQ_PREFIX}error.class"
ERROR_MESSAGE = f"{DLQ_PREFIX}error.message"
ERROR_KIND = f"{DLQ_PREFIX}error.kind"
ATTEMPTS = f"{DLQ_PREFIX}attempts"
AT_MS = f"{DLQ_PREFIX}at_ms"
INVALID_INPUT = "eventml.InvalidInput"
"""The error class recorded when the error is given as text (e.g. a malformed input line)."""

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
    kind: ErrorKind | None = None,
) -> Headers:
    """Provenance headers for a dead letter (names in the module docstring).

    ``source`` names where it came from (e.g. topic/partition/offset/group/operator,
    or file/line for CLI input); ``kind`` is the failure's classification
    (see :func:`eventml.deadletter.classify`).
    """
    if isinstance(error, BaseException):
        error_class = f"{type(error).__module__}.{type(error).__qualname__}"
        text = str(error)
    else:
        error_class, text = INVALID_INPUT, error
    headers = [(f"{SOURCE_PREFIX}{k}", str(v).encode()) for k, v in source.items()]
    headers += [
        (ERROR_CLASS, error_class.encode()),
        (ERROR_MESSAGE, redact(text).encode()),
    ]
    if kind is not None:
        headers.append((ERROR_KIND, kind.encode()))
    headers += [
        (ATTEMPTS, str(attempts).encode()),
        (AT_MS, str(now_ms).encode()),
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
    kind: ErrorKind | None = None,
) -> Message:
    """A dead-letter message: the original bytes and headers plus provenance.

    Provenance headers already on the original (it was a dead letter before) are
    dropped first, so a record carries one provenance: the latest.
    """
    extra = provenance(error=error, source=source, attempts=attempts, now_ms=now_ms, kind=kind)
    kept = tuple(h for h in headers if not h[0].startswith(DLQ_PREFIX))
    return Message(value=value, key=key, headers=kept + extra)
