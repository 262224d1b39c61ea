"""Late events, as the windows define them, the same online and in historical retrieval.

Each entity's events are taken in arrival (log) order; one older than the entity's
newest event time minus ``allowed_lateness_ms`` is dropped and counted, any other
counts in the windows of its own time from then on. A row ``(key, T)`` sees what had
arrived (and was accepted) when the key's stream passed ``T``. The reference below
computes that from the raw arrivals, plainly; every path is compared with it."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventml.features import (
    HOUR,
    MINUTE,
    EntityState,
    FeatureView,
    count,
    distinct,
    get_historical_features,
    maximum,
    mean,
    since_last,
    total,
)
from eventml.features.historical import _historical_by_arrival
from eventml.log import Log, Message, TopicSpec, open_log

T0 = 1_700_000_000_000
STEP = 30_000  # event times are multiples of 30 s: ties and tile edges are common
FEATURES = [
    count("n_5m", 5 * MINUTE, tile_ms=MINUTE),
    total("sum_10m", "amount", 10 * MINUTE),
    mean("mean_10m", "amount", 10 * MINUTE, tile_ms=2 * MINUTE),
    maximum("max_5m", "amount", 5 * MINUTE, tile_ms=MINUTE),
    distinct("shops_10m", "shop", 10 * MINUTE, tile_ms=5 * MINUTE),
    since_last("since"),
]
TTL = 15 * MINUTE
Arrival = tuple[str, int, dict[str, Any]]  # key, event time, value: in arrival order


def make_view(source: str, lateness_ms: int, ttl_ms: int | None = TTL) -> FeatureView:
    return FeatureView("late", entity="card", source=source, features=FEATURES, ttl_ms=ttl_ms,
                       time="ts", allowed_lateness_ms=lateness_ms)


def event(card: str, t: int, amount: int = 10, shop: str = "s") -> Arrival:
    return card, t, {"card": card, "ts": t, "amount": amount, "shop": shop}


# -- the reference: plain Python over the raw arrivals --------------------------------

def accepted(arrivals: list[Arrival], lateness_ms: int) -> list[tuple[int, dict[str, Any]]]:
    """The arrivals the lateness rule keeps, in order."""
    kept: list[tuple[int, dict[str, Any]]] = []
    newest: int | None = None
    for _, t, value in arrivals:
        if newest is not None and t < newest - lateness_ms:
            continue  # too late: dropped
        kept.append((t, value))
        newest = t if newest is None else max(newest, t)
    return kept


def values(kept: list[tuple[int, dict[str, Any]]], at: int, ttl_ms: int | None) -> dict[str, Any]:
    """Every feature at ``at`` from the kept events (all at or before ``at``)."""
    times = sorted(t for t, _ in kept)
    if not times or (ttl_ms is not None and at - times[-1] > ttl_ms):
        return {f.name: None for f in FEATURES}
    out: dict[str, Any] = {}
    for f in FEATURES:
        if f.kind == "since_last":
            if at > times[-1]:
                out[f.name] = (at - times[-1]) / 1000
            else:  # at the newest event: since the one before it (0 if they tie)
                out[f.name] = (at - times[-2]) / 1000 if len(times) > 1 else None
            continue
        assert f.window_ms is not None
        first_tile = at // f.tile - f.window_ms // f.tile + 1
        window = [v for t, v in kept if t // f.tile >= first_tile]
        amounts = [v["amount"] for v in window]
        out[f.name] = {
            "n_5m": len(window),
            "sum_10m": sum(amounts),
            "mean_10m": sum(amounts) / len(amounts) if amounts else None,
            "max_5m": max(amounts, default=None),
            "shops_10m": len({v["shop"] for v in window}),
        }[f.name]
    return out


def reference_row(arrivals: list[Arrival], key: str, at: int, lateness_ms: int,
                  ttl_ms: int | None = TTL) -> dict[str, Any]:
    """The row ``(key, at)``: the key's arrivals until the first one later than ``at``."""
    mine: list[Arrival] = []
    for arrival in arrivals:
        if arrival[0] != key:
            continue
        if arrival[1] > at:
            break  # the key's stream has passed `at`: nothing after this is known at `at`
        mine.append(arrival)
    return values(accepted(mine, lateness_ms), at, ttl_ms)


def reference_served(arrivals: list[Arrival], key: str, n: int, lateness_ms: int) -> dict[str, Any]:
    """What online served for the key's ``n``-th arrival: its values at the stream time."""
    kept = accepted([a for a in arrivals if a[0] == key][:n], lateness_ms)
    return values(kept, max(t for t, _ in kept), TTL)


