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

import contextlib
import gc
import multiprocessing as mp
import os
import platform
import queue
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, Protocol

import numpy as np
from rich.console import Console
from rich.table import Table

from eventml.bench._timing import STALL_S, BenchmarkError, time_reads
from eventml.bench.baselines import inputs_out_of_gc
from eventml.bench.log import _versions
from eventml.demos.fraud.app import fraud_app
from eventml.demos.fraud.events import transaction_event
from eventml.demos.fraud.generator import generate_transactions
from eventml.demos.fraud.model import FraudModel
from eventml.demos.fraud.run import DEFAULT_HISTORY_EVENTS, train_demo_model
from eventml.engine import App, Guarantee, Settings, Stream, Worker
from eventml.engine import graph as g
from eventml.engine.worker import _tune_gc
from eventml.events import to_message
from eventml.log import (
    CommitFailed,
    Consumer,
    ConsumerConfig,
    Fenced,
    Log,
    Message,
    Record,
    TopicPartition,
    TopicSpec,
    open_log,
)
from eventml.log.registry import BrokerUrl, parse_broker_url
from eventml.state import StoreSpec, backend_for

Progress = Callable[[str], None]
Statistic = Literal["best", "median"]
LatencyWorker = Literal["process", "thread"]

#: design.md, "Targets": exactly-once fraud pipeline >= 100k events/s and >= 50 % of the
#: raw pass-through on the same log (embedded: eventml's log API; Kafka: bare
#: confluent-kafka), p99 end-to-end <= 20 ms at 10k events/s offered.
TARGETS: Mapping[str, Mapping[str, Mapping[str, float]]] = {
    "embedded": {
        "pipeline_eps": {"min": 100_000},
        "ratio": {"min": 0.5},
        "latency_p99_ms": {"max": 20.0},
    },
    "kafka": {
        "pipeline_eps": {"min": 100_000},
        "ratio": {"min": 0.5},
        "latency_p99_ms": {"max": 20.0},
    },
}
#: The pass-through each backend's ratio target is judged against.
RATIO_BASELINE = {"memory": "log", "embedded": "log", "kafka": "confluent_kafka"}

LIVE, LATENCY = 0, 2  # seed streams of the generator (history is 1, see demos.fraud.run)
APPEND_BATCH = 10_000  # pre-appending the inputs
_WATCH_EVERY_S = 0.01  # how often the parent reads forked workers' committed offsets
_START_TIMEOUT_S = 120.0
_new_message = partial(tuple.__new__, Message)


class _Flag(Protocol):
    """A threading or multiprocessing event."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass
class _Counters:
    """What one worker did: records taken from polls, batches, records appended."""

    records: int = 0
    batches: int = 0
    outputs: int = 0
    commits_refused: int = 0

    def add(self, other: _Counters) -> None:
        self.records += other.records
        self.batches += other.batches
        self.outputs += other.outputs
        self.commits_refused += other.commits_refused


class _Runner(Protocol):
    def step(self) -> int: ...

    def counters(self) -> _Counters: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Drain:
    """One side's timed run over all N records (see :func:`_metrics`)."""

    seconds: float  # clock start -> the last commit
    startup_s: float  # clock start -> the first commit
    first_events: int  # events in that first commit
    counters: _Counters


@dataclass
class _Bench:
    """Everything the phases share."""

    url: str
    parsed: BrokerUrl
    log: Log
    model: FraudModel
    events: int
    workers: int
    partitions: int
    velocity: bool
    settings: dict[str, Any]  # eventml.engine.Settings fields given to the app
    prefix: str
    say: Progress
    input_topic: str = ""
    apps: list[App] = field(default_factory=list)

    @property
    def local(self) -> bool:
        return self.parsed.scheme != "kafka"

    @property
    def in_memory(self) -> bool:
        return self.parsed.scheme == "memory"

    def app_settings(self) -> Settings:
        return Settings(broker=self.url, **self.settings)

    def consumer_config(self) -> ConsumerConfig:
        """The consumer settings the engine's workers use (so the baselines use them too)."""
        s = self.app_settings()
        return ConsumerConfig(
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
        )

    def own_log(self) -> Log:
        """A log object for a worker: the shared one on ``memory://``, else a new one."""
        return self.log if self.in_memory else open_log(self.url)


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
    batches; ``velocity`` keeps the app's one-minute velocity window. ``model``
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
                runs.append(_one_run(bench, k, repeat, baseline))
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

    return _result(
        bench,
        runs,
        latency_result,
        statistic,
        input_append_s,
        trained_on,
        load_before,
        keep_topics,
    )


# -- inputs ----------------------------------------------------------------------------------


def _messages(count: int, seed: tuple[int, int]) -> list[Message]:
    """``count`` generated transactions as ``card.transaction`` messages (keyed by card)."""
    txs = generate_transactions(count, seed=seed).transactions
    return [to_message(transaction_event(tx)) for tx in txs]


def _append_all(log: Log, topic: str, messages: Sequence[Message]) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(messages), APPEND_BATCH):
        log.append(topic, messages[i : i + APPEND_BATCH])
    return time.perf_counter() - t0


@contextlib.contextmanager
def _gc_thresholds_restored() -> Iterator[None]:
    """The workers' GC tuning changes the thresholds for good: put them back at the end."""
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*before)


