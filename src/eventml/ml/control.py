"""Alias changes as control events: how every running worker learns that ``name@alias`` moved.

:func:`move_alias` points the alias at a version in the registry *and* appends an
:class:`~eventml.ml.records.AliasChange` (a ``model.alias`` CloudEvent) to the one-partition
internal topic :data:`~eventml.ml.records.CONTROL_TOPIC`. Workers scoring ``name@alias``
follow that topic with an :class:`AliasWatcher`: each reads it from its own position (no
consumer group: every worker must see every change), at most every ``every_ms``, and
switches at its next batch boundary.

Order of truth: the registry is written first, the event second. A watcher takes the
topic's end offset first and reads the registry second, so a change is either already in
what it read from the registry or at an offset it will read. With one partition, the
topic's order is the order of the changes; concurrent :func:`move_alias` calls on the
same alias are ordered by the topic (run one mover at a time if the registry must agree).

>>> from eventml.testing import MemoryLog
>>> log = MemoryLog()
>>> watcher = AliasWatcher(log, every_ms=0)
>>> watcher.start()
0
>>> publish_alias_change(log, AliasChange("fraud", "champion", 2, previous=1, at_ms=5))
>>> [(c.model, c.alias, c.version) for c in watcher.poll()]
[('fraud', 'champion', 2)]
>>> watcher.poll()
[]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from eventml.clock import ClockMs, system_clock_ms
from eventml.events import Event, to_message
from eventml.log import Log, TopicPartition, TopicSpec, open_log
from eventml.ml.records import ALIAS_TYPE, CONTROL_TOPIC, AliasChange

__all__ = [
    "DEFAULT_WATCH_MS",
    "AliasWatcher",
    "alias_changes",
    "move_alias",
    "publish_alias_change",
]

#: How often a worker looks for new control events, at most (a look costs one end-offset query).
DEFAULT_WATCH_MS = 100
_SOURCE = "eventml/models"
_READ_TIMEOUT_S = 10.0


def _ensure_topic(log: Log) -> None:
    log.create_topic(TopicSpec(CONTROL_TOPIC, 1), exist_ok=True)


def publish_alias_change(log: Log, change: AliasChange) -> None:
    """Append ``change`` to the control topic (created with one partition if missing)."""
    _ensure_topic(log)
    event = Event(
        type=ALIAS_TYPE,
        data=change.to_dict(),
        source=_SOURCE,
        key=f"{change.model}@{change.alias}",
        time=datetime.fromtimestamp(change.at_ms / 1000, UTC),
        subject=f"{change.model}@{change.alias}",
    )
    log.append(CONTROL_TOPIC, [to_message(event)])


def move_alias(
    registry: Any,
    log: Log | str,
    name: str,
    alias: str,
    version: int,
    *,
    reason: str = "",
    clock: ClockMs = system_clock_ms,
) -> AliasChange:
    """Point ``name@alias`` at ``version`` in ``registry`` (a :class:`~eventml.ml.ModelRegistry`)
    and publish the change on ``log`` (a :class:`~eventml.log.Log` or a broker URL), so workers
    scoring ``name@alias`` switch at their next batch boundary. Returns the change."""
    previous = registry.set_alias(name, alias, version)
    change = AliasChange(model=name, alias=alias, version=version, previous=previous,
                         reason=reason, at_ms=clock())
    if isinstance(log, str):
        with open_log(log) as opened:
            publish_alias_change(opened, change)
    else:
        publish_alias_change(log, change)
    return change


def _decode(value: bytes | None) -> AliasChange | None:
    if not value:
        return None
    try:
        return AliasChange.from_dict(orjson.loads(value))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None  # not an alias change (the topic is internal, but never trust a record)


def _is_alias_change(headers: Any) -> bool:
    for name, value in headers or ():
        if name == "ce_type":
            return bool(value == ALIAS_TYPE.encode())
    return False


def alias_changes(log: Log, *, start: int = 0) -> list[AliasChange]:
    """Every alias change on the control topic from offset ``start``, in order (empty if the
    topic does not exist): for audits and checkers."""
    if CONTROL_TOPIC not in log.list_topics():
        return []
    return AliasWatcher(log, every_ms=0)._read(start)[0]


class AliasWatcher:
    """Reads new alias changes from the control topic, from its own position.

    ``log`` is a :class:`~eventml.log.Log` or a broker URL (opened on :meth:`start`, in the
    calling process: give a URL when workers are forked). :meth:`poll` looks at the
    topic at most every ``every_ms`` (by ``monotonic``, seconds); in between it returns
    ``[]`` at the cost of one clock read.
    """

    def __init__(
        self,
        log: Log | str,
        *,
        every_ms: float = DEFAULT_WATCH_MS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if every_ms < 0:
            raise ValueError(f"every_ms must be >= 0, got {every_ms}")
        self._source = log
        self.log: Log | None = None if isinstance(log, str) else log
        self.every_s = every_ms / 1000
        self._monotonic = monotonic
        self.position: int | None = None
        self.looks = 0  # how many times the topic was looked at
        self._next = 0.0

    def start(self) -> int:
        """Open the log if needed, make sure the topic exists, and start at its end: only
        changes published from now on are returned. Returns the position."""
        if self.log is None:
            assert isinstance(self._source, str)
            self.log = open_log(self._source)
        _ensure_topic(self.log)
        self.position = self.log.end_offsets(CONTROL_TOPIC).get(0, 0)
        self._next = self._monotonic() + self.every_s
        return self.position

    def poll(self, *, force: bool = False) -> list[AliasChange]:
        """Changes published since the last poll (``[]`` if it is not time to look yet,
        unless ``force``)."""
        if self.position is None:
            self.start()
        now = self._monotonic()
        if now < self._next and not force:
            return []
        self._next = now + self.every_s
        self.looks += 1
        changes, self.position = self._read(self.position or 0)
        return changes

    def _read(self, start: int) -> tuple[list[AliasChange], int]:
        from eventml.state._tail import read_rows

        log = self.log
        assert log is not None
        end = log.end_offsets(CONTROL_TOPIC).get(0, 0)
        if end <= start:
            return [], start
        rows, reached = read_rows(log, TopicPartition(CONTROL_TOPIC, 0), _READ_TIMEOUT_S, start, end)
        out = []
        for _key, value, headers in rows:
            if _is_alias_change(headers):
                change = _decode(value)
                if change is not None:
                    out.append(change)
        return out, reached

    def close(self) -> None:
        """Close the log if this watcher opened it."""
        if self.log is not None and isinstance(self._source, str):
            self.log.close()
            self.log = None
            self.position = None
