"""A partition's committed keys in memory: values, TTL times, a sorted view and an expiry heap.

Pure: no I/O. Built once per :meth:`StateBackend.open` from whatever the backend
restored, then changed only by :meth:`Table.apply` when a batch commits. The
sorted view (for ``range``) and the expiry heap (for ``expire``) are built on
first use, never at open, so restoring a million keys costs two dict builds.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

Entry = tuple[Any, int | None]
"""A write: ``(value, time_ms)``; ``time_ms`` (event time) starts the key's TTL."""

Writes = Mapping[str, Entry | None]
"""One batch's writes by key; ``None`` deletes the key."""

_REBUILD_SLACK = 1024  # stale heap entries tolerated beyond one per live key


class Table:
    """``values`` and ``times`` (only keys written with a time) of one partition store."""

    __slots__ = ("_added", "_heap", "_removed", "_sorted", "times", "values")

    def __init__(self, values: dict[str, Any] | None = None, times: dict[str, int] | None = None):
        self.values: dict[str, Any] = values if values is not None else {}
        self.times: dict[str, int] = times if times is not None else {}
        self._sorted: list[str] | None = None  # sorted keys as of the last rebuild
        self._added: set[str] = set()  # keys since then, not in ``_sorted``
        self._removed: set[str] = set()  # keys in ``_sorted`` deleted since then
        self._heap: list[tuple[int, str]] | None = None  # (time, key), stale entries allowed

    def __len__(self) -> int:
        return len(self.values)

    def apply(self, writes: Writes) -> None:
        """Fold a committed batch in."""
        values, times, heap = self.values, self.times, self._heap
        track = self._sorted is not None
        for key, entry in writes.items():
            existed = key in values
            if entry is None:
                if existed:
                    del values[key]
                    times.pop(key, None)
                    if track:
                        self._forget(key)
                continue
            value, time_ms = entry
            values[key] = value
            if time_ms is None:
                times.pop(key, None)
            else:
                times[key] = time_ms
                if heap is not None:
                    heapq.heappush(heap, (time_ms, key))
            if track and not existed:
                self._remember(key)
        if heap is not None and len(heap) > 2 * len(times) + _REBUILD_SLACK:
            self._heap = None  # mostly stale: rebuilt on the next expire

    # -- sorted view -------------------------------------------------------
    def _remember(self, key: str) -> None:
        if key in self._removed:
            self._removed.discard(key)  # still in the list
        else:
            self._added.add(key)

    def _forget(self, key: str) -> None:
        if key in self._added:
            self._added.discard(key)
        else:
            self._removed.add(key)

    def sorted_keys(self) -> list[str]:
        """All keys in ascending order (do not modify the list)."""
        keys = self._sorted
        if keys is None:
            keys = self._sorted = sorted(self.values)
            self._added.clear()
            self._removed.clear()
            return keys
        if self._removed:
            removed = self._removed
            keys = [k for k in keys if k not in removed]
            removed.clear()
        if self._added:
            # a sorted run plus a short unsorted tail: timsort merges it in about linear time
            keys = [*keys, *self._added]
            keys.sort()
            self._added.clear()
        self._sorted = keys
        return keys

    def keys_between(self, start: str | None, end: str | None) -> list[str]:
        """Keys in ``[start, end)``, ascending (``None``: unbounded)."""
        keys = self.sorted_keys()
        lo = 0 if start is None else bisect_left(keys, start)
        hi = len(keys) if end is None else bisect_left(keys, end)
        return keys[lo:hi]

    # -- expiry ------------------------------------------------------------
    def pop_expired(self, cutoff_ms: int) -> list[tuple[int, str]]:
        """Remove and return the live ``(time, key)`` entries with ``time <= cutoff_ms``.

        Stale entries (the key was deleted or rewritten since) are dropped on the way.
        The caller hands back the ones it did not delete with :meth:`push_back`.
        """
        heap = self._heap
        if heap is None:
            heap = self._heap = [(t, k) for k, t in self.times.items()]
            heapq.heapify(heap)
        times = self.times
        out: list[tuple[int, str]] = []
        while heap and heap[0][0] <= cutoff_ms:
            item = heapq.heappop(heap)
            if times.get(item[1]) == item[0]:
                out.append(item)
        return out

    def push_back(self, items: list[tuple[int, str]]) -> None:
        """Return entries from :meth:`pop_expired` whose key still has that time."""
        heap = self._heap
        if heap is None:
            return  # rebuilt from ``times`` when next needed
        times = self.times
        for item in items:
            if times.get(item[1]) == item[0]:
                heapq.heappush(heap, item)