@contextlib.contextmanager
def _single_threaded_model() -> Iterator[None]:
    """One OpenMP thread per process (see the module's docstring)."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


# -- one throughput run: the pipeline, then the pass-throughs ---------------------------------


def _one_run(bench: _Bench, k: int, repeat: int, baseline: bool) -> dict[str, Any]:
    who = f"{bench.workers} worker{'s' if bench.workers > 1 else ''}"
    bench.say(f"run {k}/{repeat}: fraud pipeline, {who}")
    pipeline, topics = _run_pipeline(bench, k)
    sides: dict[str, dict[str, Any]] = {}
    if baseline:
        bench.say(f"run {k}/{repeat}: eventml log pass-through, {who}")
        sides["log"] = _run_log_passthrough(bench, k)
        if bench.parsed.scheme == "kafka":
            bench.say(f"run {k}/{repeat}: bare confluent-kafka pass-through, {who}")
            sides["confluent_kafka"] = _run_kafka_passthrough(bench, k)
    return {
        "pipeline": pipeline,
        "baselines": sides,
        "ratio": _ratios(pipeline, sides),
        "topics": topics,
    }


def _run_pipeline(bench: _Bench, k: int) -> tuple[dict[str, Any], dict[str, str]]:
    alerts = f"{bench.prefix}-alerts-{k}"
    velocity = f"{bench.prefix}-velocity-{k}" if bench.velocity else None
    app = fraud_app(
        bench.model,
        name=f"{bench.prefix}-fraud-{k}",
        broker=bench.url,
        transactions=bench.input_topic,
        alerts=alerts,
        velocity=velocity,
        partitions=bench.partitions,
        **bench.settings,
    )
    bench.apps.append(app)
    if bench.workers == 1:
        worker = _BenchWorker(app, log=bench.log if bench.in_memory else None)
        drain = _drain_worker_here(worker, bench.events)
    else:

        def make(index: int) -> _Runner:
            return _WorkerRunner(_BenchWorker(app, index=index))

        drain = _drain_forked(bench, make, app.name, "pipeline")
    _check_committed(bench, app.name)
    metrics = _metrics(drain, bench.events)
    metrics["alerts"] = _count_records(bench, alerts)
    metrics["velocity_alerts"] = _count_records(bench, velocity) if velocity else None
    topics = {"app": app.name, "alerts": alerts}
    if velocity:
        topics["velocity"] = velocity
    return metrics, topics


def _run_log_passthrough(bench: _Bench, k: int) -> dict[str, Any]:
    group = f"{bench.prefix}-log-{k}"
    sink = f"{bench.prefix}-log-out-{k}"
    bench.log.create_topic(TopicSpec(sink, bench.partitions))
    s = bench.app_settings()

    def make(index: int) -> _Runner:
        return _LogPassThrough(
            bench.own_log(),
            group,
            bench.input_topic,
            sink,
            f"{group}-{index}",
            s.max_batch,
            s.max_wait_ms / 1000,
            bench.consumer_config(),
            close_log=not bench.in_memory,
        )

    drain = _drain_runner(bench, make, group, "log pass-through")
    _check_committed(bench, group)
    return _metrics(drain, bench.events)


def _run_kafka_passthrough(bench: _Bench, k: int) -> dict[str, Any]:
    group = f"{bench.prefix}-raw-{k}"
    sink = f"{bench.prefix}-raw-out-{k}"
    bench.log.create_topic(TopicSpec(sink, bench.partitions))
    s = bench.app_settings()

    def make(index: int) -> _Runner:
        return _KafkaPassThrough(
            bench.parsed,
            group,
            bench.input_topic,
            sink,
            f"{group}-{index}",
            s.max_batch,
            s.max_wait_ms / 1000,
            bench.consumer_config(),
        )

    drain = _drain_runner(bench, make, group, "confluent-kafka pass-through")
    _check_committed(bench, group)
    return _metrics(drain, bench.events)


# -- driving workers: in this process, or forked -----------------------------------------------


class _BenchWorker(Worker):
    """A worker that notes when its batches end, and raises ``ready`` once it owns partitions."""

    def __init__(
        self, app: App, *, index: int = 0, log: Log | None = None, ready: _Flag | None = None
    ) -> None:
        super().__init__(app, index=index, log=log)
        self.first_at: float | None = None
        self.first_events = 0
        self.last_at = 0.0
        self._ready = ready

    def step(self) -> int:
        n = super().step()
        if n:
            now = time.perf_counter()
            if self.first_at is None:
                self.first_at, self.first_events = now, n
            self.last_at = now
        if self._ready is not None and not self._ready.is_set() and self.consumer.assignment():
            self._ready.set()
        return n

    def counters(self) -> _Counters:
        st = self.stats
        return _Counters(st.records, st.batches, st.outputs, st.commits_refused)


class _WorkerRunner:
    """A worker driven by its own ``run`` loop (stopped from another thread)."""

    def __init__(self, worker: _BenchWorker) -> None:
        self.worker = worker

    def step(self) -> int:
        return self.worker.step()

    def counters(self) -> _Counters:
        return self.worker.counters()

    def close(self) -> None:
        self.worker.close()


def _drain_worker_here(worker: _BenchWorker, total: int) -> _Drain:
    """``worker.run`` in this process until it has processed ``total`` records."""
    t0 = time.perf_counter()
    stats = worker.run(max_records=total, idle_timeout_s=STALL_S)  # closes the worker
    if stats.records < total or worker.first_at is None:
        raise BenchmarkError(
            f"pipeline stalled: {stats.records:,} of {total:,} events after {STALL_S:.0f} s idle"
        )
    return _Drain(worker.last_at - t0, worker.first_at - t0, worker.first_events, worker.counters())


def _drain_runner(bench: _Bench, make: Callable[[int], _Runner], group: str, what: str) -> _Drain:
    """A pass-through over all records: here (one worker) or in forked processes."""
    if bench.workers > 1:
        return _drain_forked(bench, make, group, what)
    runner = make(0)
    try:
        _tune_gc()  # what Worker.run does: same collector settings as the pipeline
        seconds, startup_s, _, first = time_reads(runner.step, bench.events, what)
        return _Drain(seconds, startup_s, first, runner.counters())
    finally:
        runner.close()


def _child(
    make: Callable[[int], _Runner],
    index: int,
    ready: _Flag,
    go: _Flag,
    stop: _Flag,
    results: Any,
) -> None:
    """A forked worker process: build the runner, wait for ``go``, run until ``stop``."""
    try:
        runner = make(index)
        ready.set()
        go.wait()
        if isinstance(runner, _WorkerRunner):
            worker = runner.worker
            threading.Thread(target=_stop_when, args=(stop, worker.stop), daemon=True).start()
            worker.run()  # closes the worker
        else:
            _tune_gc()
            try:
                while not stop.is_set():
                    runner.step()
            finally:
                runner.close()
        results.put((index, asdict(runner.counters()), None))
    except BaseException as e:
        results.put((index, None, f"{type(e).__name__}: {e}"))
        raise


def _stop_when(flag: _Flag, stop: Callable[[], None]) -> None:
    flag.wait()
    stop()


def _drain_forked(bench: _Bench, make: Callable[[int], _Runner], group: str, what: str) -> _Drain:
    """``bench.workers`` forked processes; done when ``group`` committed every record."""
    ctx = mp.get_context("fork")
    ready = [ctx.Event() for _ in range(bench.workers)]
    go, stop = ctx.Event(), ctx.Event()
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_child,
            args=(make, i, ready[i], go, stop, results),
            name=f"{group}-{i}",
            daemon=True,
        )
        for i in range(bench.workers)
    ]
    for p in procs:
        p.start()
    watch = _CommittedOffsets(bench, group)
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not all(r.is_set() for r in ready):
            _check_alive(procs, results, what)
            if time.monotonic() > deadline:
                raise BenchmarkError(f"{what}: workers not ready after {_START_TIMEOUT_S:.0f} s")
            time.sleep(0.01)
        total = bench.events
        first_at: float | None = None
        first = done = 0
        t0 = last = time.perf_counter()
        go.set()
        while done < total:
            time.sleep(_WATCH_EVERY_S)
            now_done = watch.total()
            now = time.perf_counter()
            if now_done > done:
                done, last = now_done, now
                if first_at is None:
                    first_at, first = now, now_done
            elif now - last > STALL_S:
                raise BenchmarkError(
                    f"{what} stalled: {done:,} of {total:,} events after {STALL_S:.0f} s"
                )
            _check_alive(procs, results, what)
        seconds = last - t0
        stop.set()
        counters = _Counters()
        for _ in procs:
            try:
                index, got, error = results.get(timeout=60)
            except queue.Empty:
                raise BenchmarkError(f"{what}: a worker did not report after stopping") from None
            if error is not None:
                raise BenchmarkError(f"{what}: worker {index} failed: {error}")
            counters.add(_Counters(**got))
        assert first_at is not None
        return _Drain(seconds, first_at - t0, first, counters)
    finally:
        stop.set()
        go.set()
        watch.close()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join(5)


def _check_alive(procs: Sequence[Any], results: Any, what: str) -> None:
    for p in procs:
        if p.exitcode is not None:
            error = None
            with contextlib.suppress(queue.Empty):
                _, _, error = results.get_nowait()
            raise BenchmarkError(
                f"{what}: worker process {p.name} exited ({p.exitcode})"
                + (f": {error}" if error else "")
            )


# -- the pass-throughs ---------------------------------------------------------------------------


class _LogPassThrough:
    """Consume → append unchanged, one log transaction per batch (eventml's log API)."""

    def __init__(
        self,
        log: Log,
        group: str,
        source: str,
        sink: str,
        transactional_id: str,
        batch: int,
        wait_s: float,
        config: ConsumerConfig,
        *,
        close_log: bool,
    ) -> None:
        self.log = log
        self.sink = sink
        self.batch = batch
        self.wait_s = wait_s
        self.close_log = close_log
        self.consumer: Consumer = log.consumer(group, [source], config=config)
        self.producer = log.transactional_producer(transactional_id)
        self._counters = _Counters()

    def step(self) -> int:
        records = self.consumer.poll(self.batch, self.wait_s)
        if not records:
            return 0
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            offsets[TopicPartition(r.topic, r.partition)] = r.offset + 1
        # Message(value, key, headers, timestamp_ms, partition), built in C
        messages = [_new_message((r[5], r[4], r[6], r[3], r[1])) for r in records]
        txn = self.producer.begin(self.consumer)
        try:
            txn.append(self.sink, messages)
            txn.commit_offsets(offsets)
            txn.commit()
        except Fenced:
            raise
        except CommitFailed:  # partitions moved: the next owner repeats the batch
            self._counters.commits_refused += 1
            self._rewind(offsets)
            return 0
        c = self._counters
        c.records += len(records)
        c.batches += 1
        c.outputs += len(messages)
        return len(records)

    def _rewind(self, offsets: Mapping[TopicPartition, int]) -> None:
        owned = self.consumer.assignment()
        tps = [tp for tp in offsets if tp in owned]
        for tp, offset in self.consumer.committed(tps).items():
            if offset is None:
                self.consumer.seek_to_beginning([tp])
            else:
                self.consumer.seek(tp, offset)

    def counters(self) -> _Counters:
        return self._counters

    def close(self) -> None:
        self.consumer.close()
        self.producer.close()
        if self.close_log:
            self.log.close()


class _KafkaPassThrough:
    """The same loop with bare confluent-kafka (EOS v2), the Kafka backend's settings."""

    def __init__(
        self,
        url: BrokerUrl,
        group: str,
        source: str,
        sink: str,
        transactional_id: str,
        batch: int,
        wait_s: float,
        config: ConsumerConfig,
    ) -> None:
        from confluent_kafka import Consumer as RdConsumer
        from confluent_kafka import Producer as RdProducer

        from eventml.log.kafka import config as kcfg

        options = dict(url.options)
        producer_conf = kcfg.transactional_producer(url.location, options, transactional_id)
        self.producer = RdProducer(producer_conf)
        self.producer.init_transactions(30)
        self.consumer = RdConsumer(kcfg.consumer(url.location, options, group, config))
        self.consumer.subscribe([source])
        self.sink = sink
        self.batch = batch
        self.wait_s = wait_s
        self._counters = _Counters()

    def step(self) -> int:
        from confluent_kafka import KafkaException

        c = self.consumer
        msgs = c.consume(self.batch, self.wait_s)
        if not msgs:
            return 0
        p = self.producer
        produce: Any = p.produce  # the messages' partitions are never None here
        sink = self.sink
        try:
            p.begin_transaction()
            for m in msgs:
                err = m.error()
                if err is not None:
                    raise KafkaException(err)
                # topic, value, key, partition, callback, on_delivery, timestamp, headers
                produce(
                    sink,
                    m.value(),
                    m.key(),
                    m.partition(),
                    None,
                    None,
                    m.timestamp()[1],
                    m.headers(),
                )
            positions = [tp for tp in c.position(c.assignment()) if tp.offset >= 0]
            p.send_offsets_to_transaction(positions, c.consumer_group_metadata(), 30)
            p.commit_transaction(30)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if err is None or not err.txn_requires_abort():
                raise
            p.abort_transaction(30)  # e.g. the group moved partitions: repeat from committed
            self._counters.commits_refused += 1
            self._rewind()
            return 0
        counters = self._counters
        counters.records += len(msgs)
        counters.batches += 1
        counters.outputs += len(msgs)
        return len(msgs)

    def _rewind(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, KafkaException

        for tp in self.consumer.committed(self.consumer.assignment(), timeout=30):
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
            with contextlib.suppress(KafkaException):
                self.consumer.seek(tp)

    def counters(self) -> _Counters:
        return self._counters

    def close(self) -> None:
        self.consumer.close()
        self.producer.flush(5)


# -- offsets and counts ----------------------------------------------------------------------------


class _CommittedOffsets:
    """A group's committed offsets on a topic (the input), read without joining the group."""

    def __init__(self, bench: _Bench, group: str, topic: str | None = None) -> None:
        self.bench = bench
        self.group = group
        topic = topic or bench.input_topic
        self.tps = [TopicPartition(topic, p) for p in range(bench.partitions)]
        self.starts = bench.log.start_offsets(topic)
        self._rd: Any = None
        if not bench.local:
            from confluent_kafka import Consumer as RdConsumer

            from eventml.log.kafka import config as kcfg

            conf = kcfg.common(bench.parsed.location, dict(bench.parsed.options))
            conf.update({"group.id": group, "enable.auto.commit": "false"})
            self._rd = RdConsumer(conf)

    def offsets(self) -> dict[int, int | None]:
        if self._rd is None:
            log: Any = self.bench.log  # MemoryLog, EmbeddedLog: the groups live in the log
            committed = log.committed_offsets(self.group, self.tps)
            return {tp.partition: offset for tp, offset in committed.items()}
        from confluent_kafka import TopicPartition as RdTp

        found = self._rd.committed([RdTp(tp.topic, tp.partition) for tp in self.tps], timeout=30)
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in found}

    def total(self) -> int:
        """Records committed so far (over every partition)."""
        return sum(
            offset - self.starts.get(p, 0)
            for p, offset in self.offsets().items()
            if offset is not None
        )

    def close(self) -> None:
        if self._rd is not None:
            self._rd.close()
            self._rd = None


def _check_committed(bench: _Bench, group: str) -> None:
    """Every record was processed and committed: the committed offsets are the end offsets."""
    watch = _CommittedOffsets(bench, group)
    try:
        offsets = watch.offsets()
    finally:
        watch.close()
    ends = bench.log.end_offsets(bench.input_topic)
    if any(offsets.get(p) != end for p, end in ends.items()):
        raise BenchmarkError(
            f"group {group!r} committed {offsets}, expected the end offsets {ends}"
        )


def _count_records(bench: _Bench, topic: str) -> int:
    """Committed records in ``topic`` (read back by a fresh read_committed reader)."""
    log = bench.log
    ends = log.end_offsets(topic)
    starts = log.start_offsets(topic)
    if bench.local:  # appended only when their transaction commits: nothing in between
        return sum(ends[p] - starts.get(p, 0) for p in ends)
    config = ConsumerConfig(auto_offset_reset="earliest")
    count = 0
    with log.consumer(f"{bench.prefix}-count-{uuid.uuid4().hex[:6]}", [topic], config=config) as c:
        deadline = time.monotonic() + STALL_S
        while True:
            count += len(c.poll(10_000, 0.2))
            owned = c.assignment()
            if len(owned) == len(ends) and all(
                c.position(tp) >= ends[tp.partition] for tp in owned
            ):
                return count
            if time.monotonic() > deadline:
                raise BenchmarkError(f"could not read {topic!r} to its end in {STALL_S:.0f} s")


# -- latency ---------------------------------------------------------------------------------------


def _measure_latency(
    bench: _Bench,
    rate: float,
    duration_s: float,
    warmup_s: float,
    worker_kind: LatencyWorker,
    seed: int,
    append_every_ms: float,
    tap_every: int,
) -> dict[str, Any]:
    log = bench.log
    total = max(1, round(rate * (warmup_s + duration_s)))
    source = f"{bench.prefix}-lat-transactions"
    alerts = f"{bench.prefix}-lat-alerts"
    tap = f"{bench.prefix}-lat-tap" if tap_every else None
    velocity = f"{bench.prefix}-lat-velocity" if bench.velocity else None
    bench.say(f"latency: generating {total:,} transactions")
    messages = _messages(total, (seed, LATENCY))
    position = {_ce_id(m.headers): i for i, m in enumerate(messages)}
    outputs = [t for t in (alerts, tap) if t is not None]
    for topic in (source, *outputs, velocity):
        if topic is not None:
            log.create_topic(TopicSpec(topic, bench.partitions), exist_ok=True)
    app = fraud_app(
        bench.model,
        name=f"{bench.prefix}-lat",
        broker=bench.url,
        transactions=source,
        alerts=alerts,
        velocity=velocity,
        partitions=bench.partitions,
        **bench.settings,
    )
    if tap is not None:
        _add_tap(app, tap, tap_every, bench.partitions)
    bench.apps.append(app)
    reader = _Reader(log, f"{bench.prefix}-lat-reader", outputs)
    worker = _LatencyWorker(bench, app, worker_kind)
    try:
        # fork before the reader thread exists: a child forked while another thread holds
        # an SQLite transaction inherits that lock's bookkeeping and can never write
        worker.start()
        reader.start()
        reader.wait_ready()
        bench.say(
            f"latency: offering {rate:,.0f} events/s for {warmup_s + duration_s:g} s "
            f"(the first {warmup_s:g} s are warm-up)"
        )
        acked, t0, appends = _paced_append(log, source, messages, rate, append_every_ms / 1000)
        produced_s = time.perf_counter() - t0
        _wait_committed(bench, app.name, source, total)
        expected = {alerts: _count_records(bench, alerts)}
        if tap is not None:
            expected[tap] = sum(1 for m in messages if (m.timestamp_ms or 0) % tap_every == 0)
        for topic, count in expected.items():
            reader.wait_for(topic, count, STALL_S)
    finally:
        reader.stop()
        worker.stop()
    measured_from = t0 + warmup_s  # latencies of the events acknowledged after the warm-up
    out: dict[str, Any] = {
        "offered_eps": rate,
        "achieved_eps": round(total / produced_s) if produced_s > 0 else None,
        "warmup_s": warmup_s,
        "duration_s": duration_s,
        "events": total,
        "measured_events": sum(1 for a in acked if a >= measured_from),
        "worker": worker_kind,
        "tap_every": tap_every,
        "append_every_ms": append_every_ms,
        "append": _append_stats(appends, total),
    }
    for name, topic in (("tap", tap), ("alerts", alerts)):
        if topic is None:
            out[name] = None
            continue
        entry = _latencies(reader.seen[topic], position, acked, t0, measured_from)
        entry["missing"] = expected[topic] - entry.pop("distinct")
        out[name] = entry
    out["topics"] = {"transactions": source, "alerts": alerts, "tap": tap}
    return out


def _add_tap(app: App, topic: str, every: int, partitions: int) -> None:
    """Pass one input event in ``every`` (event time divisible by it) through to ``topic``:
    it commits with its batch, alerts included, so it is visible when they are."""
    source = next(n for n in app.topology().nodes if isinstance(n, g.Source))
    ref = app.topic(topic, partitions=partitions, event_type="bench.tap")
    Stream(app, source.id).map(
        lambda _value, item: 1 if item.time_ms % every == 0 else 0, metadata=True
    ).filter(bool).to(ref)


def _latencies(
    seen: Sequence[tuple[str, float]],
    position: Mapping[str, int],
    acked: Sequence[float],
    t0: float,
    measured_from: float,
) -> dict[str, Any]:
    """Percentiles of visible - acknowledged over ``seen`` (event id, visible at), and per
    second of the run (warm-up included: does latency grow, i.e. does the worker fall behind?)."""
    latencies: list[float] = []
    by_second: dict[int, list[float]] = {}
    distinct: set[int] = set()
    duplicates = 0
    for event_id, visible in seen:
        i = position.get(event_id)
        if i is None:
            continue
        if i in distinct:
            duplicates += 1
            continue
        distinct.add(i)
        latency = visible - acked[i]
        if acked[i] >= measured_from:
            latencies.append(latency)
        by_second.setdefault(int(acked[i] - t0), []).append(latency)
    entry = _percentiles(latencies)
    entry["duplicates"] = duplicates
    entry["distinct"] = len(distinct)
    entry["p99_ms_by_second"] = [_percentiles(by_second[s])["p99_ms"] for s in sorted(by_second)]
    return entry


def _wait_committed(bench: _Bench, group: str, topic: str, total: int) -> None:
    """Until ``group`` committed ``total`` records of ``topic`` (no progress for a while: fail)."""
    watch = _CommittedOffsets(bench, group, topic)
    try:
        done, last = -1, time.monotonic()
        while True:
            now_done = watch.total()
            if now_done >= total:
                return
            if now_done != done:
                done, last = now_done, time.monotonic()
            elif time.monotonic() - last > STALL_S:
                raise BenchmarkError(
                    f"{group} stalled: {done:,} of {total:,} events committed after {STALL_S:.0f} s"
                )
            time.sleep(_WATCH_EVERY_S)
    finally:
        watch.close()


def _ce_id(headers: Sequence[tuple[str, bytes]]) -> str:
    for name, value in headers:
        if name == "ce_id":
            return value.decode()
    raise BenchmarkError("a message has no ce_id header")


def _paced_append(
    log: Log, topic: str, messages: Sequence[Message], rate: float, every_s: float
) -> tuple[list[float], float, list[tuple[int, float]]]:
    """Append ``messages`` at ``rate`` events/s, at most one append per ``every_s``: each
    append takes every event due by then.

    Returns per event when its append returned, the start time, and per append
    ``(events, seconds)``.
    """
    total = len(messages)
    acked = [0.0] * total
    appends: list[tuple[int, float]] = []
    sent = 0
    t0 = next_at = time.perf_counter()
    while sent < total:
        now = time.perf_counter()
        due = min(total, int((now - t0) * rate) + 1)
        wait = max(next_at - now, t0 + sent / rate - now if due <= sent else 0.0)
        if wait > 0:
            time.sleep(wait)
            continue
        log.append(topic, messages[sent:due])
        done = time.perf_counter()
        acked[sent:due] = [done] * (due - sent)
        appends.append((due - sent, done - now))
        sent = due
        next_at = now + every_s
    return acked, t0, appends


def _append_stats(appends: Sequence[tuple[int, float]], total: int) -> dict[str, Any]:
    stats = _percentiles([s for _, s in appends])
    return {
        "calls": len(appends),
        "mean_batch": round(total / max(1, len(appends)), 1),
        **{k: v for k, v in stats.items() if k != "count"},
    }


def _percentiles(seconds: Sequence[float]) -> dict[str, Any]:
    if not seconds:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99]).tolist()
    return {
        "count": len(seconds),
        "p50_ms": round(p50, 3),
        "p95_ms": round(p95, 3),
        "p99_ms": round(p99, 3),
        "max_ms": round(float(ms.max()), 3),
    }