def same(got: dict[str, Any], want: dict[str, Any]) -> bool:
    for name, w in want.items():
        g = got[name]
        if isinstance(w, float) and g is not None:
            if abs(g - w) > 1e-9 * max(1.0, abs(w)):
                return False
        elif g != w:
            return False
    return True


# -- fixtures ---------------------------------------------------------------------------

@pytest.fixture
def memory_log() -> Iterator[Log]:
    log = open_log(f"memory://late-{uuid.uuid4().hex[:8]}")
    try:
        yield log
    finally:
        log.close()


def append(log: Log, arrivals: list[Arrival], partitions: int = 2, keyed: bool = True) -> str:
    topic = f"late-{uuid.uuid4().hex[:8]}"
    log.create_topic(TopicSpec(topic, partitions))
    if arrivals:
        log.append(topic, [Message(orjson.dumps(v), (c if keyed else "x").encode(), timestamp_ms=t)
                           for c, t, v in arrivals])
    return topic


def historical(log: Log, view: FeatureView, rows: list[tuple[str, int]]) -> list[dict[str, Any]]:
    result = get_historical_features(log, view, rows)
    return [{k: v for k, v in d.items() if k in view.feature_names} for d in result.to_dicts()]


def online(view: FeatureView, arrivals: list[Arrival], compact: bool = True
           ) -> tuple[list[dict[str, Any]], dict[str, EntityState]]:
    """What materialize serves per arrival: fold, compact to the stream time, values there."""
    states: dict[str, EntityState] = {}
    served = []
    for card, t, value in arrivals:
        state = states.setdefault(card, EntityState(view))
        state.update(value, t)
        assert state.last_ms is not None
        if compact:
            state.compact(state.last_ms)
        served.append(state.values_at(max(t, state.last_ms)))
    return served, states


# -- known ground truth -----------------------------------------------------------------

def test_a_late_event_within_the_lateness_counts_in_its_window(memory_log: Log) -> None:
    arrivals = [event("a", T0 + 10 * MINUTE, 5), event("a", T0 + 7 * MINUTE, 7)]  # 3 min late
    view = make_view(append(memory_log, arrivals), lateness_ms=5 * MINUTE)
    state = EntityState(view)
    assert state.update(arrivals[0][2], arrivals[0][1]) and state.update(arrivals[1][2], arrivals[1][1])
    assert state.late == 0 and state.seen == 2 and state.last_ms == T0 + 10 * MINUTE
    at_10 = state.values_at(T0 + 10 * MINUTE)
    assert at_10["n_5m"] == 2 and at_10["sum_10m"] == 12 and at_10["since"] == 180.0
    # 13 min: the 5 min window no longer holds 7 min, the 10 min one still does
    at_13 = state.values_at(T0 + 13 * MINUTE)
    assert at_13["n_5m"] == 1 and at_13["sum_10m"] == 12 and at_13["max_5m"] == 5
    got = historical(memory_log, view, [("a", T0 + 10 * MINUTE), ("a", T0 + 13 * MINUTE),
                                        ("a", T0 + 8 * MINUTE)])
    assert got[0] == at_10 and got[1] == at_13
    # 8 min: the key's stream passed 8 min (with the 10 min event) before the 7 min one
    # arrived, so at 8 min nothing was known yet: no leak of a later arrival
    assert all(v is None for v in got[2].values())


def test_an_event_beyond_the_lateness_is_dropped_and_counted(memory_log: Log) -> None:
    arrivals = [event("a", T0 + 10 * MINUTE, 5), event("a", T0 + 4 * MINUTE, 100),  # 6 min late
                event("a", T0 + 5 * MINUTE, 1)]  # exactly 5 min late: still allowed
    view = make_view(append(memory_log, arrivals), lateness_ms=5 * MINUTE)
    state = EntityState(view)
    kept = [state.update(v, t) for _, t, v in arrivals]
    assert kept == [True, False, True] and state.late == 1 and state.seen == 3
    values_at = state.values_at(T0 + 10 * MINUTE)
    assert values_at["sum_10m"] == 6 and values_at["max_5m"] == 5
    assert values_at["n_5m"] == 1  # 5 min is out of the 5 min window ending at 10 min
    assert historical(memory_log, view, [("a", T0 + 10 * MINUTE)]) == [values_at]
    # the same events with no allowed lateness: both late ones dropped
    strict = EntityState(replace(view, allowed_lateness_ms=0))
    assert [strict.update(v, t) for _, t, v in arrivals] == [True, False, False] and strict.late == 2
    # the counters survive raw() and snapshot()
    for copy in (EntityState.from_raw(view, state.raw()), EntityState.restore(view, state.snapshot())):
        assert (copy.seen, copy.late) == (3, 1) and copy.values_at(T0 + 10 * MINUTE) == values_at


