"""The fraud demo: pure cores (generator, features, threshold) and end-to-end runs on the log."""

from __future__ import annotations

import io
import math
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pytest
from rich.console import Console
from typer.testing import CliRunner

from eventml.cli.demo import _summary, demo_app
from eventml.demos.fraud import (
    FEATURE_NAMES,
    FeatureExtractor,
    FraudModel,
    Transaction,
    generate_transactions,
    run_fraud_demo,
    train_demo_model,
)
from eventml.demos.fraud.events import (
    ALERT_TYPE,
    transaction_event,
    transaction_from_event,
)
from eventml.demos.fraud.generator import GeneratorConfig
from eventml.demos.fraud.model import Threshold, choose_threshold, train_fraud_model, training_set
from eventml.demos.fraud.profile import risk_tier
from eventml.demos.fraud.run import redact_url
from eventml.demos.fraud.views import card_activity
from eventml.events import from_record, to_message
from eventml.features import get_historical_features
from eventml.log import ConsumerConfig, Log, Record, open_log
from eventml.views import ViewStore

MIN = 60_000
T0 = 1_709_251_200_000  # 2024-03-01T00:00:00Z
NEW_YORK = (40.7128, -74.0060)
LOS_ANGELES = (34.0522, -118.2437)

JSON_KEYS = {"events", "alerts", "precision", "recall", "throughput_eps", "latency_ms", "broker"}


def tx(
    at_min: float,
    amount: float,
    *,
    card: str = "card-1",
    category: str = "grocery",
    where: tuple[float, float] = NEW_YORK,
) -> Transaction:
    return Transaction(card, "m-1", category, amount, where[0], where[1], T0 + int(at_min * MIN))


def feature(row: list[float], name: str) -> float:
    return row[FEATURE_NAMES.index(name)]


# ---------------------------------------------------------------- features (pure)


def test_count_and_sum_cover_the_last_hour_including_the_current_transaction() -> None:
    fx = FeatureExtractor()
    rows = [
        fx.update_one(tx(0, 10.0)),
        fx.update_one(tx(10, 20.0)),
        fx.update_one(tx(20, 1000.0, card="card-2")),  # another card: its own window
        fx.update_one(tx(50, 30.0)),
        fx.update_one(tx(61, 5.0)),  # the one at 0 min has left the window
        fx.update_one(tx(70, 1.5)),  # exactly one hour after 10 min: (t - 1h, t] excludes it
        fx.update_one(tx(200, 2.25)),
    ]
    got = [(feature(r, "count_1h"), feature(r, "sum_1h")) for r in rows]
    assert got == [
        (1, 10.0),
        (2, 30.0),
        (1, 1000.0),
        (3, 60.0),
        (3, 55.0),
        (3, 36.5),
        (1, 2.25),
    ]


def test_zscore_is_on_log_amounts_against_previous_transactions_only() -> None:
    fx = FeatureExtractor()
    history = [20.0, 25.0, 40.0, 30.0]
    rows = [fx.update_one(tx(i * 120, a)) for i, a in enumerate(history)]
    assert [feature(r, "amount_zscore") for r in rows[:2]] == [0.0, 0.0]  # < 2 previous
    assert feature(rows[3], "history_count") == 3
    logs = np.log1p(history[:3])
    expected = (math.log1p(30.0) - logs.mean()) / max(float(logs.std(ddof=1)), 0.25)
    assert feature(rows[3], "amount_zscore") == pytest.approx(expected, rel=1e-12)

    big = fx.update_one(tx(600, 900.0, category="jewelry"))
    logs = np.log1p(history)
    expected = (math.log1p(900.0) - logs.mean()) / max(float(logs.std(ddof=1)), 0.25)
    assert feature(big, "amount_zscore") == pytest.approx(expected, rel=1e-12)
    assert feature(big, "new_category") == 1.0
    assert feature(rows[1], "new_category") == 0.0


def test_zscore_deviation_has_a_floor() -> None:
    fx = FeatureExtractor()
    for i in range(5):
        fx.update_one(tx(i * 120, 10.0))  # identical amounts: std 0
    row = fx.update_one(tx(700, 20.0))
    assert feature(row, "amount_zscore") == pytest.approx((math.log1p(20) - math.log1p(10)) / 0.25)


