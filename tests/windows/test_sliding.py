from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from eventml.windows import (
    Count,
    Emitted,
    Late,
    Sliding,
    Window,
    WindowedAggregation,
)

from .test_aggregators import Collect


def closed(start: int, end: int) -> Window:
    return Window(start, end, end_inclusive=True)


def final_windows(records: list[tuple[int, int]], diff: int) -> dict[Window, list[int]]:
    logic = WindowedAggregation(Sliding(diff), Collect(), grace_ms=10_000, emit="final").build()
    for t, v in records:
        assert logic.process("k", t, v) == []
    out = logic.advance(1_000_000)
    assert logic.open_windows() == []
    return {o.window: o.value for o in out if isinstance(o, Emitted)}


def test_kip_450_windows_for_three_records() -> None:
    # diff 10, records at 5, 10, 20: a left window per record, a right window
    # per record with records after it within diff (none after 20).
    got = final_windows([(5, 5), (10, 10), (20, 20)], 10)
    assert got == {
        closed(-5, 5): [5],
        closed(0, 10): [5, 10],
        closed(10, 20): [10, 20],
        closed(6, 16): [10],  # right of 5
        closed(11, 21): [20],  # right of 10
    }


def test_right_window_equal_to_a_left_window_is_one_window() -> None:
    # right of 0 is [1, 11] = left of 11
    assert final_windows([(0, 0), (11, 11)], 10) == {closed(-10, 0): [0], closed(1, 11): [11]}


def test_update_mode_emits_each_changed_window() -> None:
    logic = WindowedAggregation(Sliding(10), Count(), grace_ms=100).build()
    assert logic.process("k", 5, None) == [Emitted("k", closed(-5, 5), 1)]
    assert logic.process("k", 10, None) == [
        Emitted("k", closed(0, 10), 2),
        Emitted("k", closed(6, 16), 1),
    ]
    # out of order: 8 lands in [0, 10] and [6, 16], creates [-2, 8] and [9, 19]
    assert logic.process("k", 8, None) == [
        Emitted("k", closed(-2, 8), 2),
        Emitted("k", closed(0, 10), 3),
        Emitted("k", closed(6, 16), 2),
        Emitted("k", closed(9, 19), 1),
    ]


def test_sliding_late_records_and_grace() -> None:
    logic = WindowedAggregation(Sliding(10), Count(), grace_ms=5).build()
    logic.process("k", 100, None)
    # left window [84, 94] of a record at 94 closes at 95 + 5 = 100 -> late
    assert logic.process("k", 94, "x") == [Late("k", 94, "x", (closed(84, 94),))]
    assert logic.process("k", 95, None) != []  # closes at 101: on time
    assert logic.late_count == 1


def test_buffered_records_expire() -> None:
    logic = WindowedAggregation(Sliding(10), Count(), grace_ms=5).build()
    for t in range(0, 100, 3):
        logic.process(t % 2, t, None)
    logic.advance(10_000)
    assert logic.open_windows() == []
    assert logic._assigner.buffered_records() == 0  # type: ignore[attr-defined]


def brute_force(records: list[tuple[int, int]], diff: int) -> set[tuple[int, ...]]:
    """Every distinct non-empty set of records that fits in some [s, s + diff]."""
    times = [t for t, _ in records]
    sets = set()
    for s in range(min(times) - diff - 1, max(times) + 2):
        inside = tuple(sorted(v for t, v in records if s <= t <= s + diff))
        if inside:
            sets.add(inside)
    return sets


@settings(max_examples=200)
@given(
    times=st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=15),
    diff=st.integers(min_value=1, max_value=12),
    data=st.data(),
)
def test_sliding_windows_are_every_distinct_record_set_in_any_order(
    times: list[int], diff: int, data: st.DataObject
) -> None:
    records = [(t, i) for i, t in enumerate(times)]  # values identify records
    got = final_windows(data.draw(st.permutations(records)), diff)
    in_order = final_windows(sorted(records), diff)
    assert got == in_order
    contents = [tuple(v) for v in got.values()]
    assert len(contents) == len(set(contents))  # each set once
    assert set(contents) == brute_force(records, diff)
    for window, values in got.items():  # and each window holds exactly its records
        assert values == sorted(v for t, v in records if window.contains(t))
