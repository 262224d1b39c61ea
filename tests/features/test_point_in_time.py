"""Point-in-time correctness: historical features never see a row's future, honour the
TTL, and equal an independent brute-force reference; a naive join is caught."""

from __future__ import annotations

import random
import uuid
from typing import Any

import orjson
import pytest

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
from eventml.log import Log, Message, TopicSpec

T0 = 1_700_000_000_000
VIEW_FEATURES = [
    count("tx_10m", 10 * MINUTE),
    total("amount_1h", "amount", HOUR),
    mean("amount_mean_1h", "amount", HOUR),
    maximum("amount_max_10m", "amount", 10 * MINUTE),
    distinct("merchants_1h", "merchant", HOUR),
    since_last("secs_since_last"),
]
Event = tuple[str, int, dict[str, Any]]  # key, time, value
Rows = list[tuple[str, int]]


def view(source: str, ttl_ms: int | None = 2 * HOUR) -> FeatureView:
    return FeatureView("card_activity", entity="card", source=source, features=VIEW_FEATURES,
                       ttl_ms=ttl_ms, time="ts")


def generate(seed: int, cards: int = 8, n: int = 1_500) -> list[Event]:
    """Bursty transactions over ~6 h; times per card increase (the log's order)."""
    rng = random.Random(seed)
    clock = {f"c{i}": T0 + rng.randrange(HOUR) for i in range(cards)}
    out: list[Event] = []
    for _ in range(n):
        card = rng.choice(sorted(clock))
        clock[card] += rng.choice([rng.randrange(1, 5_000), rng.randrange(1, 40 * MINUTE)])
        value = {"card": card, "ts": clock[card], "amount": round(rng.uniform(1, 500), 2),
                 "merchant": f"m{rng.randrange(12)}"}
        out.append((card, clock[card], value))
    return out


def rows_for(events: list[Event], seed: int, extra: int = 400) -> Rows:
    """Rows at event times (training rows), just before/after them, and at random times,
    some far past the last event (TTL) and some for an unknown card."""
    rng = random.Random(seed)
    rows: Rows = []
    for card, t, _ in rng.sample(events, 300):
        rows += [(card, t), (card, t - 1), (card, t + 1)]
    end = max(t for _, t, _ in events)
    cards = sorted({c for c, _, _ in events})
    rows += [(rng.choice(cards), rng.randrange(T0, end + 4 * HOUR)) for _ in range(extra)]
    rows += [("nobody", T0 + HOUR)]
    return rows


