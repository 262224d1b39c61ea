"""What a store knows of one partition: per aggregate, its version, latest snapshot and the
events after it (pure: records in, no I/O).

Records are folded in log order; folding is idempotent (an event whose version the
aggregate already has is skipped), so a store may fold its own writes at commit and
read them again later. A snapshot is used once the events up to its version are known
(on Kafka a transaction's records become visible partition by partition).

Memory: per aggregate one small entry, the raw bytes of its latest snapshot, and the
raw events after it: at most ``snapshot_every`` events with snapshots, every event of
the aggregate without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

Headers = Sequence[tuple[str, bytes]] | None

TYPE = "ce_type"
ID = "ce_id"
TIME = "ce_time"
VERSION = "eventml.aggregate.version"


@dataclass(frozen=True, slots=True)
class RawEvent:
    version: int
    type: str
    event_id: str
    time_ms: int
    value: bytes


@dataclass(slots=True)
class Entry:
    """One aggregate: its version, latest usable snapshot and the events after it."""

    version: int = 0
    snapshot_version: int = 0
    snapshot: bytes | None = None  # the raw snapshot record value
    tail: list[RawEvent] = field(default_factory=list)
    pending: tuple[int, bytes] | None = None  # a snapshot ahead of the known events

    def add_event(self, event: RawEvent) -> bool:
        """Fold one event; False if it was already known."""
        if event.version <= self.version:
            return False
        self.version = event.version
        self.tail.append(event)
        if self.pending is not None and self.pending[0] <= self.version:
            self.add_snapshot(*self.pending)
        return True

    def add_snapshot(self, version: int, value: bytes) -> None:
        if version <= self.snapshot_version:
            return
        if version > self.version:
            self.pending = version, value
            return
        self.pending = None
        self.snapshot_version, self.snapshot = version, value
        self.tail = [e for e in self.tail if e.version > version]


def header(headers: Headers, name: str) -> bytes | None:
    for k, v in headers or ():
        if k == name:
            return v
    return None


def raw_event(value: bytes | None, headers: Headers) -> RawEvent | None:
    """The event in a record of the events topic, or None if it is not one of ours."""
    version = header(headers, VERSION)
    if version is None or value is None:
        return None
    return RawEvent(
        int(version),
        (header(headers, TYPE) or b"").decode(),
        (header(headers, ID) or b"").decode(),
        int(header(headers, TIME) or 0),
        value,
    )


def event_headers(event: RawEvent) -> list[tuple[str, bytes]]:
    return [
        (TYPE, event.type.encode()),
        (ID, event.event_id.encode()),
        (TIME, str(event.time_ms).encode()),
        (VERSION, str(event.version).encode()),
    ]


def crosses(snapshot_every: int | None, before: int, after: int) -> bool:
    """Whether versions ``before`` → ``after`` pass a multiple of ``snapshot_every``."""
    return bool(snapshot_every) and before // snapshot_every < after // snapshot_every  # type: ignore[operator]
