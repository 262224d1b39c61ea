"""JSON lines to events: a CloudEvent object per line, or a plain object wrapped as data."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from eventml.events.binding import EventDecodeError, from_structured
from eventml.events.envelope import Event, utc_now


@dataclass(frozen=True, slots=True)
class LineOptions:
    """How a plain JSON object becomes an event."""

    type: str = "eventml.record"
    source: str = "eventml-cli"
    key_field: str | None = None
    time_field: str | None = None


@dataclass(frozen=True, slots=True)
class BadLine:
    number: int
    raw: bytes
    error: str


def parse_line(raw: bytes, options: LineOptions) -> Event:
    """One JSON line as an event; raises :class:`EventDecodeError` saying what is wrong."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise EventDecodeError(f"invalid JSON: {e}") from None
    if isinstance(obj, dict) and "specversion" in obj:
        return from_structured(obj)
    if not isinstance(obj, dict):
        raise EventDecodeError(f"expected a JSON object, got {type(obj).__name__}")
    return plain_event(obj, options)


def plain_event(obj: dict[str, Any], options: LineOptions, id: str | None = None) -> Event:
    """A plain JSON object as an event's data, its key and time read from the fields
    ``options`` names; a new id unless ``id`` is given. Raises :class:`EventDecodeError`."""
    key: str | None = None
    if options.key_field is not None:
        if obj.get(options.key_field) is None:
            raise EventDecodeError(f"no field {options.key_field!r} for the key (--key-field)")
        key = str(obj[options.key_field])
    time = (
        _parse_time(obj.get(options.time_field), options.time_field)
        if options.time_field is not None
        else utc_now()
    )
    if id is None:
        return Event(type=options.type, source=options.source, data=obj, key=key, time=time)
    return Event(type=options.type, source=options.source, data=obj, key=key, time=time, id=id)


def _parse_time(value: object, field: str) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return t if t.tzinfo else t.replace(tzinfo=UTC)
    raise EventDecodeError(
        f"field {field!r} (--time-field) must be epoch seconds/ms or RFC 3339, got {value!r}"
    )


def parse_lines(
    lines: Iterable[bytes], options: LineOptions
) -> Iterator[tuple[int, Event | BadLine]]:
    """Number and parse each non-blank line; bad lines come back as :class:`BadLine`."""
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        try:
            yield number, parse_line(stripped, options)
        except EventDecodeError as e:
            yield number, BadLine(number, raw.rstrip(b"\r\n"), str(e))
