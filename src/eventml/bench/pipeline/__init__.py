"""The pipeline benchmark: the fraud app's throughput and end-to-end latency, next to a
raw pass-through (consume → produce, no processing) on the same log, in the same run.

What ``run_pipeline_benchmark(url, events=N)`` does, on the log at ``url``:

1. **Inputs** (before any clock): a model (:func:`~eventml.demos.fraud.train_demo_model`),
   N generated transactions as CloudEvents messages, appended to a new input topic
   of ``partitions`` partitions (keyed by card).
2. **Throughput**, ``repeat`` times, each side in a fresh consumer group reading the
   same N records from the earliest offset; a side is done when its group's
   committed offsets reach the topic's end offsets (it must process exactly N):

   * **pipeline**: the fraud app (:func:`~eventml.demos.fraud.app.fraud_app`,
     exactly-once by default) run by ``workers`` workers: one in this process
     (``Worker.run``), or one forked process per worker. The clock starts once
     the workers are built (process start-up and ``Worker(...)`` are not timed;
     joining the group is), and stops at the last commit.
   * **log pass-through**: the same records consumed and appended unchanged (value,
     key, headers, timestamp, partition) to another topic through eventml's log API,
     ``consumer.poll(max_batch, max_wait)`` then one transaction per batch
     (``begin(consumer)``, ``append``, ``commit_offsets``, ``commit``), no decoding:
     the floor under any exactly-once app on this log.
   * **confluent-kafka pass-through** (``kafka://`` only): the same with the bare
     client: ``consume(max_batch)``, ``begin_transaction``, ``produce`` each
     message, ``send_offsets_to_transaction``, ``commit_transaction``, with the
     Kafka backend's own client settings.

   * **validated pipeline** (``validate=True``): the fraud app again, with the
     transactions' data contract bound to its input (every value parsed and checked
     against the JSON Schema), in the same run as the plain one and alternating
     which goes first; ``validation.ratio`` = validated ÷ plain (target >= 0.8), and
     no event may be dead-lettered (see :mod:`._validation`).

   Each side runs with as many workers as the pipeline, with the same garbage
   collector settings as the engine's workers, and ``ratio`` = pipeline ÷ side.
3. **Latency**: a new input topic and app, one worker (a forked process; a thread
   on ``memory://``), a producer appending at ``rate`` events/s (one append per
   ``append_every_ms`` with every event due by then) and stamping when each
   append returned (acknowledged), and a reader (``read_committed`` on Kafka) of
   the app's outputs stamping when each record became visible. Latency = visible
   - acknowledged, matched by ``ce_id`` (the engine's outputs keep the input
   event's id), over the events acknowledged after ``warmup_s``. Alerts are few
   (~0.5 % of events), so the app also gets a **tap**: one input event in
   ``tap_every`` (event time divisible by it) passed through unchanged to a topic
   of its own. A batch's outputs commit together, so a tapped event becomes
   visible exactly when the alerts of its batch do: the tap samples the same
   distribution as the alerts, ``tap_every`` times cheaper than an output per
   event (which would slow the worker noticeably). ``tap_every=0``: alerts only.

The model scores on one thread (as ``FraudModel.score_many`` does; the benchmark
also limits OpenMP to one thread for its whole run): one core per worker, and
libgomp cannot be used in a forked child once the parent has used its thread
pool (the child hangs).
"""

from __future__ import annotations

import gc
import uuid
from typing import Any

from eventml.bench._timing import BenchmarkError
from eventml.bench.baselines import inputs_out_of_gc
from eventml.bench.pipeline._latency import _measure_latency
from eventml.bench.pipeline._passthrough import _run_kafka_passthrough, _run_log_passthrough
from eventml.bench.pipeline._result import _load, _ratios, _result
from eventml.bench.pipeline._setup import (
    LIVE,
    LatencyWorker,
    Progress,
    Statistic,
    _append_all,
    _Bench,
    _cleanup,
    _gc_thresholds_restored,
    _messages,
    _single_threaded_model,
)
from eventml.bench.pipeline._table import render_pipeline_table
from eventml.bench.pipeline._throughput import _run_pipeline
from eventml.bench.pipeline._validation import _add_validation, _drop_subject, _run_both
from eventml.demos.fraud.model import FraudModel
from eventml.demos.fraud.run import DEFAULT_HISTORY_EVENTS, train_demo_model
from eventml.engine import Guarantee, Settings
from eventml.log import TopicSpec, open_log
from eventml.log.registry import parse_broker_url

__all__ = ["render_pipeline_table", "run_pipeline_benchmark"]


