"""Windowed aggregation: frozen config plus the runtime logic built from it."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from ._aggregators import Aggregator
from ._assigners import Assigner, FixedAssigner, SessionAssigner, SlidingAssigner
from ._results import Emitted, Late, Output, Retracted
from ._specs import Hopping, Session, Sliding, Tumbling, WindowSpec
from ._time import StreamTime
from ._window import Window

V = TypeVar("V")
A = TypeVar("A")
R = TypeVar("R")

EmitMode = Literal["update", "final"]
"""``"update"``: a window's new result on every change; ``"final"``: once, when it closes."""


@dataclass(frozen=True, slots=True)
class WindowedAggregation(Generic[V, A, R]):
    """Aggregate each key's values per window (config only; see :meth:`build`).

    ``grace_ms`` is how long after its end a window still accepts
    out-of-order records: it closes when ``stream_time >= end + grace``.

    Emit modes: ``"update"`` returns an :class:`Emitted` for every window a
    record changed; when session windows merge (or a session grows, which
    changes its bounds) it first returns a :class:`Retracted` tombstone for
    each window that no longer exists, then the merged window, as Kafka
    Streams forwards null for merged-away sessions. ``"final"`` returns one
    :class:`Emitted` per window when stream time closes it, and never
    retracts (merged-away windows were never emitted).

    Late records come back as :class:`Late` and are counted; a record near a
    session that has already closed starts a new session rather than
    reopening the emitted one.
    """

    window: WindowSpec
    aggregator: Aggregator[V, A, R]
    grace_ms: int = 0
    emit: EmitMode = "update"

    def __post_init__(self) -> None:
        if self.grace_ms < 0:
            raise ValueError(f"grace_ms must be >= 0, got {self.grace_ms}")
        if self.emit not in ("update", "final"):
            raise ValueError(f"emit must be 'update' or 'final', got {self.emit!r}")

    def build(self) -> WindowedAggregationLogic[V, A, R]:
        """Fresh runtime logic for one partition, with empty state."""
        return WindowedAggregationLogic(self)


class WindowedAggregationLogic(Generic[V, A, R]):
    """Per-partition runtime state: stream time and each key's open windows.

    Pure: time comes only from the records (and :meth:`advance`). Window
    state lives in a plain dict and is dropped when the window closes, i.e.
    it is retained for ``size + grace`` after the window starts.
    """

    def __init__(self, config: WindowedAggregation[V, A, R]) -> None:
        self.config = config
        self._stream_time = StreamTime()
        self._state: dict[Hashable, dict[Window, A]] = {}
        self._closing: list[tuple[int, int, Hashable, Window]] = []
        self._seq = itertools.count()
        self._assigner = _assigner_for(config)
        self.late_count = 0
        """Records reported as :class:`Late` so far."""
        self._touched: set[Hashable] = set()

    @property
    def stream_time_ms(self) -> int | None:
        """Max event time seen so far (None before the first record)."""
        return self._stream_time.value_ms

    def process(self, key: Hashable, event_time_ms: int, value: V) -> list[Output]:
        """Take one record; returns emissions, retractions, a :class:`Late` if late."""
        stream_time = self._stream_time.observe(event_time_ms)
        self._touched.add(key)
        windows = self._state.setdefault(key, {})
        change = self._assigner.apply(windows, key, event_time_ms, value, stream_time)
        if not windows:
            del self._state[key]
        out: list[Output] = []
        if change.late:
            self.late_count += 1
            out.append(Late(key, event_time_ms, value, change.late))
        for window in change.created:
            close = window.close_ms(self.config.grace_ms)
            heapq.heappush(self._closing, (close, next(self._seq), key, window))
        if self.config.emit == "update":
            out.extend(Retracted(key, window) for window in change.removed)
            result = self.config.aggregator.result
            out.extend(Emitted(key, w, result(windows[w])) for w in change.changed)
        out.extend(self._close(stream_time))
        return out

    def advance(self, stream_time_ms: int) -> list[Output]:
        """Move stream time forward without a record (e.g. end of input, idle
        partition); closes windows and, in final mode, emits them."""
        return self._close(self._stream_time.observe(stream_time_ms))

    def open_windows(self) -> list[tuple[Hashable, Window]]:
        """Every (key, window) still held, in window order."""
        return sorted(
            ((key, w) for key, windows in self._state.items() for w in windows),
            key=lambda kw: kw[1],
        )

    # -- snapshots (for durable state) -----------------------------------------
    def take_touched(self) -> set[Hashable]:
        """Keys whose state changed since the last call (then forgets them)."""
        touched, self._touched = self._touched, set()
        return touched

    def snapshot(self, key: Hashable) -> tuple[dict[Window, A], list[tuple[int, int, V]]] | None:
        """``key``'s open windows (and, for sliding windows, its buffered records);
        None when it holds nothing. Values are the aggregator's immutable accumulators."""
        windows = self._state.get(key)
        records = (
            self._assigner.export_records(key)
            if isinstance(self._assigner, SlidingAssigner) else []
        )
        if not windows and not records:
            return None
        return dict(windows or {}), records

    def restore(
        self,
        stream_time_ms: int | None,
        snapshots: Iterable[tuple[Hashable, tuple[dict[Window, A], list[tuple[int, int, V]]]]],
    ) -> None:
        """Load state saved by :meth:`snapshot` into fresh logic (nothing is emitted)."""
        if stream_time_ms is not None:
            self._stream_time.observe(stream_time_ms)
        for key, (windows, records) in snapshots:
            if windows:
                self._state[key] = dict(windows)
                for window in windows:
                    close = window.close_ms(self.config.grace_ms)
                    heapq.heappush(self._closing, (close, next(self._seq), key, window))
            if records and isinstance(self._assigner, SlidingAssigner):
                self._assigner.import_records(key, records)

    def _close(self, stream_time: int) -> list[Output]:
        out: list[Output] = []
        while self._closing and self._closing[0][0] <= stream_time:
            _, _, key, window = heapq.heappop(self._closing)
            windows = self._state.get(key)
            if windows is None or window not in windows:
                continue  # merged into another session window
            acc = windows.pop(window)
            self._touched.add(key)
            if not windows:
                del self._state[key]
            if self.config.emit == "final":
                out.append(Emitted(key, window, self.config.aggregator.result(acc)))
        self._assigner.expire(stream_time)
        return out


def _assigner_for(config: WindowedAggregation[V, A, R]) -> Assigner[V, A]:
    spec, agg, grace = config.window, config.aggregator, config.grace_ms
    if isinstance(spec, Tumbling | Hopping):
        return FixedAssigner(spec, agg, grace)
    if isinstance(spec, Session):
        return SessionAssigner(spec, agg, grace)
    if isinstance(spec, Sliding):
        return SlidingAssigner(spec, agg, grace)
    raise TypeError(f"unknown window spec {spec!r}")
