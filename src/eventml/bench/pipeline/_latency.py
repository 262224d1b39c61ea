"""The latency phase: a paced producer, one worker, and a reader stamping when outputs
become visible."""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eventml.bench._timing import STALL_S, BenchmarkError
from eventml.bench.pipeline._setup import (
    _START_TIMEOUT_S,
    _WATCH_EVERY_S,
    LATENCY,
    LatencyWorker,
    _Bench,
    _Flag,
    _messages,
    _stop_when,
)
from eventml.bench.pipeline._throughput import _BenchWorker, _CommittedOffsets, _count_records
from eventml.demos.fraud.app import fraud_app
from eventml.engine import App, Stream
from eventml.engine import graph as g
from eventml.log import ConsumerConfig, Log, Message, Record, TopicSpec

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
