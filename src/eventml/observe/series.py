"""Pure cores of the pipeline sampler: rates from counters, and when an offset was appended.

No I/O and no clock: every method takes the sample's time ``at_s`` (seconds).

* :class:`Rate`: events per second of a growing counter (an end offset, a committed
  offset) over its last ``window`` samples;
* :class:`AppendTimes`: the end offsets of one partition as sampled over time, and
  :meth:`AppendTimes.appended_at`: when offset ``o`` was appended, interpolated between
  the two samples around it (the "time lag" estimate of Kafka lag exporters);
* :func:`percentile`: nearest-rank percentile;
* :func:`histogram_quantile`: a quantile estimated from a histogram's cumulative bucket
  counts, as Prometheus' ``histogram_quantile`` does.

>>> r = Rate(window=3)
>>> for t, n in ((0.0, 0), (1.0, 10), (2.0, 30)):
...     r.add(t, n)
>>> r.per_s()
15.0
>>> a = AppendTimes(history=10)
>>> a.add(0.0, 100); a.add(1.0, 200)
>>> a.appended_at(150)
0.51
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence


class Rate:
    """Events per second of a counter over its last ``window`` samples (``None`` until
    two samples span some time). A counter that goes down (a topic recreated) restarts."""

    def __init__(self, window: int = 5) -> None:
        if window < 2:
            raise ValueError("a rate needs a window of at least 2 samples")
        self._samples: deque[tuple[float, int]] = deque(maxlen=window)

    def add(self, at_s: float, count: int) -> None:
        if self._samples and count < self._samples[-1][1]:
            self._samples.clear()
        self._samples.append((at_s, count))

    def per_s(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None


class AppendTimes:
    """One partition's end offsets over time (the last ``history`` samples)."""

    def __init__(self, history: int = 300) -> None:
        self._samples: deque[tuple[float, int]] = deque(maxlen=history)

    def add(self, at_s: float, end_offset: int) -> None:
        if self._samples and end_offset < self._samples[-1][1]:
            self._samples.clear()
        self._samples.append((at_s, end_offset))

    def appended_at(self, offset: int) -> float | None:
        """When the record at ``offset`` was appended: between the last sample whose end
        offset was at most ``offset`` and the first that held it, in proportion to the
        records appended in between; ``None`` if it is not held yet or was appended
        before the oldest sample (then only a lower bound is known)."""
        prev: tuple[float, int] | None = None
        for at, end in self._samples:
            if end > offset:
                if prev is None:
                    return None
                t0, e0 = prev
                return t0 + (at - t0) * (offset + 1 - e0) / (end - e0)
            prev = (at, end)
        return None

    def oldest_s(self) -> float | None:
        return self._samples[0][0] if self._samples else None


def time_lag_s(appends: AppendTimes, committed: int | None, end_offset: int,
               at_s: float) -> float | None:
    """How long the group's next record (``committed``) has waited at ``at_s``: 0 when it
    is caught up; ``None`` if it never committed; at least since the oldest sample if the
    wait began before the history (a lower bound)."""
    if committed is None:
        return None
    if committed >= end_offset:
        return 0.0
    appended = appends.appended_at(committed)
    if appended is None:
        oldest = appends.oldest_s()
        return None if oldest is None else max(0.0, at_s - oldest)
    return max(0.0, at_s - appended)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``; ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q``-quantile (0 <= q <= 1) of a histogram given as ``(upper bound, cumulative
    count)`` pairs in increasing order of bound, the last one ``+Inf``, estimated as
    Prometheus' ``histogram_quantile`` does: find the bucket holding the ``q * count``-th
    observation and interpolate linearly between its lower and upper bounds (the first
    bucket's lower bound is 0, unless its upper bound is <= 0: then that bound). A rank in
    the ``+Inf`` bucket gets the highest finite bound. ``None`` without observations or
    without an ``+Inf`` bucket.

    >>> histogram_quantile(0.5, [(1.0, 10), (2.0, 30), (math.inf, 30)])
    1.25
    """
    if not 0 <= q <= 1:
        raise ValueError(f"a quantile is in 0..1, got {q}")
    if len(buckets) < 2 or buckets[-1][0] != math.inf or not buckets[-1][1] > 0:
        return None
    rank = q * buckets[-1][1]
    i = next((i for i, (_, count) in enumerate(buckets[:-1]) if count >= rank), None)
    if i is None:  # in the +Inf bucket
        return buckets[-2][0]
    upper, count = buckets[i]
    if i == 0 and upper <= 0:
        return upper
    lower, below = (0.0, 0.0) if i == 0 else buckets[i - 1]
    held = count - below
    if held <= 0:
        return lower
    return lower + (upper - lower) * (rank - below) / held
