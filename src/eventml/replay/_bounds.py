"""Which polled records a replay processes (pure): the window's, nothing else.

Per live input partition the replay fixes ``[start, end)`` offsets before it starts
(``offsets_for_time`` of the window's bounds), so it ends even while the topic
grows. Stream sources keep the records in that range whose timestamp is in the
window (an out-of-order record inside the range but outside the window is
skipped too). Tables keep everything before the end: the rows in force when the
window starts are state. Sandbox topics (read back by the app) pass untouched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from eventml.log.base import Record, TopicPartition
from eventml.replay._time import TimeWindow


class Admission:
    """The ``admit`` filter a replay gives its worker; counts what it keeps and skips."""

    def __init__(
        self,
        window: TimeWindow,
        starts: Mapping[TopicPartition, int],
        ends: Mapping[TopicPartition, int],
        tables: frozenset[str] = frozenset(),
    ) -> None:
        self.window = window
        self.starts = dict(starts)
        self.ends = dict(ends)
        self.tables = tables
        self.read: Counter[str] = Counter()  # records processed, per live topic
        self.skipped: Counter[str] = Counter()  # polled but outside the window, per live topic

    def __call__(self, records: list[Record]) -> list[Record]:
        kept: list[Record] = []
        ends, starts, window, tables = self.ends, self.starts, self.window, self.tables
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            end = ends.get(tp)
            if end is None:  # a sandbox topic
                kept.append(r)
            elif (starts[tp] <= r.offset < end
                  and (r.topic in tables or window.start_ms <= r.timestamp_ms < window.end_ms)):
                self.read[r.topic] += 1
                kept.append(r)
            else:
                self.skipped[r.topic] += 1
        return kept