class _Reader:
    """A thread reading ``topics`` from the start; notes when each record became visible."""

    def __init__(self, log: Log, group: str, topics: Sequence[str]) -> None:
        self.log = log
        self.group = group
        self.topics = list(topics)
        self.seen: dict[str, list[tuple[str, float]]] = {t: [] for t in topics}
        self.distinct: dict[str, set[str]] = {t: set() for t in topics}
        self._polled: queue.SimpleQueue[tuple[list[Record], float]] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bench-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            config = ConsumerConfig(auto_offset_reset="earliest")
            with self.log.consumer(self.group, self.topics, config=config) as consumer:
                put = self._polled.put
                while not self._stop.is_set():
                    records = consumer.poll(10_000, 0.05)
                    if records:  # stamped at once; matched to the events later
                        put((records, time.perf_counter()))
                    elif not self._ready.is_set() and consumer.assignment():
                        self._ready.set()
        except BaseException as e:
            self._error = e
            self._ready.set()

    def wait_ready(self) -> None:
        if not self._ready.wait(_START_TIMEOUT_S):
            raise BenchmarkError(
                f"the latency reader got no partitions in {_START_TIMEOUT_S:.0f} s"
            )
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise BenchmarkError(f"the latency reader failed: {self._error!r}") from self._error

    def _collect(self) -> None:
        while True:
            try:
                records, visible = self._polled.get_nowait()
            except queue.Empty:
                return
            for r in records:
                event_id = _ce_id(r.headers)
                self.seen[r.topic].append((event_id, visible))
                self.distinct[r.topic].add(event_id)

    def wait_for(self, topic: str, count: int, timeout_s: float) -> None:
        """Until ``count`` distinct records of ``topic`` were seen, or no progress for ``timeout_s``
        (what is still missing then is reported as missing)."""
        last_n, last = -1, time.monotonic()
        while True:
            self._raise()
            self._collect()
            n = len(self.distinct[topic])
            if n >= count:
                return
            if n != last_n:
                last_n, last = n, time.monotonic()
            elif time.monotonic() - last > timeout_s:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self._collect()


