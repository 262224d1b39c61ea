"""``run_fraud_demo``: generator -> ``transactions`` -> scoring pipeline -> ``fraud-alerts``."""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from eventml.demos.fraud.app import fraud_app
from eventml.demos.fraud.events import chargeback_event
from eventml.demos.fraud.generator import (
    GeneratedTransactions,
    GeneratorConfig,
    generate_transactions,
)
from eventml.demos.fraud.lifecycle import LifecycleConfig
from eventml.demos.fraud.metrics import percentiles_ms, precision_recall, recall_by_pattern
from eventml.demos.fraud.model import FraudModel, train_fraud_model
from eventml.demos.fraud.producer import TransactionProducer
from eventml.demos.fraud.profile import card_risk
from eventml.demos.fraud.result import FraudDemoResult
from eventml.demos.fraud.transaction import datetime_to_ms
from eventml.demos.fraud.views import card_activity
from eventml.demos.fraud.whatif import what_if as run_what_if
from eventml.engine import App, Guarantee, Item, Stream, Worker
from eventml.engine.graph import To
from eventml.engine.worker import tune_gc
from eventml.events import to_message
from eventml.features import verify_served
from eventml.features.online import online_topic
from eventml.log import BrokerUnavailable, Log, TopicSpec
from eventml.ml.registry import ModelRegistry
from eventml.views import ProjectionRunner

LIVE, HISTORY, CHARGEBACKS = 0, 1, 2  # seed streams: scored transactions, history, labels
DAY_MS = 86_400_000
CANDIDATE_PRECISION = 0.8  # the what-if candidate: the model with a lower alert threshold
DEFAULT_HISTORY_EVENTS = 100_000
PRODUCER_BATCH = 500


def train_demo_model(
    seed: int = 7, history_events: int = DEFAULT_HISTORY_EVENTS, *, features: bool = False,
    target_precision: float = 0.9,
) -> FraudModel:
    """The demo's model, trained on a history generated independently of the live stream;
    with ``features``, on the ``card_activity`` feature view too. Its threshold is the
    lowest with ``target_precision`` on the history's later part."""
    history = generate_transactions(history_events, seed=(seed, HISTORY))
    return train_fraud_model(history, random_state=seed, target_precision=target_precision,
                             view=card_activity() if features else None)