def test_ties_are_never_late_and_a_late_event_does_not_extend_the_ttl(memory_log: Log) -> None:
    arrivals = [event("a", T0), event("a", T0), event("a", T0 - 2 * MINUTE)]
    view = make_view(append(memory_log, arrivals), lateness_ms=0, ttl_ms=5 * MINUTE)
    state = EntityState(view)
    assert [state.update(v, t) for _, t, v in arrivals] == [True, True, False]
    assert state.values_at(T0)["since"] == 0.0  # two events at one time
    lenient = make_view(view.source, lateness_ms=5 * MINUTE, ttl_ms=5 * MINUTE)
    rows = [("a", T0 + 5 * MINUTE), ("a", T0 + 5 * MINUTE + 1)]
    got = historical(memory_log, lenient, rows)
    assert got[0]["n_5m"] == 0 and got[0]["sum_10m"] == 30  # all three, within 10 min
    assert all(v is None for v in got[1].values())  # TTL: 5 min from the newest event
    assert all(v is None for v in historical(memory_log, view, rows[1:])[0].values())


def test_old_raw_states_restore_with_zero_counters() -> None:
    view = make_view("x", 0)
    state = EntityState(view)
    state.update(event("a", T0)[2], T0)
    last, previous, tiles, _, _ = state.raw()
    old = EntityState.from_raw(view, (last, previous, tiles))
    assert (old.seen, old.late) == (0, 0) and old.values_at(T0) == state.values_at(T0)
    snap = state.snapshot()
    del snap["n"], snap["late"]
    assert EntityState.restore(view, snap).values_at(T0) == state.values_at(T0)


def test_a_naive_time_sorted_join_leaks_late_arrivals(memory_log: Log) -> None:
    """Sorting each key's events by time and folding all those at or before the row's time
    (ignoring when they arrived) counts events that arrived after the stream passed the
    row's time, and dropped ones: the reference catches it, retrieval agrees with it."""
    rng = random.Random(3)
    arrivals = shuffled_stream(rng, n=400)
    view = make_view(append(memory_log, arrivals), lateness_ms=2 * MINUTE)
    rows = [(c, t + d) for c, t, _ in rng.sample(arrivals, 150) for d in (-STEP, 0, 1)]
    want = [reference_row(arrivals, c, t, view.allowed_lateness_ms) for c, t in rows]
    naive = []
    for c, t in rows:
        mine = sorted((et, v) for k, et, v in arrivals if k == c and et <= t)
        naive.append(values([(et, v) for et, v in mine], t, TTL))
    assert sum(not same(n, w) for n, w in zip(naive, want, strict=True)) > 30
    got = historical(memory_log, view, rows)
    bad = [(r, g, w) for r, g, w in zip(rows, got, want, strict=True) if not same(g, w)]
    assert bad == []


def shuffled_stream(rng: random.Random, n: int, cards: int = 4) -> list[Arrival]:
    """Per card, times rising by up to 3 min, then each event moved up to 8 places."""
    clock = {f"c{i}": T0 + rng.randrange(10 * MINUTE) for i in range(cards)}
    ordered = []
    for _ in range(n):
        card = rng.choice(sorted(clock))
        clock[card] += rng.randrange(0, 3 * MINUTE)
        ordered.append(event(card, clock[card], rng.randrange(1, 100), f"s{rng.randrange(5)}"))
    ranked = sorted(range(n), key=lambda i: i + rng.uniform(0, 8))
    return [ordered[i] for i in ranked]