def reference(events: list[Event], rows: Rows, ttl_ms: int | None) -> list[dict[str, Any]]:
    """Brute force from the raw events, written apart from the library's code."""
    out = []
    for card, t in rows:
        seen = [(et, v) for c, et, v in events if c == card and et <= t]
        newest = max((et for et, _ in seen), default=None)
        values: dict[str, Any] = {}
        for f in VIEW_FEATURES:
            if newest is None or (ttl_ms is not None and t - newest > ttl_ms):
                values[f.name] = None
                continue
            if f.kind == "since_last":
                before = max((et for et, _ in seen if et < t), default=None)
                values[f.name] = None if before is None else (t - before) / 1000
                continue
            assert f.window_ms is not None
            first_tile = t // f.tile - f.window_ms // f.tile + 1
            window = [v for et, v in seen if et // f.tile >= first_tile]
            name = f.name
            if name.startswith("tx_"):
                values[name] = len(window)
            elif name == "amount_1h":
                values[name] = sum(v["amount"] for v in window)
            elif name == "amount_mean_1h":
                values[name] = sum(v["amount"] for v in window) / len(window) if window else None
            elif name == "amount_max_10m":
                values[name] = max((v["amount"] for v in window), default=None)
            else:
                values[name] = len({v["merchant"] for v in window})
        out.append(values)
    return out


def check_point_in_time(got: list[dict[str, Any]], want: list[dict[str, Any]], rows: Rows) -> list[str]:
    """Every mismatch, as text (float sums compared to 1e-9)."""
    bad = []
    for (card, t), g, w in zip(rows, got, want, strict=True):
        for name, expected in w.items():
            actual = g[name]
            same = (actual == expected if not isinstance(expected, float) or actual is None
                    else abs(actual - expected) <= 1e-9 * max(1.0, abs(expected)))
            if not same:
                bad.append(f"{card}@{t} {name}: got {actual!r}, want {expected!r}")
    return bad


def _append(log: Log, events: list[Event], partitions: int = 3) -> str:
    topic = f"tx-{uuid.uuid4().hex[:8]}"
    log.create_topic(TopicSpec(topic, partitions))
    log.append(topic, [Message(orjson.dumps(v), c.encode(), timestamp_ms=t) for c, t, v in events])
    return topic


def test_historical_features_equal_the_reference_and_never_leak(log: Log) -> None:
    events = generate(seed=1)
    rows = rows_for(events, seed=2)
    topic = _append(log, events)
    result = get_historical_features(log, view(topic), rows)
    assert result.events_read == len(events)
    assert result.columns[:2] == ["entity", "event_timestamp_ms"]
    assert [(r[0], r[1]) for r in result.rows] == rows  # the rows asked, in their order
    got = [{k: v for k, v in d.items() if k not in ("entity", "event_timestamp_ms")}
           for d in result.to_dicts()]
    assert check_point_in_time(got, reference(events, rows, 2 * HOUR), rows) == []
    # the TTL blanked some rows and kept others; the unknown card has nothing
    assert any(v is None for v in result.column("tx_10m")) and any(result.column("tx_10m"))
    assert result.to_dicts()[-1]["tx_10m"] is None


def naive_join(events: list[Event], rows: Rows, v: FeatureView) -> list[dict[str, Any]]:
    """The classic mistake: fold every event of the row's last tile (the tile the row
    falls in), including those after the row's time, then read."""
    out = []
    for card, t in rows:
        state = EntityState(v)
        for c, et, value in sorted(events, key=lambda e: e[1]):
            if c == card and et // MINUTE <= t // MINUTE:
                state.update(value, et)
        newest = state.last_ms if state.last_ms is not None else t
        out.append(state.values_at(max(t, newest)))
    return out


def test_the_checker_catches_a_naive_join() -> None:
    events = generate(seed=3)
    rows = rows_for(events, seed=4)
    mismatches = check_point_in_time(naive_join(events, rows, view("x")), reference(events, rows, 2 * HOUR), rows)
    assert len(mismatches) > 50, mismatches[:5]


def test_the_state_refuses_to_answer_for_its_past() -> None:
    state = EntityState(view("x"))
    state.update({"amount": 1.0, "merchant": "m"}, T0 + 10)
    with pytest.raises(ValueError, match="already folded in"):
        state.values_at(T0 + 9)


def test_ttl_and_since_last() -> None:
    v = view("x", ttl_ms=30 * MINUTE)
    state = EntityState(v)
    state.update({"amount": 10.0, "merchant": "a"}, T0)
    assert state.values_at(T0)["secs_since_last"] is None  # nothing before the first event
    state.update({"amount": 20.0, "merchant": "b"}, T0 + 90_000)
    at_event = state.values_at(T0 + 90_000)
    assert at_event["secs_since_last"] == 90.0  # at an event: since the one before
    assert at_event["tx_10m"] == 2 and at_event["merchants_1h"] == 2
    later = state.values_at(T0 + 90_000 + 5 * MINUTE)
    assert later["secs_since_last"] == 300.0  # between events: since the newest
    assert all(value is None for value in state.values_at(T0 + 90_000 + 31 * MINUTE).values())


def test_long_windows_keep_tiles_not_events() -> None:
    """A 24 h window over an event a second keeps at most 61 tiles once compacted."""
    from eventml.features import DAY

    v = FeatureView("v", entity="k", source="s", features=[total("s24h", "x", DAY)])
    state = EntityState(v)
    for i in range(2 * 24 * 3600):
        state.update({"x": 1.0}, T0 + i * 1000)
        if i % 3600 == 0:
            state.compact(T0 + i * 1000)
    state.compact(T0 + (2 * 24 * 3600 - 1) * 1000)
    tiles = state._tiles[0]
    assert tiles is not None and len(tiles.order) <= 61
    value = state.values_at(T0 + (2 * 24 * 3600 - 1) * 1000)["s24h"]
    assert 23.6 * 3600 <= value <= 24 * 3600  # tile granularity: between W - tile and W



@pytest.mark.parametrize("keyed", [True, False])
def test_forked_workers_give_the_same_rows(log: Log, keyed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Partitions swept by forked workers equal one process; a topic not keyed by the
    entity (an entity's events spread over partitions) falls back to one process."""
    from eventml.features import historical

    events = generate(seed=7, n=600)
    rows = rows_for(events, seed=8, extra=100)
    topic = f"tx-{uuid.uuid4().hex[:8]}"
    log.create_topic(TopicSpec(topic, 3))
    log.append(topic, [Message(orjson.dumps(v), (c if keyed else str(i % 5)).encode(), timestamp_ms=t)
                       for i, (c, t, v) in enumerate(events)])
    one = get_historical_features(log, view(topic), rows, workers=1)
    monkeypatch.setattr(historical, "_PARALLEL_FROM", 0)
    used: list[bool] = []
    by_partition = historical._by_partition

    def spy(*args: Any) -> Any:
        result = by_partition(*args)
        used.append(result is not None)
        return result

    monkeypatch.setattr(historical, "_by_partition", spy)
    forked = get_historical_features(log, view(topic), rows, workers=2)
    assert used == [keyed]  # forked when keyed by the entity; one process otherwise
    assert forked.rows == one.rows and forked.events_read == one.events_read == len(events)
