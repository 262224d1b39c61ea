"""The timed read loop shared by eventml's side and the raw Kafka baseline."""

from __future__ import annotations

import time
from collections.abc import Callable

from eventml.log import LogError

STALL_S = 60.0  # a read that gets nothing for this long has failed


class BenchmarkError(LogError):
    """The benchmark could not run to the end (bad settings, lost or extra records)."""


def time_reads(fetch: Callable[[], int], total: int, what: str) -> tuple[float, float, int, int]:
    """Call ``fetch`` (events it got, 0 for none) until ``total`` arrived.

    Returns ``(seconds, startup_s, events, first_batch)``: time from the first call to
    the last events, the part before the first events came, and how many came first.
    """
    count = first_count = 0
    first: float | None = None
    t0 = last = time.perf_counter()
    while count < total:
        n = fetch()
        now = time.perf_counter()
        if n:
            count += n
            last = now
            if first is None:
                first, first_count = now, n
        elif now - last > STALL_S:
            raise BenchmarkError(
                f"{what} stalled: {count:,} of {total:,} events after {STALL_S:.0f} s"
            )
    return time.perf_counter() - t0, (first or t0) - t0, count, first_count
