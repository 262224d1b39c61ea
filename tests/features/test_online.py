"""A feature view in a real pipeline: the online store equals historical retrieval, and the
served values verify with 0 skew, out-of-order (late) events included; a view defined
differently for training than for serving is skew the checker reports."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventml.engine import App, Worker
from eventml.features import HOUR, MINUTE, FeatureView, get_historical_features
from eventml.features.online import OnlineStore, materialize
from eventml.features.verify import verify_served
from eventml.log import Message, open_log

from .test_point_in_time import VIEW_FEATURES, Event, generate


def _view(source: str, lateness_ms: int = 0) -> FeatureView:
    return FeatureView("card_activity", entity="card", source=source, features=VIEW_FEATURES,
                       ttl_ms=2 * HOUR, time="ts", allowed_lateness_ms=lateness_ms)


@pytest.fixture(params=["memory", "embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://{uuid.uuid4().hex[:6]}"
    if request.param == "embedded":
        return f"embedded://{tmp_path}/data"
    return f"kafka://{request.getfixturevalue('kafka_bootstrap')}"


def _run(url: str, events: list[Event], *, max_batch: int = 97, lateness_ms: int = 0
         ) -> tuple[Any, FeatureView, Any]:
    app = App(f"f{uuid.uuid4().hex[:8]}", broker=url, max_batch=max_batch, min_batch=7)
    source = app.topic(f"{app.name}-tx", partitions=3)
    view = _view(source.name, lateness_ms)
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


def disorder(events: list[Event], seed: int, spread: int = 6) -> list[Event]:
    """The events with each one moved up to ``spread`` places: late arrivals, a few
    minutes (within a 10 min lateness) to much more (beyond it)."""
    rng = random.Random(seed)
    ranked = sorted(range(len(events)), key=lambda i: i + rng.uniform(0, spread))
    return [events[i] for i in ranked]


def test_late_events_within_lateness_are_not_skew_and_dropped_ones_agree(url: str) -> None:
    """Arrivals out of time order: online folds the late-but-allowed ones and drops the
    rest, historical retrieval replays the log the same way, so served values verify
    with 0 skew; the dropped ones are counted alike by the pipeline and the check."""
    events = disorder(generate(seed=6, n=400), seed=1)
    log, view, topics = _run(url, events, lateness_ms=10 * MINUTE)
    try:
        report = verify_served(log, view, topics.served or "", sample=None)
        assert report.compared == len(events) and report.ok, report.examples
        assert report.late == topics.stats.late > 0  # some were beyond 10 min
        store = OnlineStore(log, view, topics.online)
        store.refresh()
        cards = sorted({c for c, _, _ in events})
        end = max(t for _, t, _ in events)
        historical = get_historical_features(log, view, [(c, end) for c in cards])
        assert store.get_online_features(cards, at_ms=end) == [
            {k: v for k, v in d.items() if k in view.feature_names} for d in historical.to_dicts()]
    finally:
        log.close()


def test_the_checker_reports_a_view_defined_differently_for_training(url: str) -> None:
    """The broken setup: the pipeline served with no allowed lateness (late events
    dropped) but training retrieves with a day of it (late events counted): skew."""
    events = disorder(generate(seed=6, n=400), seed=2)
    log, view, topics = _run(url, events)
    try:
        assert verify_served(log, view, topics.served or "", sample=None).ok
        lenient = replace(view, allowed_lateness_ms=24 * HOUR)
        report = verify_served(log, lenient, topics.served or "", sample=None)
        assert report.compared == len(events) and report.mismatches > 0
    finally:
        log.close()
