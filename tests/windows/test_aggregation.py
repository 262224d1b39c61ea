from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventml.windows import (
    Count,
    EmitMode,
    Emitted,
    Hopping,
    Late,
    Sum,
    Tumbling,
    Window,
    WindowedAggregation,
)


def test_config_is_frozen_and_validated() -> None:
    config = WindowedAggregation(Tumbling(10), Count())
    with pytest.raises(AttributeError):
        config.grace_ms = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match="grace_ms"):
        WindowedAggregation(Tumbling(10), Count(), grace_ms=-1)
    with pytest.raises(ValueError, match="emit"):
        WindowedAggregation(Tumbling(10), Count(), emit="eventually")  # type: ignore[arg-type]


def test_each_build_has_its_own_state() -> None:
    config = WindowedAggregation(Tumbling(10), Count())
    a, b = config.build(), config.build()
    a.process("k", 1, None)
    assert a.open_windows() == [("k", Window(0, 10))] and b.open_windows() == []


def test_update_mode_emits_every_change_per_key() -> None:
    logic = WindowedAggregation(Tumbling(10), Sum()).build()
    assert logic.process("a", 1, 5) == [Emitted("a", Window(0, 10), 5)]
    assert logic.process("b", 2, 1) == [Emitted("b", Window(0, 10), 1)]
    assert logic.process("a", 9, 2) == [Emitted("a", Window(0, 10), 7)]
    assert logic.process("a", 10, 1) == [Emitted("a", Window(10, 20), 1)]


RECORDS = [("k", 1), ("j", 3), ("k", 4), ("k", 9), ("k", 12), ("k", 15)]


@pytest.mark.parametrize(("emit", "count"), [("update", 6), ("final", 3)])
def test_final_versus_update_emit_counts(emit: str, count: int) -> None:
    logic = WindowedAggregation(Tumbling(10), Count(), emit=emit).build()  # type: ignore[arg-type]
    out = [o for key, t in RECORDS for o in logic.process(key, t, None)]
    out += logic.advance(20)
    emitted = [o for o in out if isinstance(o, Emitted)]
    assert len(emitted) == count
    finals = {(o.key, o.window.start_ms): o.value for o in emitted}
    assert finals == {("k", 0): 3, ("k", 10): 2, ("j", 0): 1}


def test_final_mode_emits_when_stream_time_closes_the_window() -> None:
    logic = WindowedAggregation(Tumbling(10), Count(), grace_ms=5, emit="final").build()
    assert logic.process("k", 3, None) == []
    assert logic.process("k", 14, None) == []  # stream time 14 < end 10 + grace 5
    assert logic.process("other", 15, None) == [Emitted("k", Window(0, 10), 1)]
    assert logic.advance(24) == []
    assert logic.advance(25) == [
        Emitted("k", Window(10, 20), 1),
        Emitted("other", Window(10, 20), 1),
    ]


@pytest.mark.parametrize(
    ("stream_time", "late"),
    [(14, False), (15, True)],  # window [0, 10), grace 5: closed at stream time 15
)
def test_grace_boundary(stream_time: int, late: bool) -> None:
    logic = WindowedAggregation(Tumbling(10), Count(), grace_ms=5).build()
    logic.process("k", stream_time, None)
    out = logic.process("k", 9, "v")
    if late:
        assert out == [Late("k", 9, "v", (Window(0, 10),))]
        assert logic.late_count == 1
    else:
        assert out == [Emitted("k", Window(0, 10), 1)]
        assert logic.late_count == 0


def test_late_records_are_returned_and_counted_never_dropped() -> None:
    logic = WindowedAggregation(Tumbling(10), Count(), emit="final").build()
    logic.process("k", 25, None)
    outs = [logic.process("k", t, f"v{t}") for t in (1, 11, 19, 20, 24)]
    late = [o for out in outs for o in out if isinstance(o, Late)]
    assert [(o.event_time_ms, o.value) for o in late] == [(1, "v1"), (11, "v11"), (19, "v19")]
    assert logic.late_count == 3
    assert logic.advance(30) == [Emitted("k", Window(20, 30), 3)]


def test_hopping_record_late_for_old_windows_still_counts_in_open_ones() -> None:
    logic = WindowedAggregation(Hopping(10, 5), Count()).build()
    logic.process("k", 15, None)  # stream time 15 closes [0, 10) and [5, 15)
    out = logic.process("k", 12, "x")
    assert out == [Late("k", 12, "x", (Window(5, 15),)), Emitted("k", Window(10, 20), 2)]


def test_window_state_expires_at_close() -> None:
    logic = WindowedAggregation(Hopping(10, 5), Count(), grace_ms=3).build()
    for t in range(0, 30, 2):
        logic.process(t % 3, t, None)
    # stream time 28: only windows with end + 3 > 28 remain
    assert {w for _, w in logic.open_windows()} == {Window(20, 30), Window(25, 35)}
    logic.advance(38)
    assert logic.open_windows() == []
    assert logic.stream_time_ms == 38


@given(
    records=st.lists(
        st.tuples(st.sampled_from("ab"), st.integers(min_value=0, max_value=100)), max_size=40
    ),
    grace=st.integers(min_value=0, max_value=30),
    spec=st.sampled_from([Tumbling(10), Hopping(10, 5), Hopping(12, 4)]),
    emit=st.sampled_from(["update", "final"]),
)
def test_every_record_is_aggregated_or_reported_late(
    records: list[tuple[str, int]], grace: int, spec: Tumbling | Hopping, emit: EmitMode
) -> None:
    logic = WindowedAggregation(spec, Count(), grace_ms=grace, emit=emit).build()
    outs = [o for key, t in records for o in logic.process(key, t, None)]
    outs += logic.advance(1_000)
    finals: dict[tuple[str, Window], int] = {}
    missed = 0
    for o in outs:
        if isinstance(o, Emitted):
            finals[(str(o.key), o.window)] = o.value  # last emission is the final value
        elif isinstance(o, Late):
            missed += len(o.windows)
    memberships = sum(len(spec.windows_for(t)) for _, t in records)
    assert sum(finals.values()) + missed == memberships
    assert logic.late_count == len([o for o in outs if isinstance(o, Late)])
    assert logic.open_windows() == []
