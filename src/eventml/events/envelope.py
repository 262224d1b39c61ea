"""The event envelope: CloudEvents 1.0 attributes plus key, headers and data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from eventml.events.ids import new_event_id

SPEC_VERSION = "1.0"
JSON = "application/json"


def utc_now() -> datetime:
    """The current time, timezone-aware (UTC). Producers stamp events with it by default."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Event:
    """One event: what happened (``type``), where (``source``), when (``time``), and its ``data``.

    ``key`` routes the event to a partition (same key, same partition, same order);
    ``id`` is the idempotency key, time-ordered (UUIDv7) by default.
    ``headers`` are transport headers that are not CloudEvents attributes;
    ``extensions`` are CloudEvents extension attributes (string-valued).
    """

    type: str
    data: Any = None
    source: str = "eventml"
    key: str | bytes | None = None
    id: str = field(default_factory=new_event_id)
    time: datetime = field(default_factory=utc_now)
    subject: str | None = None
    datacontenttype: str | None = JSON
    dataschema: str | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    extensions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.type:
            raise ValueError("event type must be a non-empty string, e.g. 'card.transaction'")
        if not self.source:
            raise ValueError("event source must be a non-empty string, e.g. '/pos/terminal-7'")
        if self.time.tzinfo is None:
            raise ValueError("event time must be timezone-aware (use datetime.now(UTC))")

    @property
    def time_ms(self) -> int:
        """Event time in milliseconds since the epoch (the log record's timestamp)."""
        return int(self.time.timestamp() * 1000)

    def with_key(self, key: str | bytes | None) -> Event:
        return replace(self, key=key)