@pytest.mark.parametrize("keyed", [True, False])
def test_forked_workers_replay_late_events_the_same(memory_log: Log, keyed: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Partitions swept by forked workers give the reference too. A topic not keyed by
    the entity has no arrival order across partitions: retrieval takes the events in
    time order then (nothing late), and says so in its docstring."""
    from eventml.features import historical as module

    rng = random.Random(5)
    arrivals = shuffled_stream(rng, n=600)
    view = make_view(append(memory_log, arrivals, partitions=3, keyed=keyed), lateness_ms=MINUTE)
    rows = [(c, t) for c, t, _ in rng.sample(arrivals, 200)]
    monkeypatch.setattr(module, "_PARALLEL_FROM", 0)
    got = [{k: v for k, v in d.items() if k in view.feature_names}
           for d in get_historical_features(memory_log, view, rows, workers=2).to_dicts()]
    if keyed:
        want = [reference_row(arrivals, c, t, MINUTE) for c, t in rows]
    else:
        in_time_order = sorted(arrivals, key=lambda a: a[1])
        want = [reference_row(in_time_order, c, t, MINUTE) for c, t in rows]
    assert [r for r, g, w in zip(rows, got, want, strict=True) if not same(g, w)] == []


# -- the property: online == historical == reference, shuffled arrivals -----------------

streams = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 80), st.integers(1, 50), st.sampled_from("xyz")),
    max_size=30,
)
asked = st.lists(st.tuples(st.sampled_from(["a", "b", "nobody"]), st.integers(-20, 200)),
                 min_size=1, max_size=12)
latenesses = st.sampled_from([0, 1, STEP, 2 * MINUTE, 5 * MINUTE, HOUR])


@settings(max_examples=150, deadline=None)
@given(stream=streams, asks=asked, lateness=latenesses)
def test_online_historical_and_the_reference_agree(
    stream: list[tuple[str, int, int, str]], asks: list[tuple[str, int]], lateness: int
) -> None:
    arrivals = [event(c, T0 + i * STEP, amount, shop) for c, i, amount, shop in stream]
    rows = [(c, T0 + j * STEP // 2 + j % 3 - 1) for c, j in asks]  # on, between, beside events
    log = open_log(f"memory://late-{uuid.uuid4().hex[:8]}")
    try:
        view = make_view(append(log, arrivals), lateness)
        # historical rows: the reference, which never looks past the stream reaching T
        for (c, t), got in zip(rows, historical(log, view, rows), strict=True):
            assert same(got, reference_row(arrivals, c, t, lateness)), (c, t, got)
        # online, compacted after each event as materialize does, and the same uncompacted
        served, states = online(view, arrivals)
        assert served == online(view, arrivals, compact=False)[0]
        seen: dict[str, int] = {}
        asks_n = []
        for (c, _, _), values_served in zip(arrivals, served, strict=True):
            seen[c] = seen.get(c, 0) + 1
            asks_n.append((c, seen[c]))
            assert same(values_served, reference_served(arrivals, c, seen[c], lateness))
        # served == historical by arrival (what verify_served compares)
        by_arrival, read = _historical_by_arrival(log, view, asks_n)
        assert read == len(arrivals)
        assert [dict(zip(view.feature_names, v, strict=True)) for v in by_arrival] == served
        for c, state in states.items():
            assert state.late == len([a for a in arrivals if a[0] == c]) - len(
                accepted([a for a in arrivals if a[0] == c], lateness))
    finally:
        log.close()


# -- entity rows as DataFrames / Arrow, results as Arrow, pandas and Parquet ------------

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")


@pytest.fixture
def stored(memory_log: Log) -> tuple[Log, FeatureView, list[Arrival], list[tuple[str, int]]]:
    rng = random.Random(11)
    arrivals = shuffled_stream(rng, n=300)
    view = make_view(append(memory_log, arrivals), lateness_ms=2 * MINUTE)
    rows = [(c, t + d) for c, t, _ in rng.sample(arrivals, 60) for d in (0, 1_234)] + [("nobody", T0)]
    return memory_log, view, arrivals, rows


def frame(rows: list[tuple[str, int]], unit: str = "ms", tz: str | None = "UTC") -> Any:
    times = pd.to_datetime([t for _, t in rows], unit="ms", utc=True).as_unit(unit)
    if tz is None:
        times = times.tz_localize(None)
    return pd.DataFrame({"label": [i % 2 for i in range(len(rows))], "card": [c for c, _ in rows],
                         "event_timestamp": times, "note": [f"r{i}" for i in range(len(rows))]})


@pytest.mark.parametrize(("unit", "tz"), [("ns", "UTC"), ("us", None), ("ms", "Europe/Paris"), ("s", "UTC")])
def test_dataframe_rows_equal_pairs_and_carry_their_columns(stored: Any, unit: str, tz: str | None) -> None:
    log, view, _, rows = stored
    if unit == "s":
        rows = [(c, t // 1000 * 1000) for c, t in rows]
    pairs = get_historical_features(log, view, rows)
    df = frame(rows, unit, "UTC" if tz == "UTC" else None)
    if tz == "Europe/Paris":
        df["event_timestamp"] = df["event_timestamp"].dt.tz_localize("UTC").dt.tz_convert(tz)
    result = get_historical_features(log, view, df)
    assert result.columns == ["label", "card", "event_timestamp", "note", *view.feature_names]
    assert result.features == view.feature_names and result.events_read == pairs.events_read
    assert [r[4:] for r in result.rows] == [r[2:] for r in pairs.rows]
    out = result.to_pandas()
    assert list(out.columns) == result.columns and len(out) == len(rows)
    pd.testing.assert_frame_equal(out[["label", "card", "event_timestamp", "note"]], df)  # unchanged
    expected = pairs.to_pandas()
    pd.testing.assert_frame_equal(out[view.feature_names], expected[view.feature_names])


def test_arrow_and_int_milliseconds_and_parquet_round_trip(stored: Any, tmp_path: Path) -> None:
    log, view, _, rows = stored
    pairs = get_historical_features(log, view, rows)
    table = pa.table({"card": [c for c, _ in rows], "event_timestamp": [t for _, t in rows],
                      "label": pa.array([float(i) for i in range(len(rows))])})
    result = get_historical_features(log, view, table)
    arrow = result.to_arrow()
    assert arrow.column_names == ["card", "event_timestamp", "label", *view.feature_names]
    assert arrow.slice(0, len(rows)).select(["card", "event_timestamp", "label"]).equals(table)
    assert arrow.schema.field("n_5m").type == pa.int64() and arrow.schema.field("since").type == pa.float64()
    for name in view.feature_names:  # the list output, column by column, nulls included
        assert arrow.column(name).to_pylist() == pairs.column(name)
    path = result.to_parquet(tmp_path / "train.parquet")
    import pyarrow.parquet as pq

    assert pq.read_table(path).equals(arrow)
    assert pairs.to_arrow().column_names == ["entity", "event_timestamp_ms", *view.feature_names]
    assert pairs.to_arrow().column("tx" if False else "n_5m").to_pylist() == pairs.column("n_5m")
    # a record batch and a renamed timestamp column, by keyword
    renamed = table.rename_columns(["card", "ts_at", "label"]).to_batches()[0]
    again = get_historical_features(log, view, renamed, timestamp_column="ts_at")
    assert [r[3:] for r in again.rows] == [r[3:] for r in result.rows]


def test_pairs_with_datetimes_equal_int_milliseconds(stored: Any) -> None:
    log, view, _, rows = stored
    as_dt = [(c, datetime.fromtimestamp(t / 1000, tz=UTC)) for c, t in rows]
    assert get_historical_features(log, view, as_dt).rows == get_historical_features(log, view, rows).rows


@pytest.mark.parametrize(("make", "message"), [
    (lambda df: df.drop(columns=["card"]), "no column 'card'"),
    (lambda df: df.drop(columns=["event_timestamp"]), "no column 'event_timestamp'"),
    (lambda df: df.assign(event_timestamp=df["event_timestamp"].astype(str)), "must hold int milliseconds"),
    (lambda df: df.assign(event_timestamp=1.5), "must hold int milliseconds"),
    (lambda df: df.assign(event_timestamp=df["event_timestamp"].where(df["label"] == 0)), "null timestamps"),
    (lambda df: df.assign(n_5m=1), "named like features"),
    (lambda df: df["card"], "want a DataFrame"),
])
def test_bad_entity_frames_say_what_is_wrong(stored: Any, make: Any, message: str) -> None:
    log, view, _, rows = stored
    with pytest.raises(ValueError, match=message) as caught:
        get_historical_features(log, view, make(frame(rows)))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("rows", "message"), [
    ([("a", T0), ("a",)], "entity row 1: want \\(key, time"),
    ([("a", "soon")], "entity row 0"),
    ([("a", None)], "entity row 0"),
])
def test_bad_entity_pairs_say_what_is_wrong(memory_log: Log, rows: Any, message: str) -> None:
    view = make_view(append(memory_log, []), 0)
    with pytest.raises(ValueError, match=message) as caught:
        get_historical_features(memory_log, view, rows)
    assert "\n" not in str(caught.value)


def test_a_view_with_an_entity_function_needs_the_column_named(stored: Any) -> None:
    log, view, _, rows = stored
    by_function = replace(view, entity=lambda v: v["card"])
    with pytest.raises(ValueError, match="pass entity_column="):
        get_historical_features(log, by_function, frame(rows))
    named = get_historical_features(log, by_function, frame(rows), entity_column="card")
    assert named.rows == get_historical_features(log, view, frame(rows)).rows
