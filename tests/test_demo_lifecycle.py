"""The fraud demo's model lifecycle: the tactics change, chargebacks during the stream,
and (end to end) drift -> retraining -> shadow scoring -> promotion -> recovery."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pytest

from eventml.cli.demo import _lifecycle_rows
from eventml.demos.fraud import FraudModel, train_demo_model
from eventml.demos.fraud.catalog import CITIES
from eventml.demos.fraud.events import CHARGEBACK_TYPE
from eventml.demos.fraud.features import local_hour
from eventml.demos.fraud.generator import DAY_MS, GeneratorConfig, generate_transactions
from eventml.demos.fraud.lifecycle import LifecycleConfig, LifecycleTopics, run_lifecycle
from eventml.demos.fraud.scenario import (
    NEW_TACTIC,
    DriftScenario,
    build_timeline,
)
from eventml.demos.fraud.transaction import datetime_to_ms
from eventml.log import Log, open_log
from eventml.ml.control import alias_changes
from eventml.ml.predlog import iter_predictions
from eventml.ml.promotion import PromotionPolicy
from eventml.ml.registry import ModelRegistry

HOUR = 3_600_000
SCENARIO = DriftScenario(cards=1_000, onset_days=2.0)
START = GeneratorConfig().start


# ---------------------------------------------------------------- the scenario (pure)


def test_tactics_change_at_the_stated_time_and_not_before() -> None:
    """Before the onset the stream is exactly the stream without a change; after it, the
    new tactic appears and takes most new episodes."""
    changed = generate_transactions(25_000, seed=3, config=SCENARIO.generator_config(START))
    same = generate_transactions(
        25_000, seed=3, config=replace(SCENARIO.generator_config(START), tactics_change=None)
    )
    onset = SCENARIO.generator_config(START).change_ms
    assert onset is not None
    times = np.array([t.time_ms for t in changed.transactions])
    before = int(np.searchsorted(times, onset))
    assert 0 < before < len(times)
    assert changed.transactions[:before] == same.transactions[:before]
    assert NEW_TACTIC not in changed.patterns[:before]
    after = [p for p in changed.patterns[before:] if p]
    assert NEW_TACTIC not in same.patterns
    assert after.count(NEW_TACTIC) / len(after) > 0.4, after


def test_gift_card_cashout_is_low_and_slow_at_night_at_home() -> None:
    g = generate_transactions(40_000, seed=4, config=SCENARIO.generator_config(START))
    cash = [t for t, p in zip(g.transactions, g.patterns, strict=True) if p == NEW_TACTIC]
    assert len(cash) > 30
    assert {t.category for t in cash} == {"digital_goods"}
    assert {t.amount for t in cash} <= {50.0, 75.0, 100.0, 150.0, 200.0}
    hours = [local_hour(t.time_ms, t.lon) for t in cash]
    assert sum(h < 8 for h in hours) / len(hours) > 0.9  # the small hours, local time
    cities = {(c.lat, c.lon) for c in CITIES}
    assert all((t.lat, t.lon) in cities for t in cash)  # online, from a city (no merchant place)
    by_card: dict[str, list[int]] = {}
    for t in cash:
        by_card.setdefault(t.card_id, []).append(t.time_ms)
    gaps = [b - a for ts in by_card.values() for a, b in itertools.pairwise(ts)]
    assert gaps and min(gaps) >= 25 * 60_000  # never a burst


def test_unknown_pattern_names_are_refused() -> None:
    bad = replace(SCENARIO, new_mix=(("nope", 1.0),))
    with pytest.raises(ValueError, match="unknown fraud patterns"):
        generate_transactions(10, seed=1, config=bad.generator_config(START))


def test_chargebacks_arrive_days_later_interleaved_by_event_time() -> None:
    live = generate_transactions(20_000, seed=5, config=SCENARIO.generator_config(START))
    delays = SCENARIO.chargeback_delays(np.random.default_rng(1), live.fraud_count)
    assert delays.min() >= SCENARIO.delay_min_ms and delays.max() <= SCENARIO.delay_max_ms
    assert 1.0 * DAY_MS < np.median(delays) < 1.5 * DAY_MS
    timeline = build_timeline(live, delays)
    ids = {e.id: i for i, e in enumerate(timeline.events)}
    slices = list(timeline.slices(HOUR))
    seen_tx = [e.id for s in slices for e in s.transactions]
    seen_cb = [e for s in slices for e in s.chargebacks]
    assert seen_tx == [e.id for e in timeline.events]  # every transaction once, in order
    assert len(seen_cb) + timeline.late_chargebacks == live.fraud_count
    last = live.transactions[-1].time_ms
    for s in slices:
        assert all(s.start_ms <= datetime_to_ms(e.time) < s.end_ms
                   for e in s.transactions + s.chargebacks)
    for cb in seen_cb:
        at = datetime_to_ms(cb.time)
        assert cb.type == CHARGEBACK_TYPE and at <= last
        tx = ids[cb.subject or ""]
        assert live.labels[tx]  # only fraud is reported
        assert at - live.transactions[tx].time_ms >= SCENARIO.delay_min_ms
        assert timeline.chargeback_times[tx] == at


# ---------------------------------------------------------------- the lifecycle, end to end

DAY = 24 * HOUR
#: The demo's scenario, compressed for a test: 400 cards (~1,000 transactions a day),
#: five times the fraud, chargebacks within hours, a one-day label horizon.
SMALL = DriftScenario(
    cards=400, onset_days=2.5, pre_episode_rate=0.02, post_episode_rate=0.04,
    delay_min_ms=3 * HOUR, delay_median_ms=6 * HOUR, delay_max_ms=3 * DAY, maturity_ms=DAY,
)
SMALL_CONFIG = LifecycleConfig(
    scenario=SMALL, step_ms=3 * HOUR, drift_window=30, drift_reference=100,
    drift_within_events=3_000,
    retrain_cooldown_ms=DAY,
    promotion=PromotionPolicy(window=500, min_events=200, min_per_class=20, alpha=0.01,
                              margin=0.05),
)


@pytest.fixture(scope="module")
def champion() -> FraudModel:
    return train_demo_model(seed=7, history_events=60_000)


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def durable_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Log]:
    if request.param == "embedded":
        url = f"embedded://{tmp_path}/data"
    else:
        url = f"kafka://{request.getfixturevalue('kafka_bootstrap')}"
    log = open_log(url)
    try:
        yield log
    finally:
        log.close()


def test_drift_retraining_promotion_and_recovery(
    durable_log: Log, champion: FraudModel, tmp_path: Path
) -> None:
    """The issue's bar, on a small seeded run: the drift alarm comes after the tactics
    change and not before; a retrained challenger is registered, shadow-scores, is
    promoted and acts from a batch boundary on; recall on fraud after the promotion is
    within 5 points of the recall before the change (and the champion alone was far off)."""
    log = durable_log
    suffix = uuid.uuid4().hex[:8]  # Kafka's broker (and its _models topic) is shared
    name = f"fraud-{suffix}"
    topics = LifecycleTopics(transactions=f"tx-{suffix}", chargebacks=f"cb-{suffix}",
                             predictions=f"pred-{suffix}", alerts=f"alerts-{suffix}",
                             drift=f"drift-{suffix}")
    registry = ModelRegistry(tmp_path / "models")
    run = run_lifecycle(log, events=10_000, seed=7, champion=champion, start=START,
                        config=replace(SMALL_CONFIG, model=name), topics=topics,
                        registry=registry)
    s = run.summary
    orjson.dumps(s)  # the demo's JSON summary
    onset_ms = int(run.timeline.times[0]) + SMALL.onset_ms

    # the drift: after the tactics change, never before it
    drift = s["drift"]
    assert drift["fired"] and drift["alarms_before_onset"] == 0, drift
    assert 0 < drift["events_after_onset"] <= 3_000 and drift["days_after_onset"] > 0
    assert drift["within_stated"] and drift["within_events"] == 3_000
    assert drift["value"] > drift["threshold"] and drift["p_value"] <= SMALL_CONFIG.drift_alpha

    # one retraining: registered as v2, trained on what was known at its cut-off
    (retraining,) = s["retraining"]
    assert retraining["version"] == 2 and retraining["training"]["to"] == retraining["cutoff"]
    v2 = registry.get(name, 2)
    assert v2.training is not None and v2.training.topic == topics.transactions
    cutoff_ms = v2.training.end_ms
    assert cutoff_ms is not None and cutoff_ms > onset_ms
    assert retraining["holdout"]["rows"] > 0 and retraining["champion_on_holdout"] is not None

    # the control topic: the aliases moved in this order, each change an event
    moves = [(c.alias, c.version) for c in alias_changes(log) if c.model == name]
    assert moves == [("champion", 1), ("challenger", 1), ("challenger", 2), ("champion", 2)]

    # the prediction log: exactly one primary prediction per transaction; v2 shadow-scores
    # from its registration on, and acts from its promotion on, switching between batches
    primary: Counter[str] = Counter()
    acted: dict[str, int | None] = {}
    shadow_times = []
    for p in iter_predictions(log, topics.predictions):
        if p.role == "primary":
            primary[p.event_id] += 1
            acted[p.event_id] = p.version
        elif p.version == 2:
            shadow_times.append(p.time_ms)
    ids = [e.id for e in run.timeline.events]
    assert primary == Counter(ids)
    assert shadow_times and min(shadow_times) >= cutoff_ms
    promo = s["promotion"]
    assert promo["promoted"] and promo["version"] == 2 and promo["p_value"] < 0.01
    switch = promo["event_index"]
    assert [acted[i] for i in ids] == [1] * switch + [2] * (len(ids) - switch)
    assert run.timeline.times[switch] > cutoff_ms

    # recall: lost to the new tactic, back within 5 points after the promotion
    periods = s["periods"]
    pre, during, after = (periods[k] for k in ("pre_drift", "post_drift_champion",
                                               "after_promotion"))
    assert min(pre["fraud"], during["fraud"], after["fraud"]) >= 100, periods
    assert during["recall"] < pre["recall"] - 0.3
    assert during["recall_by_pattern"][NEW_TACTIC] < 0.2
    assert after["recall"] >= pre["recall"] - 0.05 and s["recovery"]["recovered"]
    assert after["recall_by_pattern"][NEW_TACTIC] > 0.8

    # the command's table states it
    rows = dict(_lifecycle_rows(s))
    assert rows["  recovered"] == s["recovery"]["statement"]
    assert f"v2 replaced v1 at {promo['time']}" in rows["  promotion"]