def run_fraud_demo(
    log: Log,
    *,
    events: int,
    seed: int = 7,
    progress: Callable[[int], None] | None = None,
    model: FraudModel | None = None,
    history_events: int = DEFAULT_HISTORY_EVENTS,
    rate_eps: float | None = None,
    partitions: int = 4,
    batch_size: int = 5000,
    transactions_topic: str = "transactions",
    alerts_topic: str = "fraud-alerts",
    velocity_topic: str | None = "card-velocity",
    guarantee: Guarantee = "exactly_once",
    idle_timeout_s: float = 60.0,
    validate: bool = True,
    features: bool = False,
    skew_sample: int = 10_000,
    chargebacks_topic: str | None = "chargebacks",
    profiles: bool = True,
    views_db: Path | None = None,
    what_if: bool = True,
    candidate: FraudModel | None = None,
    lifecycle: bool = False,
    lifecycle_config: LifecycleConfig | None = None,
    predictions_topic: str = "predictions",
    registry: ModelRegistry | None = None,
) -> FraudDemoResult:
    """Generate ``events`` transactions, append them while the engine scores them
    (:func:`~eventml.demos.fraud.app.fraud_app`, exactly-once by default), and evaluate.

    ``progress`` is called with the number of transactions scored so far.
    ``model`` defaults to :func:`train_demo_model` (``seed``, ``history_events``).
    ``rate_eps`` paces the producer (default: as fast as the log takes them).
    Topics are created if missing; the run reads only what it appends, and its event
    times continue the topic's timeline by whole days, so reruns on the same log give
    the same precision and recall. ``validate`` checks every
    transaction against the topic's data contract (registered in the log's schema
    registry); violations go to the dead-letter topic. ``features`` materializes the
    ``card_activity`` feature view too and, after the run, checks ``skew_sample`` of the
    values it served against point-in-time retrieval of this run's transactions.
    ``chargebacks_topic`` then gets a ``card.chargeback`` for each fraudulent transaction
    of the run, dated days after it (the delayed labels what-if replays are judged by).
    ``what_if`` then replays ``candidate`` (default: the model retrained for
    :data:`CANDIDATE_PRECISION`, so it alerts more) over the run into a sandbox and
    compares its alerts with the live ones on the run's last day, against the
    chargebacks (:mod:`~eventml.demos.fraud.whatif`). ``profiles`` then brings the ``card_risk`` read model
    (:mod:`~eventml.demos.fraud.profile`) up to date, in ``views_db`` (default: the
    view's file in the data directory).

    ``lifecycle`` runs the model-lifecycle scenario instead
    (:mod:`~eventml.demos.fraud.lifecycle`, settings in ``lifecycle_config``): ``model``
    is the champion in ``registry`` (default: ``models`` in the data directory),
    fraudsters change tactics mid-stream, chargebacks arrive during it, and drift,
    retraining and promotion are reported in ``result.lifecycle``. The what-if replay
    is not run then (the challenger's shadow scores are the live what-if).
    """
    if events < 1:
        raise ValueError(f"events must be >= 1, got {events}")
    train_started = time.perf_counter()
    if model is None:
        model = train_demo_model(seed, history_events, features=features)
    train_seconds = time.perf_counter() - train_started
    if lifecycle:
        return _run_lifecycle(
            log, model, train_seconds, events=events, seed=seed, progress=progress,
            partitions=partitions, batch_size=batch_size, transactions=transactions_topic,
            alerts=alerts_topic, chargebacks=chargebacks_topic or "chargebacks",
            predictions=predictions_topic, velocity=velocity_topic, guarantee=guarantee,
            idle_timeout_s=idle_timeout_s, validate=validate, features=features,
            skew_sample=skew_sample, profiles=profiles, views_db=views_db,
            config=lifecycle_config, registry=registry,
        )
    config = GeneratorConfig(start=_next_start(log, transactions_topic, GeneratorConfig().start))
    live = generate_transactions(events, seed=(seed, LIVE), config=config)

    alerted_at: dict[str, float] = {}  # alert's transaction id -> clock() when committed
    in_batch: list[str] = []
    app = fraud_app(
        model,
        name=f"eventml-demo-fraud-{uuid.uuid4().hex[:12]}",
        broker=log.url,
        transactions=transactions_topic,
        alerts=alerts_topic,
        velocity=velocity_topic,
        partitions=partitions,
        guarantee=guarantee,
        max_batch=batch_size,
        auto_offset_reset="latest",  # only what this run appends
        validate=validate,
        features=features,
    )
    _tap_alerts(app, alerts_topic, in_batch)
    velocity_ids: list[str] = []
    if velocity_topic is not None:
        _tap_alerts(app, velocity_topic, velocity_ids)
    worker = Worker(app, log=log)
    run_starts = log.end_offsets(transactions_topic)  # this run's transactions come after
    producer = TransactionProducer(
        log,
        transactions_topic,
        live.transactions,
        batch_size=PRODUCER_BATCH,
        rate_eps=rate_eps,
    )
    clock = time.perf_counter
    tune_gc()  # as Worker.run does (this loop steps the worker itself)
    try:
        _wait_for_assignment(worker)
        started = last_progress = clock()
        producer.start()
        while worker.stats.records < events:
            if worker.step():
                now = last_progress = clock()
                for tx_id in in_batch:  # committed: the alerts are now visible
                    alerted_at[tx_id] = now
                in_batch.clear()
                if progress is not None:
                    progress(worker.stats.records)
            elif producer.error is not None:
                raise producer.error
            elif clock() - last_progress > idle_timeout_s:
                raise BrokerUnavailable(
                    f"no transactions to score for {idle_timeout_s:.0f} s "
                    f"({worker.stats.records} of {events} done): is the broker healthy?"
                )
        finished = clock()
    finally:
        producer.stop()
        worker.close()
    if producer.error is not None:
        raise producer.error

    position = {event_id: i for i, event_id in enumerate(producer.event_ids)}
    chargebacks = 0
    if chargebacks_topic is not None:
        chargebacks = _append_chargebacks(log, chargebacks_topic, live, producer.event_ids, seed)
    alerted = np.zeros(events, dtype=np.bool_)
    for tx_id in alerted_at:
        alerted[position[tx_id]] = True
    precision, recall = precision_recall(live.labels, alerted)
    p50, p99 = percentiles_ms(
        [at - producer.acked_at[tx_id] for tx_id, at in alerted_at.items()], (50, 99)
    )
    pipeline_seconds = finished - started
    return FraudDemoResult(
        events=events,
        fraud_events=live.fraud_count,
        alerts=len(alerted_at),
        true_positives=int((alerted & live.labels).sum()),
        precision=precision,
        recall=recall,
        recall_by_pattern=recall_by_pattern(live.patterns, alerted),
        throughput_eps=events / pipeline_seconds if pipeline_seconds > 0 else float("inf"),
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        offered_rate_eps=rate_eps,
        pipeline_seconds=pipeline_seconds,
        train_seconds=train_seconds,
        model=model.name,
        threshold=model.threshold.value,
        features=model.feature_names,
        view_features=model.view_features,
        broker=redact_url(log.url),
        topics=(transactions_topic, alerts_topic),
        seed=seed,
        guarantee=guarantee,
        velocity_alerts=len(velocity_ids),
        schema=_contract_summary(worker, transactions_topic),
        dead_letters=worker.stats.dead_letters,
        feature_skew=(_skew(log, app.name, transactions_topic, run_starts, skew_sample)
                      if features or model.view_features else None),
        chargebacks=chargebacks,
        what_if=(_what_if(log, model, candidate, seed, history_events, live, transactions_topic,
                          alerts_topic, chargebacks_topic, partitions, validate)
                 if what_if and chargebacks_topic is not None else None),
        risk_profiles=_profiles(log, transactions_topic, alerts_topic, views_db) if profiles else None,
    )


