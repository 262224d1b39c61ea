"""A feature view in a real pipeline: the online store equals historical retrieval, and the
served values verify with 0 skew; out-of-order events are skew the checker reports."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventml.engine import App, Worker
from eventml.features import HOUR, FeatureView, get_historical_features
from eventml.features.online import OnlineStore, materialize
from eventml.features.verify import verify_served
from eventml.log import Message, open_log

from .test_point_in_time import VIEW_FEATURES, Event, generate


def _view(source: str) -> FeatureView:
    return FeatureView("card_activity", entity="card", source=source, features=VIEW_FEATURES,
                       ttl_ms=2 * HOUR, time="ts")


@pytest.fixture(params=["memory", "embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://{uuid.uuid4().hex[:6]}"
    if request.param == "embedded":
        return f"embedded://{tmp_path}/data"
    return f"kafka://{request.getfixturevalue('kafka_bootstrap')}"


def _run(url: str, events: list[Event], *, max_batch: int = 97) -> tuple[Any, FeatureView, Any]:
    app = App(f"f{uuid.uuid4().hex[:8]}", broker=url, max_batch=max_batch, min_batch=7)
    source = app.topic(f"{app.name}-tx", partitions=3)
    view = _view(source.name)
    topics = materialize(app, view, log_served=True)
    Worker(app).close()  # creates the topics
    log = open_log(url)
    log.append(source.name, [Message(orjson.dumps(v), c.encode(), timestamp_ms=t) for c, t, v in events])
    worker = Worker(app)
    worker.run(idle_timeout_s=2.0 if url.startswith("kafka") else 0.3)
    assert worker.stats.records == len(events)
    return log, view, topics


def test_online_equals_historical_and_served_values_have_no_skew(url: str) -> None:
    events = generate(seed=5, n=800)
    log, view, topics = _run(url, events)
    try:
        store = OnlineStore(log, view, topics.online)
        store.refresh()
        cards = sorted({c for c, _, _ in events})
        end = max(t for _, t, _ in events)
        assert store.stream_time_ms == end and len(store) == len(cards)
        for at in (end, end + 1, end + 7_000, end + 20 * 60_000, end + 3 * HOUR):  # cache, decay, TTL
            online = store.get_online_features([*cards, "nobody"], at_ms=at)
            historical = get_historical_features(log, view, [(c, at) for c in [*cards, "nobody"]])
            assert online == [{k: v for k, v in d.items() if k in view.feature_names}
                              for d in historical.to_dicts()]
        report = verify_served(log, view, topics.served or "", sample=None)
        assert report.compared == len(events) and report.ok, report.examples
    finally:
        log.close()


def test_out_of_order_events_are_skew_the_checker_reports(url: str) -> None:
    """The broken setup: a key's events arrive out of event-time order. Online serves
    what it knew when each arrived; history sorts by event time: they differ."""
    events = generate(seed=6, n=400)
    shuffled = events[:200] + list(reversed(events[200:]))
    log, view, topics = _run(url, shuffled)
    try:
        report = verify_served(log, view, topics.served or "", sample=None)
        assert report.compared == len(events) and report.mismatches > 0
    finally:
        log.close()