def test_speed_and_distance_from_home() -> None:
    fx = FeatureExtractor()
    first = fx.update_one(tx(0, 10.0))
    assert feature(first, "speed_kmh") == 0.0 and feature(first, "since_last_log_s") == -1.0
    jump = fx.update_one(tx(60, 10.0, where=LOS_ANGELES))  # ~3,940 km in one hour
    assert 3900 < feature(jump, "speed_kmh") < 4000
    assert feature(jump, "home_distance_km") == pytest.approx(feature(jump, "speed_kmh"))
    assert feature(jump, "since_last_log_s") == pytest.approx(math.log1p(3600))
    back = fx.update_one(tx(60 * 24, 10.0))  # home a day later: slow, and at home
    assert feature(back, "speed_kmh") < 200 and feature(back, "home_distance_km") < 1e-6


def test_features_are_the_same_after_a_trip_through_the_log() -> None:
    """Training (generator output) and serving (decoded events) see identical transactions."""
    txs = generate_transactions(300, seed=3).transactions
    decoded = [
        transaction_from_event(from_record(_as_record(to_message(transaction_event(t)))))
        for t in txs
    ]
    assert decoded == list(txs)
    np.testing.assert_array_equal(
        FeatureExtractor().update_many(txs), FeatureExtractor().update_many(decoded)
    )


def _as_record(message: object) -> Record:
    from eventml.log import Message

    assert isinstance(message, Message)
    return Record("t", 0, 0, message.timestamp_ms or 0, message.key, message.value, message.headers)


# ---------------------------------------------------------------- generator (pure)


def test_generator_is_deterministic_and_time_ordered() -> None:
    a = generate_transactions(5_000, seed=11)
    b = generate_transactions(5_000, seed=11)
    assert a.transactions == b.transactions and a.patterns == b.patterns
    assert generate_transactions(5_000, seed=12).transactions != a.transactions
    times = [t.time_ms for t in a.transactions]
    assert times == sorted(times)
    assert len(a) == 5_000 and len(a.labels) == 5_000


def test_generator_injects_every_pattern_at_a_realistic_rate() -> None:
    g = generate_transactions(30_000, seed=5)
    assert 0.005 <= g.fraud_rate <= 0.02, g.fraud_rate
    assert set(g.patterns) == {"", *(name for name, _ in GeneratorConfig().pattern_weights)}
    assert {t.card_id for t in g.transactions} <= {f"card-{i:05d}" for i in range(10_000)}
    assert len({t.card_id for t in g.transactions}) > 8_000
    assert all(t.amount > 0 for t in g.transactions)
    testing = [t for t, p in zip(g.transactions, g.patterns, strict=True) if p == "card_testing"]
    assert sum(t.amount < 5 for t in testing) / len(testing) > 0.8  # mostly tiny amounts


def test_generator_config_changes_the_fraud_rate() -> None:
    none = generate_transactions(
        3_000, seed=1, config=GeneratorConfig(fraud_episodes_per_transaction=0)
    )
    assert none.fraud_count == 0


def test_choose_threshold_maximises_recall_at_the_target_precision() -> None:
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([True, True, False, True, True, False, True])
    t = choose_threshold(scores, labels, target_precision=0.8)
    assert (t.value, t.precision, t.recall) == (0.6, 0.8, 0.8)
    best_f1 = choose_threshold(scores, labels, target_precision=1.01)
    assert best_f1.value == 0.4 and best_f1.recall == 1.0


# ---------------------------------------------------------------- end to end on the log


@pytest.fixture(scope="module")
def model() -> FraudModel:
    return train_demo_model(seed=7)


def read_topic(log: Log, topic: str, timeout_s: float = 60.0) -> list[Record]:
    end = log.end_offsets(topic)
    consumer = log.consumer(
        f"read-{uuid.uuid4().hex[:8]}", [topic], config=ConsumerConfig(auto_offset_reset="earliest")
    )
    out: list[Record] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            out.extend(consumer.poll(10_000, timeout_s=0.1))
            assigned = consumer.assignment()
            if len(assigned) == len(end) and all(
                consumer.position(tp) >= end[tp.partition] for tp in assigned
            ):
                return out
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
    finally:
        consumer.close()


def test_model_is_trained_on_the_history_with_the_serving_features(model: FraudModel) -> None:
    assert model.feature_names == FEATURE_NAMES
    assert 0 < model.threshold.value < 1
    assert model.threshold.precision >= 0.9  # chosen on the later part of the history
    live = generate_transactions(20_000, seed=(7, 0))
    x, y = training_set(live)
    alerted = model.score_many(x) >= model.threshold.value
    assert (alerted & y).sum() / alerted.sum() >= 0.8