def _run_lifecycle(
    log: Log, model: FraudModel, train_seconds: float, *, events: int, seed: int,
    progress: Callable[[int], None] | None, partitions: int, batch_size: int,
    transactions: str, alerts: str, chargebacks: str, predictions: str, velocity: str | None,
    guarantee: Guarantee, idle_timeout_s: float, validate: bool, features: bool,
    skew_sample: int, profiles: bool, views_db: Path | None,
    config: LifecycleConfig | None, registry: ModelRegistry | None,
) -> FraudDemoResult:
    """:func:`run_fraud_demo` with ``lifecycle=True``."""
    from eventml.demos.fraud.lifecycle import LifecycleTopics, run_lifecycle

    start = _next_start(log, transactions, GeneratorConfig().start)
    topics = LifecycleTopics(transactions=transactions, chargebacks=chargebacks,
                             predictions=predictions, alerts=alerts)
    run = run_lifecycle(
        log, events=events, seed=seed, champion=model, start=start, config=config,
        topics=topics, registry=registry, partitions=partitions, guarantee=guarantee,
        batch_size=batch_size, validate=validate, features=features, velocity_topic=velocity,
        progress=progress, idle_timeout_s=idle_timeout_s,
    )
    live = run.timeline.live
    alerted = run.alerted
    precision, recall = precision_recall(live.labels, alerted)
    seconds = run.pipeline_seconds
    summary = run.summary
    return FraudDemoResult(
        events=events,
        fraud_events=live.fraud_count,
        alerts=int(alerted.sum()),
        true_positives=int((alerted & live.labels).sum()),
        precision=precision,
        recall=recall,
        recall_by_pattern=recall_by_pattern(live.patterns, alerted),
        throughput_eps=events / seconds if seconds > 0 else float("inf"),
        latency_p50_ms=None,  # the producer waits for the pipelines each step: no latency to speak of
        latency_p99_ms=None,
        offered_rate_eps=None,
        pipeline_seconds=seconds,
        train_seconds=train_seconds,
        model=model.name,
        threshold=model.threshold.value,
        features=model.feature_names,
        view_features=model.view_features,
        broker=redact_url(log.url),
        topics=(transactions, alerts),
        seed=seed,
        guarantee=guarantee,
        velocity_alerts=0,
        schema=run.contract,
        dead_letters=run.worker_stats.dead_letters,
        feature_skew=(_skew(log, run.scoring.name, transactions, run.run_starts, skew_sample)
                      if features or model.view_features else None),
        chargebacks=int(summary["labels"]["chargebacks_in_run"]),
        risk_profiles=_profiles(log, transactions, alerts, views_db) if profiles else None,
        lifecycle=summary,
    )


def _what_if(
    log: Log, model: FraudModel, candidate: FraudModel | None, seed: int, history_events: int,
    live: GeneratedTransactions, transactions: str, alerts: str, chargebacks: str,
    partitions: int, validate: bool,
) -> dict[str, Any]:
    if candidate is None:
        candidate = train_demo_model(seed, history_events, features=bool(model.view_features),
                                     target_precision=CANDIDATE_PRECISION)
    described = (f"threshold {candidate.threshold.value:.3f} (for precision "
                 f"{CANDIDATE_PRECISION:.0%} on the history) vs live {model.threshold.value:.3f}")
    result = run_what_if(
        log, candidate, description=described, sandbox=f"whatif-{uuid.uuid4().hex[:8]}",
        first_ms=live.transactions[0].time_ms, last_ms=live.transactions[-1].time_ms,
        transactions=transactions, alerts=alerts, chargebacks=chargebacks,
        partitions=partitions, validate=validate,
    )
    return result.to_json()


