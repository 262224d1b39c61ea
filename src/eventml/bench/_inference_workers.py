"""Several worker processes draining one topic: the aggregate rate of ``eventml bench inference
--workers N``.

Each worker is a forked process with its own log connection and a fresh copy of the app
(the fitted model comes with the fork). The processes join the consumer group and wait
until each holds its share of the partitions; then one ``go`` starts them all, and each
notes when its batches commit. The run ends when the committed records add up to the
topic's; its time is ``go`` → the last commit of any worker (``time.perf_counter`` is one
clock for every process on Linux and macOS).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from eventml.bench._timing import STALL_S, BenchmarkError
from eventml.engine import App, Worker
from eventml.ml.inference import InferenceStats

MakeApp = Callable[[Callable[[list[Any]], None]], tuple[App, InferenceStats | None]]
"""Builds the app in the worker process, given the sink that counts what it saw; returns
the app and the model's statistics (None: no model)."""

_START_TIMEOUT_S = 60.0
_WATCH_EVERY_S = 0.005


class _TimedWorker(Worker):
    """A worker that adds what it commits to a shared counter and notes when."""

    def __init__(self, app: App, index: int, done: Any) -> None:
        super().__init__(app, index=index)
        self.done = done
        self.last_at = 0.0

    def step(self) -> int:
        before = self.stats.records
        n = super().step()
        committed = self.stats.records - before
        if committed:
            self.last_at = time.perf_counter()
            with self.done.get_lock():
                self.done.value += committed
        return n


def drain_forked(make_app: MakeApp, *, events: int, workers: int, partitions: int) -> dict[str, Any]:
    """``workers`` forked processes run ``make_app``'s app until ``events`` records are
    committed: the aggregate rate and what each worker did."""
    if workers < 1 or partitions % workers:
        raise BenchmarkError(f"{partitions} partitions do not split evenly over {workers} workers")
    ctx = mp.get_context("fork")
    done = ctx.Value("q", 0)
    ready = [ctx.Event() for _ in range(workers)]
    go, stop = ctx.Event(), ctx.Event()
    results = ctx.Queue()
    share = partitions // workers
    procs = [
        ctx.Process(target=_child, args=(make_app, i, share, done, ready[i], go, stop, results),
                    name=f"bench-inference-{i}", daemon=True)
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not all(r.is_set() for r in ready):
            _check_alive(procs, results)
            if time.monotonic() > deadline:
                raise BenchmarkError(f"workers did not join the group in {_START_TIMEOUT_S:.0f} s")
            time.sleep(0.01)
        t0 = time.perf_counter()
        go.set()
        last, seen = time.monotonic(), 0
        while seen < events:
            time.sleep(_WATCH_EVERY_S)
            now_seen = done.value
            if now_seen > seen:
                seen, last = now_seen, time.monotonic()
            elif time.monotonic() - last > STALL_S:
                raise BenchmarkError(f"{workers} workers stalled at {seen:,} of {events:,} events")
            _check_alive(procs, results)
        stop.set()
        reports = []
        for _ in procs:
            try:
                index, report, error = results.get(timeout=60)
            except queue.Empty:
                raise BenchmarkError("a worker did not report after stopping") from None
            if error is not None:
                raise BenchmarkError(f"worker {index} failed: {error}")
            reports.append(report)
    finally:
        stop.set()
        go.set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join(5)
    reports.sort(key=lambda r: r["index"])
    committed = sum(r["records"] for r in reports)
    if committed != events or any(r["seen"] != r["records"] for r in reports):
        raise BenchmarkError(
            f"{workers} workers committed {committed:,} of {events:,} events "
            f"(sinks saw {[r['seen'] for r in reports]})"
        )
    seconds = max(r["last_at"] for r in reports) - t0
    return {"workers": workers, "seconds": round(seconds, 4), "events_per_s": round(events / seconds),
            "per_worker": [{k: v for k, v in r.items() if k != "last_at"} for r in reports]}


def _child(
    make_app: MakeApp, index: int, share: int, done: Any, ready: Any, go: Any, stop: Any,
    results: Any,
) -> None:
    try:
        seen = [0]

        def count(items: list[Any]) -> None:
            seen[0] += len(items)

        app, stats = make_app(count)
        worker = _TimedWorker(app, index, done)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while len(worker.consumer.assignment()) != share:  # join; wait for the others
            if time.monotonic() > deadline:
                raise BenchmarkError(f"holds {len(worker.consumer.assignment())} partitions, not {share}")
            worker.consumer.poll(0, 0)
            time.sleep(0.005)
        ready.set()
        go.wait()

        def stop_when_asked() -> None:
            stop.wait()
            worker.stop()

        threading.Thread(target=stop_when_asked, daemon=True).start()
        worker.run()  # closes the worker
        st = worker.stats
        report: dict[str, Any] = {
            "index": index, "records": st.records, "seen": seen[0], "batches": st.batches,
            "mean_batch": round(st.records / st.batches, 1) if st.batches else 0,
            "last_at": worker.last_at,
        }
        if stats is not None:
            report["model_batches"] = _only(stats).as_dict()["batch_sizes"]
        results.put((index, report, None))
    except BaseException as e:
        results.put((index, None, f"{type(e).__name__}: {e}"))
        raise


def _only(stats: InferenceStats) -> Any:
    from eventml.ml._stats import VersionStats

    return next(iter(stats.versions.values()), VersionStats())


def _check_alive(procs: list[Any], results: Any) -> None:
    for p in procs:
        if p.exitcode is not None:
            error = None
            with contextlib.suppress(queue.Empty):
                _, _, error = results.get_nowait()
            raise BenchmarkError(f"worker process {p.name} exited ({p.exitcode})"
                                 + (f": {error}" if error else ""))
