from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from eventml.windows import (
    Count,
    Emitted,
    Late,
    Retracted,
    Session,
    Sum,
    Window,
    WindowedAggregation,
)


def session(start: int, end: int) -> Window:
    return Window(start, end, end_inclusive=True)


def test_records_within_the_gap_extend_a_session() -> None:
    logic = WindowedAggregation(Session(10), Count(), grace_ms=100).build()
    assert logic.process("k", 100, None) == [Emitted("k", session(100, 100), 1)]
    out = logic.process("k", 110, None)  # exactly gap after the end: joins
    assert out == [Retracted("k", session(100, 100)), Emitted("k", session(100, 110), 2)]
    assert logic.process("k", 121, None) == [Emitted("k", session(121, 121), 1)]  # gap + 1: new
    assert logic.process("j", 105, None) == [Emitted("j", session(105, 105), 1)]  # per key


def test_a_record_inside_a_session_keeps_its_bounds() -> None:
    logic = WindowedAggregation(Session(10), Count()).build()
    logic.process("k", 100, None)
    logic.process("k", 110, None)  # [100, 110]
    assert logic.process("k", 105, None) == [Emitted("k", session(100, 110), 3)]


def test_out_of_order_record_bridging_two_sessions_merges_them_update_mode() -> None:
    logic = WindowedAggregation(Session(10), Sum(), grace_ms=100).build()
    logic.process("k", 100, 1)
    logic.process("k", 105, 2)  # [100, 105] = 3
    logic.process("k", 125, 4)  # [125, 125] = 4 (20 > gap)
    out = logic.process("k", 115, 8)  # within 10 of 105 and of 125
    assert out == [
        Retracted("k", session(100, 105)),
        Retracted("k", session(125, 125)),
        Emitted("k", session(100, 125), 15),
    ]
    assert logic.open_windows() == [("k", session(100, 125))]


def test_final_mode_emits_only_the_merged_session_once() -> None:
    logic = WindowedAggregation(Session(10), Count(), grace_ms=100, emit="final").build()
    outs = [o for t in (100, 105, 125, 115) for o in logic.process("k", t, None)]
    assert outs == []
    assert logic.advance(125 + 1 + 99) == []
    assert logic.advance(125 + 1 + 100) == [Emitted("k", session(100, 125), 4)]
    assert logic.open_windows() == []


def test_session_close_and_late_records() -> None:
    logic = WindowedAggregation(Session(10), Count(), grace_ms=5, emit="final").build()
    logic.process("k", 100, None)
    assert logic.process("k", 105, None) == []  # [100, 105]
    assert logic.process("j", 110, None) == []  # stream time 110 < 105 + 1 + 5
    assert logic.process("j", 111, None) == [Emitted("k", session(100, 105), 2)]
    # An old record for k: its session [90, 90] closes at 96 <= 111 -> late.
    assert logic.process("k", 90, "old") == [Late("k", 90, "old", (session(90, 90),))]
    # A record 111 - 5 = 106 is still on time for its own session.
    assert logic.process("k", 106, None) == []
    assert logic.late_count == 1
    # (A record near a closed session starts a new one: [106, 106], closing at 112.)
    assert logic.advance(1_000) == [
        Emitted("k", session(106, 106), 1),
        Emitted("j", session(110, 111), 2),
    ]


def sessionize(times: list[int], gap: int) -> list[tuple[int, int, int]]:
    """Brute force: split sorted times where consecutive ones are more than gap apart."""
    out: list[tuple[int, int, int]] = []
    for t in sorted(times):
        if out and t - out[-1][1] <= gap:
            start, _, n = out[-1]
            out[-1] = (start, t, n + 1)
        else:
            out.append((t, t, 1))
    return out


@given(times=st.lists(st.integers(min_value=0, max_value=200), max_size=30), data=st.data())
def test_final_sessions_do_not_depend_on_arrival_order(
    times: list[int], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(times))
    logic = WindowedAggregation(Session(10), Count(), grace_ms=10_000, emit="final").build()
    for t in shuffled:
        assert logic.process("k", t, None) == []
    out = logic.advance(100_000)
    got = sorted(
        (o.window.start_ms, o.window.end_ms, o.value) for o in out if isinstance(o, Emitted)
    )
    assert got == sessionize(times, 10)


@given(times=st.lists(st.integers(min_value=0, max_value=200), max_size=30))
def test_update_mode_retractions_leave_exactly_the_final_sessions(times: list[int]) -> None:
    logic = WindowedAggregation(Session(10), Count(), grace_ms=10_000).build()
    live: dict[Window, int] = {}
    for t in times:
        for o in logic.process("k", t, None):
            if isinstance(o, Retracted):
                del live[o.window]
            elif isinstance(o, Emitted):
                live[o.window] = o.value
    assert sorted((w.start_ms, w.end_ms, n) for w, n in live.items()) == sessionize(times, 10)
