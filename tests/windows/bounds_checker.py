"""Check a fixed-window assigner against the Kafka Streams definition.

Expected windows for an event at ``t``: every ``[s, s + size)`` with ``s`` a
non-negative multiple of ``advance`` and ``s <= t < s + size`` (tumbling is
``advance == size``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from eventml.windows import Window

Assign = Callable[[int], Sequence[Window]]


def expected_windows(t: int, size_ms: int, advance_ms: int) -> set[Window]:
    return {Window(s, s + size_ms) for s in range(0, t + 1, advance_ms) if s <= t < s + size_ms}


def probe_times(size_ms: int, advance_ms: int, horizon_windows: int = 4) -> list[int]:
    """Times on and next to every boundary, where off-by-one bounds show."""
    times = {0, 1}
    for boundary in range(0, size_ms * horizon_windows + 1, advance_ms):
        times |= {boundary - 1, boundary, boundary + 1}
    for boundary in range(size_ms, size_ms * horizon_windows + 1, size_ms):
        times |= {boundary - 1, boundary, boundary + 1}
    return sorted(t for t in times if t >= 0)


def check_fixed_bounds(assign: Assign, size_ms: int, advance_ms: int) -> list[str]:
    """Problems found (empty when the assigner matches the definition)."""
    problems = []
    for t in probe_times(size_ms, advance_ms):
        got = list(assign(t))
        want = expected_windows(t, size_ms, advance_ms)
        if set(got) != want or len(got) != len(want):
            problems.append(f"t={t}: got {sorted(got)}, want {sorted(want)}")
        problems += [f"t={t}: {w} does not contain it" for w in got if not w.contains(t)]
        problems += [f"t={t}: {w} has an inclusive end" for w in got if w.end_inclusive]
    return problems
