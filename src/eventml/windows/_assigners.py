"""Per-kind window assignment over one key's window accumulators (pure, in memory).

Each assigner updates ``windows`` (window -> accumulator) for one record and
reports what changed; the runtime turns that into emissions and expiry.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from ._aggregators import Aggregator
from ._specs import Hopping, Session, Sliding, Tumbling
from ._time import is_closed
from ._window import Window

V = TypeVar("V")
A = TypeVar("A")
R = TypeVar("R")
V_contra = TypeVar("V_contra", contravariant=True)


@dataclass(slots=True)
class Change:
    """What one record did to a key's windows."""

    changed: list[Window] = field(default_factory=list)
    created: list[Window] = field(default_factory=list)
    removed: list[Window] = field(default_factory=list)
    late: tuple[Window, ...] = ()


class Assigner(Protocol[V_contra, A]):
    def apply(
        self, windows: dict[Window, A], key: Hashable, t: int, value: V_contra, stream_time: int
    ) -> Change: ...

    def expire(self, stream_time: int) -> None: ...


class FixedAssigner(Generic[V, A, R]):
    """Tumbling and hopping windows."""

    def __init__(self, spec: Tumbling | Hopping, agg: Aggregator[V, A, R], grace_ms: int) -> None:
        self._spec, self._agg, self._grace = spec, agg, grace_ms

    def apply(
        self, windows: dict[Window, A], key: Hashable, t: int, value: V, stream_time: int
    ) -> Change:
        change = Change()
        late = []
        for window in self._spec.windows_for(t):
            if is_closed(window, stream_time, self._grace):
                late.append(window)
                continue
            if window in windows:
                acc = windows[window]
            else:
                acc = self._agg.initialize()
                change.created.append(window)
            windows[window] = self._agg.add(acc, value)
            change.changed.append(window)
        change.late = tuple(late)
        return change

    def expire(self, stream_time: int) -> None:
        pass


class SessionAssigner(Generic[V, A, R]):
    """Session windows: extend, create or merge one key's sessions."""

    def __init__(self, spec: Session, agg: Aggregator[V, A, R], grace_ms: int) -> None:
        self._spec, self._agg, self._grace = spec, agg, grace_ms

    def apply(
        self, windows: dict[Window, A], key: Hashable, t: int, value: V, stream_time: int
    ) -> Change:
        joined = sorted(w for w in windows if self._spec.joins(w, t))
        start = min([t, *(w.start_ms for w in joined)])
        end = max([t, *(w.end_ms for w in joined)])
        merged = Window(start, end, end_inclusive=True)
        if is_closed(merged, stream_time, self._grace):
            return Change(late=(merged,))
        acc = self._agg.initialize()
        for window in joined:
            acc = self._agg.merge(acc, windows.pop(window))
        windows[merged] = self._agg.add(acc, value)
        return Change(
            changed=[merged],
            created=[] if merged in joined else [merged],
            removed=[w for w in joined if w != merged],
        )

    def expire(self, stream_time: int) -> None:
        pass


class SlidingAssigner(Generic[V, A, R]):
    """Kafka Streams sliding windows (KIP-450), computed from buffered records.

    Kafka derives new windows' aggregates from neighbouring windows; here each
    key keeps its records (time order) while a future on-time record could
    still share a window with them (``t + diff + 1 + grace`` past stream
    time), and a new window's accumulator is folded from those records.
    """

    def __init__(self, spec: Sliding, agg: Aggregator[V, A, R], grace_ms: int) -> None:
        self._spec, self._agg, self._grace = spec, agg, grace_ms
        self._records: dict[Hashable, list[tuple[int, int, V]]] = {}
        self._expiry: list[tuple[int, int, Hashable]] = []
        self._seq = itertools.count()

    def _fold(self, records: list[tuple[int, int, V]], window: Window) -> A:
        lo = bisect.bisect_left(records, window.start_ms, key=lambda r: r[0])
        hi = bisect.bisect_right(records, window.end_ms, key=lambda r: r[0])
        acc = self._agg.initialize()
        for _, _, value in records[lo:hi]:
            acc = self._agg.add(acc, value)
        return acc

    def apply(
        self, windows: dict[Window, A], key: Hashable, t: int, value: V, stream_time: int
    ) -> Change:
        diff = self._spec.time_difference_ms
        left = self._spec.left_window(t)
        if is_closed(left, stream_time, self._grace):
            return Change(late=(left,))
        records = self._records.setdefault(key, [])
        seq = next(self._seq)
        bisect.insort(records, (t, seq, value), key=lambda r: (r[0], r[1]))
        heapq.heappush(self._expiry, (t + diff + 2 + self._grace, seq, key))
        change = Change()
        for window in sorted(windows):
            if window.contains(t):
                windows[window] = self._agg.add(windows[window], value)
                change.changed.append(window)
        times = sorted({r[0] for r in records if t - diff - 1 <= r[0] <= t + diff + 1})
        candidates = [left]
        if any(t < r <= t + diff + 1 for r in times):
            candidates.append(self._spec.right_window(t))
        candidates += [self._spec.right_window(r) for r in times if r < t]
        for window in sorted(set(candidates)):
            if window not in windows:
                windows[window] = self._fold(records, window)
                change.created.append(window)
                change.changed.append(window)
        change.changed.sort()
        return change

    def expire(self, stream_time: int) -> None:
        while self._expiry and self._expiry[0][0] <= stream_time:
            _, _, key = heapq.heappop(self._expiry)
            records = self._records.get(key)
            if records is None:
                continue
            horizon = stream_time - self._spec.time_difference_ms - 2 - self._grace
            drop = bisect.bisect_right(records, horizon, key=lambda r: r[0])
            del records[:drop]
            if not records:
                del self._records[key]

    def export_records(self, key: Hashable) -> list[tuple[int, int, V]]:
        """The records kept for ``key`` (for a state snapshot)."""
        return list(self._records.get(key, ()))

    def import_records(self, key: Hashable, records: list[tuple[int, int, V]]) -> None:
        """Take back records exported by :meth:`export_records`."""
        if not records:
            return
        self._records[key] = sorted(records, key=lambda r: (r[0], r[1]))
        diff = self._spec.time_difference_ms
        for t, seq, _ in records:
            heapq.heappush(self._expiry, (t + diff + 2 + self._grace, seq, key))
        top = max(r[1] for r in records) + 1
        current = next(self._seq)
        self._seq = itertools.count(max(top, current + 1))

    def buffered_records(self) -> int:
        """How many records are kept to build future windows."""
        return sum(len(r) for r in self._records.values())
