"""State values as bytes, and changelog records to and from writes. Pure: no I/O.

Values are pickled (protocol 5), so a store holds any picklable Python value.
Unpickling runs code named by the data: state is trusted, app-private data,
written and read by the same application; never point a store at data from
elsewhere.

A changelog record is one write: key = the UTF-8 key, value = the pickled
value (``None``: a tombstone, the key was deleted), headers
``eventml.src_offset`` (the next input offset of the batch that wrote it, ASCII
decimal) and, for writes with a TTL time, ``eventml.time`` (event time in ms).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Sequence
from typing import Any

from eventml.log.base import Headers, Message
from eventml.state._table import Table, Writes

PROTOCOL = 5
SRC_OFFSET_HEADER = "eventml.src_offset"
TIME_HEADER = "eventml.time"

loads_value = pickle.loads

Row = tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]] | None]
"""What restore needs of a changelog record: ``(key, value, headers)`` (``None``: no headers)."""


def dump(value: Any) -> bytes:
    try:
        return pickle.dumps(value, PROTOCOL)
    except Exception as e:  # pickling raises many types (PicklingError, TypeError, ...)
        raise TypeError(f"state values must be picklable: {e}") from e


def changelog_messages(writes: Writes, partition: int, source_offset: int) -> list[Message]:
    """One message per write, all for ``partition`` of the changelog."""
    src = (SRC_OFFSET_HEADER, b"%d" % source_offset)
    plain: Headers = (src,)
    out: list[Message] = []
    for key, entry in writes.items():
        if entry is None:
            out.append(Message(None, key.encode(), plain, None, partition))
            continue
        value, time_ms = entry
        headers = plain if time_ms is None else (src, (TIME_HEADER, b"%d" % time_ms))
        out.append(Message(dump(value), key.encode(), headers, None, partition))
    return out


class Replay:
    """Folds changelog rows, oldest first, into a :class:`Table`, skipping uncommitted ones.

    A row whose ``eventml.src_offset`` is greater than ``committed_offset`` was
    written by a batch whose input offsets never committed: it is skipped. With
    ``committed_offset=None`` (no offset known) and for rows without the header,
    every row counts.
    """

    def __init__(self, committed_offset: int | None) -> None:
        self.committed_offset = committed_offset
        self.values: dict[str, Any] = {}
        self.times: dict[str, int] = {}
        self.rows = 0
        self.skipped = 0

    def feed(self, rows: Iterable[Row]) -> None:
        values, times = self.values, self.times
        committed = self.committed_offset
        loads = loads_value
        n = skipped = 0
        for key, value, headers in rows:
            n += 1
            src: int | None = None
            time_ms: int | None = None
            for name, raw in headers or ():
                if name == SRC_OFFSET_HEADER:
                    src = int(raw)
                elif name == TIME_HEADER:
                    time_ms = int(raw)
            if src is not None and committed is not None and src > committed:
                skipped += 1
                continue
            if key is None:
                continue
            k = key.decode()
            if value is None:
                values.pop(k, None)
                times.pop(k, None)
                continue
            values[k] = loads(value)
            if time_ms is None:
                times.pop(k, None)
            else:
                times[k] = time_ms
        self.rows += n
        self.skipped += skipped

    def table(self) -> Table:
        return Table(self.values, self.times)