class _LatencyWorker:
    """The latency phase's one worker: a forked process, or a thread of this one."""

    def __init__(self, bench: _Bench, app: App, kind: LatencyWorker) -> None:
        self.bench = bench
        self.app = app
        self.kind = kind
        self._proc: Any = None
        self._thread: threading.Thread | None = None
        self._worker: _BenchWorker | None = None
        self._error: list[BaseException] = []

    def start(self) -> None:
        ready: _Flag
        if self.kind == "thread":
            ready = threading.Event()
            self._worker = _BenchWorker(
                self.app, log=self.bench.log if self.bench.in_memory else None, ready=ready
            )
            worker = self._worker

            def run() -> None:
                try:
                    worker.run()
                except BaseException as e:
                    self._error.append(e)
                    ready.set()

            self._thread = threading.Thread(target=run, name="bench-latency-worker", daemon=True)
            self._thread.start()
        else:
            ctx = mp.get_context("fork")
            ready = ctx.Event()
            self._stop_flag = ctx.Event()
            self._proc = ctx.Process(
                target=_latency_child,
                args=(self.app, ready, self._stop_flag),
                name=f"{self.app.name}-worker",
                daemon=True,
            )
            self._proc.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not ready.wait(0.05):
            if self._proc is not None and self._proc.exitcode is not None:
                raise BenchmarkError(f"the latency worker exited ({self._proc.exitcode})")
            if time.monotonic() > deadline:
                raise BenchmarkError(
                    f"the latency worker got no partitions in {_START_TIMEOUT_S:.0f} s"
                )
        if self._error:
            raise BenchmarkError(f"the latency worker failed: {self._error[0]!r}")

    def stop(self) -> None:
        if self._worker is not None and self._thread is not None:
            self._worker.stop()
            self._thread.join(30)
        if self._proc is not None:
            self._stop_flag.set()
            self._proc.join(30)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)