def test_memory_log_run_meets_precision_and_recall(model: FraudModel) -> None:
    log = open_log("memory://")
    progress: list[int] = []
    result = run_fraud_demo(log, events=20_000, model=model, progress=progress.append,
                            candidate=model)

    assert result.events == 20_000
    assert result.precision >= 0.8 and result.recall >= 0.6, result
    assert progress == sorted(progress) and progress[-1] == 20_000
    assert result.throughput_eps > 0
    assert result.latency_p50_ms is not None and result.latency_p99_ms is not None
    assert 0 <= result.latency_p50_ms <= result.latency_p99_ms

    transactions = read_topic(log, "transactions")
    alerts = read_topic(log, "fraud-alerts")
    assert len(transactions) == 20_000
    assert len(alerts) == result.alerts > 0
    by_id = {from_record(r).id: r for r in transactions}
    for record in alerts:
        alert = from_record(record)
        assert alert.type == ALERT_TYPE
        assert alert.data["transaction_id"] in by_id  # every alert is for a real transaction
        assert alert.key == from_record(by_id[alert.data["transaction_id"]]).key  # same card
        assert alert.data["score"] >= alert.data["threshold"]
        assert set(alert.data["features"]) == set(FEATURE_NAMES)

    data = result.to_json_dict()
    assert set(data) >= JSON_KEYS and set(data["latency_ms"]) == {"p50", "p99"}
    assert data["broker"] == "memory://"
    orjson.dumps(data)  # serialisable

    assert result.what_if is not None and result.what_if["diff"]["added"] == 0
    again = run_fraud_demo(log, events=20_000, model=model, what_if=False)  # reads only its own run
    assert (again.precision, again.recall, again.alerts) == (
        result.precision,
        result.recall,
        result.alerts,
    )
    assert len(read_topic(log, "transactions")) == 40_000


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


