"""``run_fraud_demo``: generator -> ``transactions`` -> scoring pipeline -> ``fraud-alerts``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from eventml.demos.fraud.generator import generate_transactions
from eventml.demos.fraud.metrics import percentiles_ms, precision_recall, recall_by_pattern
from eventml.demos.fraud.model import FraudModel, train_fraud_model
from eventml.demos.fraud.pipeline import ScoringPipeline
from eventml.demos.fraud.producer import TransactionProducer
from eventml.demos.fraud.result import FraudDemoResult
from eventml.log import BrokerUnavailable, Log, TopicSpec

LIVE, HISTORY = 0, 1  # seed streams: the scored transactions and the training history
DEFAULT_HISTORY_EVENTS = 100_000
PRODUCER_BATCH = 500


def train_demo_model(seed: int = 7, history_events: int = DEFAULT_HISTORY_EVENTS) -> FraudModel:
    """The demo's model, trained on a history generated independently of the live stream."""
    history = generate_transactions(history_events, seed=(seed, HISTORY))
    return train_fraud_model(history, random_state=seed)


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
    batch_size: int = 1000,
    transactions_topic: str = "transactions",
    alerts_topic: str = "fraud-alerts",
    idle_timeout_s: float = 60.0,
) -> FraudDemoResult:
    """Generate ``events`` transactions, append them while a consumer scores them, and evaluate.

    ``progress`` is called with the number of transactions scored so far.
    ``model`` defaults to :func:`train_demo_model` (``seed``, ``history_events``).
    ``rate_eps`` paces the producer (default: as fast as the log takes them).
    Topics are created if missing; the run reads only what it appends, so reruns on
    the same log give the same precision and recall.
    """
    if events < 1:
        raise ValueError(f"events must be >= 1, got {events}")
    train_started = time.perf_counter()
    if model is None:
        model = train_demo_model(seed, history_events)
    train_seconds = time.perf_counter() - train_started
    live = generate_transactions(events, seed=(seed, LIVE))

    for name in (transactions_topic, alerts_topic):
        log.create_topic(TopicSpec(name, partitions), exist_ok=True)
    pipeline = ScoringPipeline(
        log,
        model,
        source_topic=transactions_topic,
        alerts_topic=alerts_topic,
        group=f"eventml-demo-fraud-{uuid.uuid4().hex[:12]}",
        start_offsets=log.end_offsets(transactions_topic),
        batch_size=batch_size,
    )
    producer = TransactionProducer(
        log,
        transactions_topic,
        live.transactions,
        batch_size=PRODUCER_BATCH,
        rate_eps=rate_eps,
    )
    try:
        pipeline.wait_for_assignment()
        started = last_progress = time.perf_counter()
        producer.start()
        while pipeline.processed < events:
            if pipeline.poll_once():
                last_progress = time.perf_counter()
                if progress is not None:
                    progress(pipeline.processed)
            elif producer.error is not None:
                raise producer.error
            elif time.perf_counter() - last_progress > idle_timeout_s:
                raise BrokerUnavailable(
                    f"no transactions to score for {idle_timeout_s:.0f} s "
                    f"({pipeline.processed} of {events} done): is the broker healthy?"
                )
        finished = time.perf_counter()
    finally:
        producer.stop()
        pipeline.close()
    if producer.error is not None:
        raise producer.error

    position = {event_id: i for i, event_id in enumerate(producer.event_ids)}
    alerted = np.zeros(events, dtype=np.bool_)
    for alert in pipeline.alerts:
        alerted[position[alert.transaction_id]] = True
    precision, recall = precision_recall(live.labels, alerted)
    p50, p99 = percentiles_ms(
        [a.acked_at - producer.acked_at[a.transaction_id] for a in pipeline.alerts], (50, 99)
    )
    pipeline_seconds = finished - started
    return FraudDemoResult(
        events=events,
        fraud_events=live.fraud_count,
        alerts=len(pipeline.alerts),
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
        broker=redact_url(log.url),
        topics=(transactions_topic, alerts_topic),
        seed=seed,
    )


def redact_url(url: str) -> str:
    """``url`` without a password (``kafka://user:***@host:9092``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