def _latency_child(app: App, ready: _Flag, stop: _Flag) -> None:
    worker = _BenchWorker(app, ready=ready)
    threading.Thread(target=_stop_when, args=(stop, worker.stop), daemon=True).start()
    worker.run()


# -- clean-up ------------------------------------------------------------------------------------


def _cleanup(bench: _Bench) -> None:
    """Delete the run's topics (all named after its prefix) and the apps' state."""
    log = bench.log
    with contextlib.suppress(Exception):
        state = backend_for(log)
        for app in bench.apps:
            for node in app.topology().nodes:
                ref = getattr(node, "store", None)
                if isinstance(ref, g.StoreRef):
                    with contextlib.suppress(Exception):
                        state.drop(StoreSpec(app.name, ref.name, ref.ttl_ms))
    for topic in log.list_topics():
        if topic.startswith(bench.prefix):
            with contextlib.suppress(Exception):
                log.delete_topic(topic)


# -- the result --------------------------------------------------------------------------------


def _metrics(d: _Drain, total: int) -> dict[str, Any]:
    c = d.counters
    steady = d.seconds - d.startup_s
    return {
        "eps": _rate(total, d.seconds),
        "steady_eps": _rate(total - d.first_events, steady) if total > d.first_events else None,
        "seconds": round(d.seconds, 6),
        "startup_s": round(d.startup_s, 6),
        "processed": c.records,
        "batches": c.batches,
        "mean_batch": round(c.records / c.batches, 1) if c.batches else None,
        "outputs": c.outputs,
        "commits_refused": c.commits_refused,
    }