def test_runs_unchanged_on_durable_logs(durable_log: Log, model: FraudModel, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    tx_topic, alerts_topic = f"tx-{suffix}", f"alerts-{suffix}"
    result = run_fraud_demo(
        durable_log,
        events=4_000,
        model=model,
        transactions_topic=tx_topic,
        alerts_topic=alerts_topic,
        views_db=tmp_path / "card_risk.sqlite",
        candidate=model,
    )
    assert result.events == 4_000 and result.alerts > 0
    assert result.topics == (tx_topic, alerts_topic)
    alerts = read_topic(durable_log, alerts_topic)
    transactions = read_topic(durable_log, tx_topic)
    ids = {from_record(r).id for r in transactions}
    assert len(alerts) == result.alerts
    assert {from_record(r).data["transaction_id"] for r in alerts} <= ids

    # the card_risk read model folded every transaction and every alert exactly once
    rows = dict(ViewStore(tmp_path / "card_risk.sqlite").query(limit=10_000))
    expected_tx = Counter(r.key.decode() for r in transactions if r.key is not None)
    expected_alerts = Counter(from_record(r).key for r in alerts)
    assert {k: v["transactions"] for k, v in rows.items()} == dict(expected_tx)
    assert {k: v["alerts"] for k, v in rows.items() if v["alerts"]} == dict(expected_alerts)
    assert all(v["risk"] == risk_tier(v["alerts"], v["max_score"]) for v in rows.values())
    profiles = result.risk_profiles
    assert profiles is not None and profiles["cards"] == len(expected_tx)
    assert profiles["events"] == len(transactions) + len(alerts) and profiles["dead_letters"] == 0
    assert profiles["by_risk"]["high"] == sum(v["risk"] == "high" for v in rows.values())

    # replaying the same model into a sandbox reproduces the live alerts (on Kafka too)
    assert result.what_if is not None
    diff = result.what_if["diff"]
    assert (diff["added"], diff["removed"], diff["baseline"]["events"]) == (0, 0, diff["common"])


def test_feature_view_served_values_have_no_skew_across_two_runs(
    durable_log: Log, model: FraudModel
) -> None:
    """The card_activity view's served values equal point-in-time retrieval for 10,000
    sampled (card, time) pairs; a second run on the same topic checks only its own events."""
    suffix = uuid.uuid4().hex[:8]
    for _ in range(2):
        result = run_fraud_demo(durable_log, events=12_000, model=model, features=True,
                                what_if=False, profiles=False,  # (a view file in ./.eventml on Kafka)
                                transactions_topic=f"tx-{suffix}", alerts_topic=f"alerts-{suffix}")
        assert result.feature_skew == {"view": "card_activity", "compared": 10_000,
                                       "mismatches": 0, "examples": []}


def test_a_model_on_the_feature_view_scores_the_values_it_was_served(tmp_path: Path) -> None:
    """Trained on point-in-time retrieval of the view over its history, the model is fed
    the view's served values in the pipeline: each alert's view features equal historical
    retrieval at that transaction, and the served values have no skew."""
    view = card_activity()
    history = generate_transactions(30_000, seed=(3, 1))
    model = train_fraud_model(history, random_state=3, view=view)
    assert model.view_features == tuple(view.feature_names)
    assert model.feature_names == FEATURE_NAMES + model.view_features
    log = open_log(f"embedded://{tmp_path}/data")
    result = run_fraud_demo(log, events=8_000, model=model, what_if=False, profiles=False)
    assert result.feature_skew is not None and result.feature_skew["mismatches"] == 0
    assert result.precision >= 0.7 and result.recall >= 0.6, result
    alerts = [from_record(r) for r in read_topic(log, "fraud-alerts")]
    assert len(alerts) == result.alerts > 0
    rows = [(a.key, a.time_ms) for a in alerts]
    expected = get_historical_features(log, view, rows).to_dicts()
    for alert, row in zip(alerts, expected, strict=True):
        for name in view.feature_names:
            want = None if row[name] is None else round(float(row[name]), 6)
            assert alert.data["features"][name] == want, (alert.data, row)


def test_what_if_replays_the_champion_exactly_and_a_lower_threshold_adds_alerts(
    model: FraudModel, tmp_path: Path
) -> None:
    """Replaying the live model over the run reproduces its alerts on the last day (the
    replay warms state up from the run's start); a candidate with half the threshold only
    adds alerts. Both are scored against the chargebacks the run appended."""
    log = open_log(f"embedded://{tmp_path}/data")
    same = run_fraud_demo(log, events=8_000, model=model, candidate=model, profiles=False)
    assert same.chargebacks == same.fraud_events
    assert same.what_if is not None
    diff = same.what_if["diff"]
    assert same.what_if["replayed"] == 8_000
    assert (diff["added"], diff["removed"]) == (0, 0) and diff["common"] > 0
    assert diff["baseline"]["duplicates"] == diff["candidate"]["duplicates"] == 0
    assert diff["baseline"]["precision"] == diff["candidate"]["precision"]
    assert diff["positives"] > 0

    lower = replace(model, threshold=Threshold(model.threshold.value / 2, math.nan, math.nan))
    other = run_fraud_demo(log, events=8_000, model=model, candidate=lower, profiles=False)
    assert other.what_if is not None
    diff = other.what_if["diff"]
    assert diff["removed"] == 0 and diff["added"] > 0
    assert diff["candidate"]["recall"] >= diff["baseline"]["recall"]
    # the second run continued the timeline: its window holds only its own alerts
    assert diff["baseline"]["events"] == diff["common"] == same.what_if["diff"]["common"]


# ---------------------------------------------------------------- the command


@pytest.mark.parametrize("mode", ["--lifecycle", "--no-lifecycle"])
def test_cli_json_is_one_object_on_stdout(
    model: FraudModel, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setattr("eventml.demos.fraud.run.train_demo_model", lambda *a, **k: model)
    result = CliRunner().invoke(
        demo_app, ["fraud", mode, "--events", "3000", "--json", "--broker", "memory://"]
    )
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert set(data) >= JSON_KEYS and data["events"] == 3000
    if mode == "--lifecycle":  # 3,000 transactions: not even a day, the tactics never change
        life = data["lifecycle"]
        assert life["scenario"]["events"] == 3000 and not life["drift"]["fired"]
        assert data["what_if"] is None and life["recovery"]["recovered"] is False
        console = Console(width=200, record=True, file=io.StringIO())
        console.print(_summary(data))  # the table renders a run without a drift too
        text = console.export_text()
        assert "no alarm after the change" in text and "promotion" in text
    else:
        assert data["lifecycle"] is None and data["what_if"] is not None


def test_cli_lifecycle_refuses_a_rate() -> None:
    result = CliRunner().invoke(demo_app, ["fraud", "--rate", "1000", "--broker", "memory://"])
    assert result.exit_code == 2 and "--no-lifecycle --rate" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_bad_broker_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(demo_app, ["fraud", "--broker", "nope://x"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "nope://" in result.stderr


def test_redact_url_hides_passwords() -> None:
    assert redact_url("kafka://u:secret@host:9092") == "kafka://u:***@host:9092"
    assert redact_url("embedded://./.eventml") == "embedded://./.eventml"