def _next_start(log: Log, topic: str, start: datetime) -> datetime:
    """``start``, moved on by whole days past the topic's newest event time: each run on
    a log continues its timeline (so a time window holds one run's events), and the
    same seed gives the same transactions (times of day included), shifted."""
    if topic not in log.list_topics():
        return start
    ends = log.end_offsets(topic)

    def free(days: int) -> bool:  # no event at or after start + days?
        return log.offsets_for_time(topic, datetime_to_ms(start + timedelta(days=days))) == ends

    if free(0):
        return start
    low, high = 0, 1  # invariant: not free(low); find the first free day by doubling, then bisect
    while not free(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if free(middle) else (middle, high)
    return start + timedelta(days=high)


def _append_chargebacks(
    log: Log, topic: str, live: GeneratedTransactions, event_ids: list[str], seed: int
) -> int:
    """One ``card.chargeback`` per fraudulent transaction, 1 to 60 days later (median ~7)."""
    rng = np.random.default_rng((seed, CHARGEBACKS))
    fraud = np.flatnonzero(live.labels)
    delays = np.clip(rng.lognormal(np.log(7 * DAY_MS), 0.8, len(fraud)), DAY_MS, 60 * DAY_MS)
    events = [chargeback_event(event_ids[i], live.transactions[i], int(d))
              for i, d in zip(fraud.tolist(), delays.tolist(), strict=True)]
    if topic not in log.list_topics():
        log.create_topic(TopicSpec(topic, partitions=1), exist_ok=True)
    for first in range(0, len(events), PRODUCER_BATCH):
        log.append(topic, [to_message(e) for e in events[first:first + PRODUCER_BATCH]])
    return len(events)


def _profiles(log: Log, transactions: str, alerts: str, db: Path | None) -> dict[str, Any]:
    """Catch the ``card_risk`` read model up with the transactions and alerts so far."""
    view = card_risk(transactions, alerts)
    with contextlib.ExitStack() as cleanup:
        temporary = db is None and log.url.startswith("memory:")
        if temporary:  # the log dies with the process: so does the view
            db = Path(cleanup.enter_context(tempfile.TemporaryDirectory())) / f"{view.name}.sqlite"
        runner = cleanup.enter_context(ProjectionRunner(log, view, db))
        run = runner.catch_up(timeout_s=120.0)
        return {
            "view": view.name,
            "cards": runner.count(),
            "by_risk": {tier: runner.count({"risk": tier}) for tier in ("high", "elevated")},
            "events": run.events,
            "events_per_s": round(run.events_per_s, 1),
            "dead_letters": run.dead_lettered,
            "db": None if temporary else str(runner.path),
        }


def _skew(log: Log, app: str, topic: str, starts: dict[int, int], sample: int) -> dict[str, Any]:
    """The feature view's served values vs point-in-time retrieval of this run's events."""
    view = card_activity(topic)
    report = verify_served(
        log, view, f"{online_topic(app, view)}-served", sample=sample, from_offsets=starts
    )
    return report.to_json()


def _contract_summary(worker: Worker, topic: str) -> str | None:
    if worker.registry is None:
        return None
    version = worker.registry.version(f"{topic}-value")
    return f"{version.subject} v{version.version} (id {version.id}, {version.schema.schema_type})"


def _tap_alerts(app: App, alerts_topic: str, into: list[str]) -> None:
    """Note the transaction id of every alert of the batch (the alert's id is the
    transaction's event id); the run loop stamps them once the batch has committed."""
    to_alerts = next(
        n for n in app.topology().nodes if isinstance(n, To) and n.topic.name == alerts_topic
    )

    def note(items: list[Item]) -> None:
        into.extend(it.id for it in items)

    Stream(app, to_alerts.id).sink(note)


def _wait_for_assignment(worker: Worker, timeout_s: float = 60.0) -> None:
    """Join the group before producing, so latency excludes the join."""
    deadline = time.monotonic() + timeout_s
    while not worker.consumer.assignment():
        if time.monotonic() > deadline:
            raise BrokerUnavailable(
                f"no partitions assigned within {timeout_s:.0f} s: is the broker healthy?"
            )
        worker.step()


def redact_url(url: str) -> str:
    """``url`` without a password (``kafka://user:***@host:9092``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