def _rate(amount: float, seconds: float) -> float:
    return float(round(amount / seconds)) if seconds > 0 else float("inf")


def _ratios(pipeline: Mapping[str, Any], sides: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, side in sides.items():
        out[name] = _ratio(pipeline["eps"], side["eps"])
        out[f"{name}_steady"] = (
            _ratio(pipeline["steady_eps"], side["steady_eps"])
            if pipeline["steady_eps"] and side["steady_eps"]
            else None
        )
    return out


def _ratio(ours: float, theirs: float) -> float:
    return round(ours / theirs, 3) if theirs else float("inf")


_RATES = ("eps", "steady_eps")
_TIMES = ("seconds", "startup_s")


def _combine(runs: Sequence[Mapping[str, Any]], statistic: Statistic) -> dict[str, Any]:
    """One figure per metric over the runs: rates by ``statistic``, times by its mirror,
    counts from the first run (``consistent`` says whether every run had the same)."""
    pick: Callable[[list[float]], float] = max if statistic == "best" else statistics.median
    out = dict(runs[0])
    for name in _RATES:
        values = [r[name] for r in runs if r[name] is not None]
        out[name] = pick(values) if values else None
    for name in _TIMES:
        values = [r[name] for r in runs]
        out[name] = min(values) if statistic == "best" else statistics.median(values)
    for name in ("batches", "mean_batch", "commits_refused"):
        out.pop(name, None)  # per run only
    return out


def _result(
    bench: _Bench,
    runs: list[dict[str, Any]],
    latency: dict[str, Any] | None,
    statistic: Statistic,
    input_append_s: float,
    history_events: int | None,
    load_before: list[float] | None,
    keep_topics: bool,
) -> dict[str, Any]:
    pipeline = _combine([r["pipeline"] for r in runs], statistic)
    pipeline["consistent"] = all(
        (r["pipeline"]["alerts"], r["pipeline"]["velocity_alerts"])
        == (runs[0]["pipeline"]["alerts"], runs[0]["pipeline"]["velocity_alerts"])
        for r in runs
    )
    names = list(runs[0]["baselines"])
    baselines = {n: _combine([r["baselines"][n] for r in runs], statistic) for n in names}
    ratio = _ratios(pipeline, baselines) if baselines else None
    scheme = bench.parsed.scheme
    s = bench.app_settings()
    result: dict[str, Any] = {
        "benchmark": "pipeline",
        "broker": bench.url,
        "backend": scheme,
        "settings": _backend_settings(bench.parsed),
        "app": "fraud",
        "guarantee": s.guarantee,
        "events": bench.events,
        "workers": bench.workers,
        "partitions": bench.partitions,
        "velocity": bench.velocity,
        "max_batch": s.max_batch,
        "max_wait_ms": s.max_wait_ms,
        "model": bench.model.name,
        "model_threads": 1,
        "history_events": history_events,  # None: a model was given
        "repeat": len(runs),
        "statistic": statistic,
        "input_append_eps": _rate(bench.events, input_append_s),
        "pipeline": pipeline,
        "baselines": baselines,
        "ratio": ratio,
        "ratio_target_baseline": RATIO_BASELINE.get(scheme),
        "latency": latency,
        "targets": _targets(scheme, s.guarantee, pipeline, ratio, latency),
        "runs": runs,
        "topics": {"prefix": bench.prefix, "input": bench.input_topic, "kept": keep_topics},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {**_versions(scheme), **_ml_versions()},
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "arch": platform.machine(),
            "load_avg_before": load_before,
            "load_avg_after": _load(),
        },
    }
    return result


