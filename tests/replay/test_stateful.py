"""Replays of stateful pipelines: repartition + windows, and the fraud demo's app
(keyed state, a tumbling window, batched model scoring)."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from eventml.demos.fraud import FraudModel, generate_transactions, train_demo_model
from eventml.demos.fraud.app import fraud_app
from eventml.demos.fraud.events import transaction_event
from eventml.engine import App
from eventml.events import to_message
from eventml.log import Log, TopicSpec, open_log
from eventml.replay import diff_decisions, replay
from eventml.windows import Count, Tumbling

from .helpers import HOUR, T0, append_payments, payments, read, run_live, unique


@pytest.fixture
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Log:
    return open_log(f"embedded://{tmp_path_factory.mktemp('log')}/data")


def test_repartitioned_windows_are_recomputed_from_the_window_start(embedded: Log) -> None:
    items = payments(3000)
    append_payments(embedded, "payments", items)
    app = App("hourly", broker=embedded.url, max_wait_ms=1)
    (app.stream(app.topic("payments", partitions=3)).key_by("card")  # 3 partitions, like the input: per-partition order holds
        .window(Tumbling(size_ms=HOUR), emit="final").aggregate(Count())
        .to(app.topic("card-hours", partitions=2)))
    result = replay(app, embedded, start_ms=T0 + 2 * HOUR, end_ms=T0 + 4 * HOUR, sandbox="sb")
    assert result.read == {"payments": 1000}
    assert result.written["sb.hourly-keyby-2-repartition"] == 1000  # drained, then windows ran
    records = read(embedded, "sb.card-hours")
    hour = T0 + 2 * HOUR  # [3h, 4h) is still open when the replay's input ends
    direct = Counter(p.card for p in items if hour <= p.time_ms < hour + HOUR)
    got = Counter((r.key.decode(), orjson.loads(r.value)["start_ms"]) for r in records
                  if r.key is not None and r.value is not None)
    assert got == Counter({(card, hour): 1 for card in direct})
    assert {r.key.decode(): orjson.loads(r.value)["value"] for r in records
            if r.key is not None and r.value is not None} == dict(direct)


@pytest.fixture(scope="module")
def model() -> FraudModel:
    return train_demo_model(seed=7, history_events=20_000)


def test_fraud_app_replayed_from_the_start_matches_the_live_alerts(
    embedded: Log, model: FraudModel
) -> None:
    live = generate_transactions(6000, seed=(7, 0)).transactions
    topics = {"transactions": unique("tx-"), "alerts": unique("alerts-"), "velocity": unique("vel-")}
    embedded.create_topic(TopicSpec(topics["transactions"], 4))
    messages = [to_message(transaction_event(t)) for t in live]
    for i in range(0, len(messages), 1000):
        embedded.append(topics["transactions"], messages[i:i + 1000])

    def app() -> App:
        return fraud_app(model, name="fraud-live", broker=embedded.url, partitions=4,
                         velocity_limit=1, max_wait_ms=1, **topics)

    run_live(app(), embedded, len(live))
    start, end = live[0].time_ms, live[4000].time_ms  # from the start: the same state as live
    result = replay(app(), embedded, start_ms=start, end_ms=end, sandbox="whatif")
    assert result.read == {topics["transactions"]: 4000}
    sandbox_alerts = f"whatif.{topics['alerts']}"
    diff = diff_decisions(embedded, topics["alerts"], sandbox_alerts, start_ms=start, end_ms=end)
    assert diff.identical and diff.common == diff.baseline.decisions > 0, diff.to_json()
    live_velocity = {(r.key, r.value) for r in read(embedded, topics["velocity"])}
    replay_velocity = [(r.key, r.value) for r in read(embedded, f"whatif.{topics['velocity']}")]
    assert replay_velocity and len(set(replay_velocity)) == len(replay_velocity)
    assert set(replay_velocity) <= live_velocity  # windows closed by the window's end
    assert len(replay_velocity) > 0.9 * len(live_velocity) * 4000 / 6000

    # a later window starts with empty card state: it runs, reads exactly its events,
    # and alerts only on them, once each
    later = replay(app(), embedded, start_ms=end, end_ms=live[-1].time_ms + 1, sandbox="later")
    assert later.read == {topics["transactions"]: 2000}
    warm = diff_decisions(embedded, topics["alerts"], f"later.{topics['alerts']}", start_ms=end)
    assert warm.candidate.duplicates == 0 and warm.candidate.outside == 0
    assert warm.candidate.decisions > 0
