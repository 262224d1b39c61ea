"""The throughput phase: the pipeline's run, draining workers here or forked, committed offsets."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from eventml.bench._timing import STALL_S, BenchmarkError, time_reads
from eventml.bench.pipeline._result import _metrics
from eventml.bench.pipeline._setup import (
    _START_TIMEOUT_S,
    _WATCH_EVERY_S,
    _Bench,
    _Counters,
    _Drain,
    _Flag,
    _Runner,
    _stop_when,
)
from eventml.demos.fraud.app import fraud_app
from eventml.engine import App, Worker
from eventml.engine.worker import tune_gc
from eventml.log import ConsumerConfig, Log, TopicPartition


def _run_pipeline(
    bench: _Bench, k: int, *, validate: bool = False
) -> tuple[dict[str, Any], dict[str, str]]:
    """Run ``k``'s fraud app over all records; ``validate``: with the transactions' contract."""
    run = f"v{k}" if validate else str(k)
    alerts = f"{bench.prefix}-alerts-{run}"
    velocity = f"{bench.prefix}-velocity-{run}" if bench.velocity else None
    app = fraud_app(
        bench.model,
        name=f"{bench.prefix}-fraud-{run}",
        broker=bench.url,
        transactions=bench.input_topic,
        alerts=alerts,
        velocity=velocity,
        partitions=bench.partitions,
        validate=validate,
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
    metrics["dead_letters"] = drain.counters.dead_letters
    topics = {"app": app.name, "alerts": alerts}
    if velocity:
        topics["velocity"] = velocity
    return metrics, topics


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
        return _Counters(st.records, st.batches, st.outputs, st.commits_refused, st.dead_letters)


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
        tune_gc()  # what Worker.run does: same collector settings as the pipeline
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
            tune_gc()
            try:
                while not stop.is_set():
                    runner.step()
            finally:
                runner.close()
        results.put((index, asdict(runner.counters()), None))
    except BaseException as e:
        results.put((index, None, f"{type(e).__name__}: {e}"))
        raise


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


# -- offsets and counts ----------------------------------------------------------------------------


class _CommittedOffsets:
    """A group's committed offsets on a topic (the input), read without joining the group."""

    def __init__(self, bench: _Bench, group: str, topic: str | None = None) -> None:
        self.bench = bench
        self.group = group
        topic = topic or bench.input_topic
        self.tps = [TopicPartition(topic, p) for p in range(bench.partitions)]
        self.starts = bench.log.start_offsets(topic)

    def offsets(self) -> dict[int, int | None]:
        committed = self.bench.log.committed_offsets(self.group, self.tps)
        return {tp.partition: offset for tp, offset in committed.items()}

    def total(self) -> int:
        """Records committed so far (over every partition)."""
        return sum(
            offset - self.starts.get(p, 0)
            for p, offset in self.offsets().items()
            if offset is not None
        )

    def close(self) -> None:
        """Nothing to release: the log keeps its offset reader."""


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
