"""The record of dead letters replayed one by one: a compacted topic ``TOPIC.dlq.replayed``.

Replaying a whole dead-letter topic is marked by the committed offsets of the replay group
(:data:`eventml.deadletter.REPLAY_GROUP`): everything below them was replayed. A replay of
chosen ids leaves holes, so each is recorded here instead, key ``PARTITION:OFFSET``, value
``{"to", "at_ms"}``, in the transaction that appends it. Every replay skips what is below
the group's offsets or recorded here; a replay of everything tombstones the records it
passes (the offsets cover them from then on).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from eventml.log.base import Log, UnknownTopic

LEDGER_SUFFIX = ".replayed"
ID_PATTERN = re.compile(r"([0-9]{1,9}):([0-9]{1,18})")  # ASCII digits only, as the API's pattern

Id = tuple[int, int]
"""A dead letter's place in its topic: (partition, offset)."""


def format_id(partition: int, offset: int) -> str:
    return f"{partition}:{offset}"


def ledger_topic(dlq: str) -> str:
    """The compacted topic recording the dead letters of ``dlq`` replayed by id."""
    return f"{dlq}{LEDGER_SUFFIX}"


def read_ledger(log: Log, dlq: str) -> dict[Id, dict[str, Any]]:
    """The dead letters of ``dlq`` recorded as replayed by id (latest record per key wins;
    a record without a value removes its key)."""
    from eventml.deadletter.replay import read_records

    ledger = ledger_topic(dlq)
    try:
        log.describe_topic(ledger)
    except UnknownTopic:
        return {}
    out: dict[Id, dict[str, Any]] = {}
    for r in read_records(log, ledger):
        m = ID_PATTERN.fullmatch((r.key or b"").decode("ascii", "replace"))
        if m is None:
            continue
        key = (int(m[1]), int(m[2]))
        if r.value is None:
            out.pop(key, None)
            continue
        try:
            out[key] = orjson.loads(r.value)
        except orjson.JSONDecodeError:
            out[key] = {}  # still recorded as replayed: what matters is the key
    return out