def _backend_settings(url: BrokerUrl) -> dict[str, Any]:
    if url.scheme == "embedded":
        from eventml.bench.baselines import embedded_durability

        return {"durability": embedded_durability(url)}
    if url.scheme == "kafka":
        from eventml.bench.baselines import kafka_settings

        return kafka_settings(url)
    return {}


def _ml_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"numpy": np.__version__}
    with contextlib.suppress(PackageNotFoundError):
        out["scikit_learn"] = version("scikit-learn")
    return out


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on this platform
        return None


def _targets(
    scheme: str,
    guarantee: str,
    pipeline: Mapping[str, Any],
    ratio: Mapping[str, Any] | None,
    latency: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Each target with the measured value and whether it is met (``None``: not measured).

    The targets are for exactly-once: with another guarantee none is judged.
    """
    targets = TARGETS.get(scheme, {}) if guarantee == "exactly_once" else {}
    against = RATIO_BASELINE.get(scheme, "log")
    values: dict[str, float | None] = {
        "pipeline_eps": pipeline["eps"],
        "ratio": ratio.get(against) if ratio else None,
        "latency_p99_ms": (latency["tap"] or latency["alerts"])["p99_ms"] if latency else None,
    }
    checks: dict[str, Any] = {}
    for name, bound in targets.items():
        value = values[name]
        met: bool | None = None
        if value is not None:
            met = value >= bound["min"] if "min" in bound else value <= bound["max"]
        checks[name] = {**bound, "value": value, "met": met}
    verdicts = [c["met"] for c in checks.values()]
    met_all = (
        None if not verdicts else False if False in verdicts else None if None in verdicts else True
    )
    return {"checks": checks, "met": met_all}


# -- the table -----------------------------------------------------------------------------------

_SIDE_LABELS = {
    "pipeline": "fraud pipeline",
    "log": "log pass-through",
    "confluent_kafka": "raw confluent-kafka",
}
_VERDICTS = {True: "[green]ok[/]", False: "[red]MISSED[/]", None: "not judged"}


def render_pipeline_table(result: Mapping[str, Any], console: Console) -> None:
    """Throughput per side with ratios, the latency percentiles, then the targets."""
    workers = result["workers"]
    title = (
        f"{result['broker']}: fraud pipeline ({result['guarantee']}), {result['events']:,} events, "
        f"{result['partitions']} partitions, {workers} worker{'s' if workers > 1 else ''}, "
        f"{result['statistic']} of {result['repeat']}"
    )
    caption = (
        f"steady: after the first commit; ratio: pipeline ÷ side. Velocity window "
        f"{'on' if result['velocity'] else 'off'}, batches of up to {result['max_batch']:,}."
    )
    table = Table(title=title, caption=caption)
    table.add_column("side")
    for column in ("events/s", "steady/s", "seconds", "startup s", "ratio"):
        table.add_column(column, justify="right")
    ratio = result.get("ratio") or {}
    sides = [("pipeline", result["pipeline"]), *(result.get("baselines") or {}).items()]
    for name, side in sides:
        r = ratio.get(name)
        table.add_row(
            _SIDE_LABELS.get(name, name),
            f"{side['eps']:,.0f}",
            "-" if side["steady_eps"] is None else f"{side['steady_eps']:,.0f}",
            f"{side['seconds']:.3f}",
            f"{side['startup_s']:.3f}",
            "" if r is None else f"{r:.2f}",
        )
    console.print(table)
    p = result["pipeline"]
    velocity = "" if p.get("velocity_alerts") is None else f", {p['velocity_alerts']:,} velocity"
    console.print(f"pipeline outputs: {p['alerts']:,} alerts{velocity}")
    latency = result.get("latency")
    if latency:
        lt = Table(
            title=(
                f"end-to-end latency at {latency['offered_eps']:,.0f} events/s offered "
                f"({latency['achieved_eps'] or 0:,.0f} achieved), {latency['duration_s']:g} s "
                f"after {latency['warmup_s']:g} s warm-up, worker in a {latency['worker']}"
            ),
            caption="appended (acknowledged) → visible to a read_committed reader",
        )
        lt.add_column("events")
        for col in ("count", "p50 ms", "p95 ms", "p99 ms", "max ms"):
            lt.add_column(col, justify="right")
        for name in ("tap", "alerts"):
            e = latency[name]
            if e is None:
                continue
            lt.add_row(
                name,
                f"{e['count']:,}",
                *(_ms(e[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
            )
        a = latency["append"]
        lt.add_row(
            f"append call ({a['calls']:,} calls)",
            "",
            *(_ms(a[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
        )
        console.print(lt)
    checks: Mapping[str, Any] = (result.get("targets") or {}).get("checks") or {}
    if not checks:
        console.print("targets: none judged for this backend and guarantee")
        return
    for name, c in checks.items():
        bound = f">= {c['min']:,}" if "min" in c else f"<= {c['max']:g}"
        value = "n/a" if c["value"] is None else f"{c['value']:,}"
        console.print(f"target {name} {bound}: {value} {_VERDICTS[c['met']]}")
    overall = result["targets"]["met"]
    console.print(
        "targets: "
        + (
            "[green]all met[/]"
            if overall
            else "not all judged"
            if overall is None
            else "[red]missed[/]"
        )
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"
