from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventml.windows import (
    Aggregator,
    ApproxDistinct,
    Count,
    Emitted,
    Last,
    Max,
    Mean,
    Min,
    StdDev,
    Sum,
    TopK,
    Tumbling,
    Window,
    WindowedAggregation,
)

floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
NUMERIC: list[Aggregator[Any, Any, Any]] = [
    Count(),
    Sum(),
    Mean(),
    Min(),
    Max(),
    StdDev(),
    StdDev(ddof=0),
]


def fold(agg: Aggregator[Any, Any, Any], values: list[Any]) -> Any:
    acc = agg.initialize()
    for v in values:
        acc = agg.add(acc, v)
    return acc


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return bool(a == b)


@pytest.mark.parametrize("agg", NUMERIC, ids=lambda a: repr(a))
@given(values=st.lists(floats, max_size=40), cut=st.integers(min_value=0, max_value=40))
def test_numeric_merge_equals_sequential_add(
    agg: Aggregator[Any, Any, Any], values: list[float], cut: int
) -> None:
    left, right = values[:cut], values[cut:]
    merged = agg.result(agg.merge(fold(agg, left), fold(agg, right)))
    assert close(merged, agg.result(fold(agg, values)))


@given(values=st.lists(floats, min_size=2, max_size=40))
def test_numeric_results_match_the_statistics_module(values: list[float]) -> None:
    assert Count().result(fold(Count(), values)) == len(values)
    assert close(Sum().result(fold(Sum(), values)), math.fsum(values))
    assert close(Mean().result(fold(Mean(), values)), statistics.fmean(values))
    assert Min().result(fold(Min(), values)) == min(values)
    assert Max().result(fold(Max(), values)) == max(values)
    got = StdDev().result(fold(StdDev(), values))
    assert got is not None
    assert math.isclose(got, statistics.stdev(values), rel_tol=1e-6, abs_tol=1e-3)


def test_empty_results() -> None:
    assert [a.result(a.initialize()) for a in NUMERIC] == [0, 0, None, None, None, None, None]
    assert StdDev().result(fold(StdDev(), [3.0])) is None
    assert StdDev(ddof=0).result(fold(StdDev(ddof=0), [3.0])) == 0.0


timed = st.tuples(st.integers(min_value=0, max_value=20), st.integers())


@given(values=st.lists(timed, max_size=30), cut=st.integers(min_value=0, max_value=30))
def test_last_is_latest_by_event_time_and_merges(values: list[tuple[int, int]], cut: int) -> None:
    agg = Last()
    whole = agg.result(fold(agg, values))
    assert agg.result(agg.merge(fold(agg, values[:cut]), fold(agg, values[cut:]))) == whole
    if values:
        latest = max(t for t, _ in values)
        assert whole == [v for t, v in values if t == latest][-1]  # ties: added later wins
    else:
        assert whole is None


small = st.one_of(st.integers(min_value=0, max_value=400), st.text(max_size=3))


@given(values=st.lists(small, max_size=300), cut=st.integers(min_value=0, max_value=300))
def test_distinct_merge_equals_sequential_add(values: list[Hashable], cut: int) -> None:
    agg = ApproxDistinct(exact_limit=32)
    merged = agg.merge(fold(agg, values[:cut]), fold(agg, values[cut:]))
    assert merged == fold(agg, values)  # the accumulator itself, not just the estimate


def test_distinct_is_exact_up_to_the_limit_then_approximate() -> None:
    agg = ApproxDistinct()
    assert agg.result(fold(agg, [1, 2, 2, "2", 3] * 10)) == 4
    assert agg.result(fold(agg, list(range(128)))) == 128
    for n in (1_000, 20_000):
        estimate = agg.result(fold(agg, list(range(n))))
        assert abs(estimate - n) / n < 0.07  # 3 standard errors at precision 11


@given(
    values=st.lists(st.sampled_from("abcdefg"), max_size=60),
    cut=st.integers(min_value=0, max_value=60),
    k=st.integers(min_value=1, max_value=8),
)
def test_top_k_merge_equals_sequential_add_and_counts_exactly(
    values: list[str], cut: int, k: int
) -> None:
    agg = TopK(k)
    whole = agg.result(fold(agg, values))
    assert agg.result(agg.merge(fold(agg, values[:cut]), fold(agg, values[cut:]))) == whole
    counts = Counter(values)
    assert whole == sorted(counts.items(), key=lambda kv: (-kv[1], repr(kv[0])))[:k]


def test_add_never_mutates_its_accumulator() -> None:
    agg = TopK(2)
    acc = fold(agg, ["a", "b"])
    agg.add(acc, "a")
    assert agg.result(acc) == [("a", 1), ("b", 1)]
    d = ApproxDistinct(exact_limit=2)
    big = fold(d, [1, 2, 3])
    before = bytes(big)
    d.add(big, 4)
    assert big == before


class Collect:
    """A custom aggregator: any object with the four methods."""

    def initialize(self) -> tuple[int, ...]:
        return ()

    def add(self, acc: tuple[int, ...], value: int) -> tuple[int, ...]:
        return (*acc, value)

    def merge(self, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
        return a + b

    def result(self, acc: tuple[int, ...]) -> list[int]:
        return sorted(acc)


def test_a_custom_aggregator_plugs_in() -> None:
    logic = WindowedAggregation(Tumbling(10), Collect(), emit="final").build()
    logic.process("k", 1, 3)
    logic.process("k", 2, 1)
    assert logic.advance(10) == [Emitted("k", Window(0, 10), [1, 3])]