def run_pipeline_benchmark(
    url: str,
    *,
    events: int = 200_000,
    workers: int = 1,
    guarantee: Guarantee = "exactly_once",
    partitions: int = 4,
    velocity: bool = True,
    max_batch: int | None = None,
    rate: float = 10_000,
    duration_s: float = 5.0,
    warmup_s: float = 1.0,
    append_every_ms: float = 10.0,
    tap_every: int = 10,
    latency: bool = True,
    latency_worker: LatencyWorker | None = None,
    baseline: bool = True,
    validate: bool = False,
    repeat: int = 1,
    statistic: Statistic = "best",
    seed: int = 7,
    history_events: int = DEFAULT_HISTORY_EVENTS,
    model: FraudModel | None = None,
    keep_topics: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Benchmark the fraud pipeline on the log at ``url``; returns the JSON-ready result.

    ``events`` transactions are timed through the pipeline and the pass-through
    baselines (``repeat`` times; rates report the ``statistic`` over the runs) with
    ``workers`` workers; then, if ``latency``, ``rate`` events/s are offered for
    ``warmup_s + duration_s`` seconds, appended every ``append_every_ms``, to one
    worker (``latency_worker``: a forked "process", or a "thread" of this one).
    ``max_batch`` (default: the engine's) bounds the pipeline's and the baselines'
    batches; ``velocity`` keeps the app's one-minute velocity window. ``validate``
    also times the pipeline with its input's data contract in each run (the result's
    ``validation``, with its targets). ``model``
    defaults to the demo's model trained on ``history_events`` transactions. Topics
    are deleted at the end unless ``keep_topics``.
    """
    parsed = parse_broker_url(url)  # an unknown scheme fails here, before any work
    for name, value, least in (
        ("events", events, 1),
        ("workers", workers, 1),
        ("partitions", partitions, 1),
        ("repeat", repeat, 1),
        ("history_events", history_events, 1),
    ):
        if value < least:
            raise BenchmarkError(f"{name} must be >= {least}, got {value}")
    if statistic not in ("best", "median"):
        raise BenchmarkError(f"statistic must be 'best' or 'median', got {statistic!r}")
    if latency and (
        rate <= 0 or duration_s <= 0 or warmup_s < 0 or append_every_ms < 0 or tap_every < 0
    ):
        raise BenchmarkError(
            "need rate > 0, duration_s > 0, warmup_s >= 0, append_every_ms >= 0 and tap_every >= 0"
        )
    if parsed.scheme == "memory" and workers > 1:
        raise BenchmarkError("memory:// lives in one process: use workers=1")
    if latency_worker is None:
        latency_worker = "thread" if parsed.scheme == "memory" else "process"
    if latency_worker not in ("process", "thread"):
        raise BenchmarkError(
            f"latency_worker must be 'process' or 'thread', got {latency_worker!r}"
        )
    if parsed.scheme == "memory" and latency_worker == "process":
        raise BenchmarkError("memory:// lives in one process: use latency_worker='thread'")
    settings: dict[str, Any] = {"guarantee": guarantee}
    if max_batch is not None:
        settings["max_batch"] = max_batch
        settings["min_batch"] = min(Settings().min_batch, max_batch)
    try:
        Settings(**settings)
    except ValueError as e:
        raise BenchmarkError(str(e)) from None
    say = progress or (lambda _msg: None)
    load_before = _load()

    trained_on: int | None = None
    if model is None:
        say(f"training the demo model on {history_events:,} transactions")
        model = train_demo_model(seed, history_events)
        trained_on = history_events
    runs: list[dict[str, Any]] = []
    latency_result: dict[str, Any] | None = None
    input_append_s = 0.0
    with (
        open_log(url) as log,
        inputs_out_of_gc(),
        _gc_thresholds_restored(),
        _single_threaded_model(),
    ):
        bench = _Bench(
            url,
            parsed,
            log,
            model,
            events,
            workers,
            partitions,
            velocity,
            settings,
            f"bench-pipeline-{uuid.uuid4().hex[:8]}",
            say,
        )
        try:
            bench.input_topic = f"{bench.prefix}-transactions"
            say(f"generating {events:,} transactions")
            messages = _messages(events, (seed, LIVE))
            log.create_topic(TopicSpec(bench.input_topic, partitions))
            say(f"appending them to {bench.input_topic} ({partitions} partitions)")
            input_append_s = _append_all(log, bench.input_topic, messages)
            del messages
            gc.collect()
            for k in range(1, repeat + 1):
                runs.append(_one_run(bench, k, repeat, baseline, validate))
            if latency:
                latency_result = _measure_latency(
                    bench,
                    rate,
                    duration_s,
                    warmup_s,
                    latency_worker,
                    seed,
                    append_every_ms,
                    tap_every,
                )
        finally:
            if not keep_topics:
                _cleanup(bench)
                if validate:
                    _drop_subject(bench)

    result = _result(
        bench,
        runs,
        latency_result,
        statistic,
        input_append_s,
        trained_on,
        load_before,
        keep_topics,
    )
    if validate:
        _add_validation(result, runs, statistic)
    return result


# -- one throughput run: the pipeline, then the pass-throughs ---------------------------------


def _one_run(bench: _Bench, k: int, repeat: int, baseline: bool, validate: bool) -> dict[str, Any]:
    who = f"{bench.workers} worker{'s' if bench.workers > 1 else ''}"
    validation: dict[str, Any] | None = None
    if validate:
        pipeline, topics, validation = _run_both(bench, k, repeat, who)
    else:
        bench.say(f"run {k}/{repeat}: fraud pipeline, {who}")
        pipeline, topics = _run_pipeline(bench, k)
    sides: dict[str, dict[str, Any]] = {}
    if baseline:
        bench.say(f"run {k}/{repeat}: eventml log pass-through, {who}")
        sides["log"] = _run_log_passthrough(bench, k)
        if bench.parsed.scheme == "kafka":
            bench.say(f"run {k}/{repeat}: bare confluent-kafka pass-through, {who}")
            sides["confluent_kafka"] = _run_kafka_passthrough(bench, k)
    run = {
        "pipeline": pipeline,
        "baselines": sides,
        "ratio": _ratios(pipeline, sides),
        "topics": topics,
    }
    if validation is not None:
        run["validation"] = validation
    return run
