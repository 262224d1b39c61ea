from __future__ import annotations

from collections.abc import Callable

import pytest

from eventml.windows import Hopping, Session, Sliding, Tumbling, Window

from .bounds_checker import check_fixed_bounds

MIN = 60_000


@pytest.mark.parametrize(
    ("t", "start", "end"),
    [
        (0, 0, 5 * MIN),
        (1, 0, 5 * MIN),
        (5 * MIN - 1, 0, 5 * MIN),
        (5 * MIN, 5 * MIN, 10 * MIN),  # the end is exclusive: t=end opens the next window
        (5 * MIN + 1, 5 * MIN, 10 * MIN),
        (1_700_000_123_456, 1_700_000_100_000, 1_700_000_400_000),  # epoch-aligned
    ],
)
def test_tumbling_bounds(t: int, start: int, end: int) -> None:
    assert Tumbling(5 * MIN).windows_for(t) == (Window(start, end),)


@pytest.mark.parametrize(
    ("t", "starts"),
    [
        # size 5 min, advance 1 min: starts s (multiples of 1 min, s >= 0) with s <= t < s + 5 min
        (0, [0]),
        (59_999, [0]),
        (60_000, [0, 60_000]),
        (130_000, [0, 60_000, 120_000]),  # no window starts before the epoch (Kafka clamps)
        (299_999, [0, 60_000, 120_000, 180_000, 240_000]),
        (300_000, [60_000, 120_000, 180_000, 240_000, 300_000]),
        (330_000, [60_000, 120_000, 180_000, 240_000, 300_000]),
        (360_000, [120_000, 180_000, 240_000, 300_000, 360_000]),
    ],
)
def test_hopping_bounds(t: int, starts: list[int]) -> None:
    got = Hopping(5 * MIN, MIN).windows_for(t)
    assert got == tuple(Window(s, s + 5 * MIN) for s in starts)


@pytest.mark.parametrize(
    ("size", "advance"), [(10, 10), (10, 3), (10, 5), (10, 1), (7, 7), (300_000, 60_000)]
)
def test_fixed_assigners_pass_the_bounds_checker(size: int, advance: int) -> None:
    spec = Tumbling(size) if size == advance else Hopping(size, advance)
    assert check_fixed_bounds(spec.windows_for, size, advance) == []


def test_bounds_checker_flags_a_start_exclusive_end_inclusive_tumbling_assigner() -> None:
    def broken(t: int) -> tuple[Window, ...]:
        # (start, end] instead of [start, end): t = end lands in the earlier window.
        start = max(0, (t - 1) // 10 * 10)
        return (Window(start, start + 10),)

    problems = check_fixed_bounds(broken, 10, 10)
    assert any(p.startswith("t=10:") for p in problems)
    assert any(p.startswith("t=20:") for p in problems)
    assert not any(p.startswith("t=15:") for p in problems)  # mid-window is right


def test_bounds_checker_flags_a_hopping_assigner_missing_the_oldest_window() -> None:
    def broken(t: int) -> tuple[Window, ...]:
        return Hopping(10, 5).windows_for(t)[1:] or Hopping(10, 5).windows_for(t)

    assert check_fixed_bounds(broken, 10, 5) != []


def test_sliding_and_session_windows_are_closed_intervals() -> None:
    left = Sliding(10).left_window(100)
    right = Sliding(10).right_window(100)
    assert (left.start_ms, left.end_ms, left.end_inclusive) == (90, 100, True)
    assert (right.start_ms, right.end_ms) == (101, 111)
    assert left.contains(90) and left.contains(100) and not left.contains(101)
    session = Window(100, 200, end_inclusive=True)
    assert Session(50).joins(session, 50) and Session(50).joins(session, 250)
    assert not Session(50).joins(session, 49) and not Session(50).joins(session, 251)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Tumbling(0),
        lambda: Hopping(10, 0),
        lambda: Hopping(10, 11),
        lambda: Sliding(-1),
        lambda: Session(0),
        lambda: Window(5, 5),
        lambda: Window(5, 4, end_inclusive=True),
    ],
)
def test_invalid_specs_are_rejected(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_negative_event_times_are_rejected_with_a_next_step() -> None:
    with pytest.raises(ValueError, match="dead-letter"):
        Tumbling(10).windows_for(-1)
