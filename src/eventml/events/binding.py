"""CloudEvents Kafka binary binding: attributes as ``ce_*`` headers, data as the value.

The same binding is used on every backend, so a record moved from the embedded
log to Kafka (or read by a non-eventml Kafka client) means the same event.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson

from eventml.events.envelope import JSON, SPEC_VERSION, Event, utc_now
from eventml.log.base import Headers, Message, Record


class EventDecodeError(ValueError):
    """A record is not a valid CloudEvent; the message names the missing or bad part."""


_REQUIRED = ("ce_id", "ce_source", "ce_type")
_OPTIONAL = {"ce_subject": "subject", "ce_dataschema": "dataschema"}


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return True
    base = content_type.split(";", 1)[0].strip().lower()
    return base == JSON or base.endswith("+json")


def encode_data(event: Event) -> bytes | None:
    data = event.data
    if data is None:
        return None
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if _is_json(event.datacontenttype):
        return orjson.dumps(data)
    if isinstance(data, str):
        return data.encode()
    raise TypeError(
        f"event {event.id}: data of type {type(data).__name__} needs a JSON content type "
        f"or bytes, got datacontenttype={event.datacontenttype!r}"
    )


def key_bytes(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


def to_message(event: Event) -> Message:
    """The log message for ``event`` (binary binding); its timestamp is the event time."""
    headers: list[tuple[str, bytes]] = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event.id.encode()),
        ("ce_source", event.source.encode()),
        ("ce_type", event.type.encode()),
        ("ce_time", event.time.isoformat().encode()),
    ]
    if event.subject is not None:
        headers.append(("ce_subject", event.subject.encode()))
    if event.dataschema is not None:
        headers.append(("ce_dataschema", event.dataschema.encode()))
    if event.datacontenttype is not None:
        headers.append(("content-type", event.datacontenttype.encode()))
    for name, value in event.extensions.items():
        headers.append((f"ce_{name}", value.encode()))
    headers.extend(event.headers)
    return Message(
        value=encode_data(event),
        key=key_bytes(event.key),
        headers=tuple(headers),
        timestamp_ms=event.time_ms,
    )


def from_record(record: Record, *, decode_data: bool = True) -> Event:
    """The event carried by ``record``; raises :class:`EventDecodeError` if it is not one."""
    return _from_parts(record.key, record.value, record.headers, decode_data, record.timestamp_ms)


def _from_parts(
    key: bytes | None, value: bytes | None, headers: Headers, decode_data: bool, timestamp_ms: int
) -> Event:
    """Without ``ce_time`` (a record from a non-CloudEvents producer that still set the
    required attributes) the event time is the record timestamp."""
    attrs: dict[str, str] = {}
    extensions: dict[str, str] = {}
    other: list[tuple[str, bytes]] = []
    content_type: str | None = None
    try:
        for name, raw in headers:
            if name.startswith("ce_"):
                text = raw.decode()
                if name in _REQUIRED or name in _OPTIONAL or name in ("ce_time", "ce_specversion"):
                    attrs[name] = text
                else:
                    extensions[name[3:]] = text
            elif name == "content-type":
                content_type = raw.decode()
            else:
                other.append((name, raw))
    except UnicodeDecodeError as e:
        raise EventDecodeError(f"header {name!r} is not UTF-8: {e}") from None
    missing = [h for h in _REQUIRED if h not in attrs]
    if missing:
        raise EventDecodeError(f"not a CloudEvent: missing header(s) {', '.join(missing)}")
    if attrs.get("ce_specversion", SPEC_VERSION) != SPEC_VERSION:
        raise EventDecodeError(f"unsupported CloudEvents specversion {attrs['ce_specversion']!r}")
    data: Any = value
    if decode_data and value is not None and _is_json(content_type):
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError as e:
            raise EventDecodeError(f"data is not valid JSON: {e}") from None
    if "ce_time" in attrs:
        time = _parse_rfc3339(attrs["ce_time"], "ce_time")
    else:
        time = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    try:
        return Event(
            type=attrs["ce_type"],
            data=data,
            source=attrs["ce_source"],
            key=key.decode() if key is not None and _is_utf8(key) else key,
            id=attrs["ce_id"],
            time=time,
            subject=attrs.get("ce_subject"),
            datacontenttype=content_type,
            dataschema=attrs.get("ce_dataschema"),
            headers=tuple(other),
            extensions=extensions,
        )
    except ValueError as e:
        raise EventDecodeError(str(e)) from None


def _parse_rfc3339(text: str, name: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise EventDecodeError(f"{name} {text!r} is not RFC 3339") from None
    if t.tzinfo is None:
        raise EventDecodeError(f"{name} {text!r} has no timezone")
    return t


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode()
    except UnicodeDecodeError:
        return False
    return True


# -- structured mode (one JSON object per event), for JSON lines and HTTP -----------


def to_structured(event: Event) -> dict[str, Any]:
    """The CloudEvents JSON format of ``event`` (bytes data as ``data_base64``); the key
    travels as the ``partitionkey`` extension, as in the CloudEvents Kafka binding."""
    out: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "time": event.time.isoformat(),
    }
    for name in ("subject", "datacontenttype", "dataschema"):
        value = getattr(event, name)
        if value is not None:
            out[name] = value
    out.update(event.extensions)
    if isinstance(event.data, bytes):
        out["data_base64"] = base64.b64encode(event.data).decode()
    elif event.data is not None:
        out["data"] = event.data
    if event.key is not None:
        out["partitionkey"] = event.key if isinstance(event.key, str) else event.key.decode("latin-1")
    return out


_ATTRIBUTES = {"specversion", "id", "source", "type", "time", "subject", "datacontenttype",
               "dataschema", "data", "data_base64", "partitionkey"}


def from_structured(obj: Any) -> Event:
    """The event in a CloudEvents JSON object; raises :class:`EventDecodeError` naming the fault."""
    if not isinstance(obj, dict):
        raise EventDecodeError(f"expected a JSON object, got {type(obj).__name__}")
    if obj.get("specversion") != SPEC_VERSION:
        raise EventDecodeError(f"specversion must be '1.0', got {obj.get('specversion')!r}")
    missing = [a for a in ("id", "source", "type") if not isinstance(obj.get(a), str) or not obj[a]]
    if missing:
        raise EventDecodeError(f"missing or empty attribute(s): {', '.join(missing)}")
    time = _parse_rfc3339(str(obj["time"]), "time") if "time" in obj else utc_now()
    data: Any = obj.get("data")
    if "data_base64" in obj:
        try:
            data = base64.b64decode(obj["data_base64"], validate=True)
        except (ValueError, TypeError):
            raise EventDecodeError("data_base64 is not valid base64") from None

    def text(name: str, default: str | None = None) -> str | None:
        return str(obj[name]) if name in obj else default

    key = obj.get("partitionkey")
    try:
        return Event(
            type=obj["type"],
            data=data,
            source=obj["source"],
            key=None if key is None else str(key),
            id=obj["id"],
            time=time,
            subject=text("subject"),
            datacontenttype=text("datacontenttype", JSON if "data_base64" not in obj else None),
            dataschema=text("dataschema"),
            extensions={k: str(v) for k, v in obj.items() if k not in _ATTRIBUTES},
        )
    except ValueError as e:
        raise EventDecodeError(str(e)) from None
