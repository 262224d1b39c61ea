"""The hot-swap benchmark: an alias flipped mid-stream under load, then every event counted.

What :func:`run` does, on the log at ``url`` (default: an embedded log in a temporary
directory):

1. registers three versions of a scikit-learn model (logistic regressions fitted on
   different data) in a temporary registry and points ``<model>@champion`` at version 1;
2. appends ``events`` card events (``partitions`` partitions, keyed by card), noting each
   event's id, partition and offset;
3. forks ``workers`` worker processes running ``predict("<model>@champion", registry=...,
   predictions=..., decision=0.5)`` (optionally with a shadow ``<model>@challenger``),
   writing the scored events, stamped with the wall-clock time they were scored, to an
   output topic, exactly-once;
4. while they run, moves the alias ``flips`` times through :func:`eventml.ml.move_alias`
   (versions 2, 3, 1, 2, ...), each when the group's committed offsets pass the next
   ``1/(flips+1)`` of the events;
5. once every event is committed, stops the workers and reads everything back: the
   prediction log, the control topic and the outputs. :func:`eventml.testing.check_predictions`
   checks every event has exactly one acted-on prediction, by a version the alias named,
   in its order on every partition; every output must carry the version its prediction
   records. Each flip's switch lag is the time from the change's publication to the first
   event a partition scored with it (the largest over partitions: when every worker had
   switched). A worker switches at its next batch, so under load the lag is about one
   batch's duration (``--max-batch`` trades it against throughput), plus ``watch_every_ms``.

Events/s is over the scoring window: from the first committed batch to the last.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import platform
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from eventml.bench._timing import STALL_S, BenchmarkError
from eventml.log import Log, Message, TopicPartition, TopicSpec, open_log
from eventml.log.registry import parse_broker_url

if TYPE_CHECKING:
    from rich.console import Console

    from eventml.engine import App

FEATURES = ("amount", "velocity", "distance", "hour")
_VERSIONS = 3
_APPEND_CHUNK = 50_000
_WATCH_EVERY_S = 0.02
_START_TIMEOUT_S = 120.0


def run(
    url: str | None = None,
    *,
    events: int = 1_000_000,
    flips: int = 10,
    workers: int = 4,
    partitions: int = 4,
    keys: int = 10_000,
    max_batch: int = 5_000,
    shadow: bool = False,
    watch_every_ms: float = 100,
    guarantee: str = "exactly_once",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the benchmark (see the module docstring) and return its figures."""
    if events < 1 or flips < 0 or workers < 1 or partitions < 1 or keys < 1 or max_batch < 1:
        raise BenchmarkError("events, workers, partitions, keys and max-batch must be >= 1, flips >= 0")
    say = progress or (lambda _msg: None)
    with _places(url) as (broker, models_dir):
        return _Run(broker, models_dir, events=events, flips=flips, workers=workers,
                    partitions=partitions, keys=keys, max_batch=max_batch, shadow=shadow,
                    watch_every_ms=watch_every_ms, guarantee=guarantee, say=say).go()


@contextlib.contextmanager
def _places(url: str | None) -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="eventml-bench-hotswap-") as tmp:
        yield url or f"embedded://{tmp}/data", f"{tmp}/models"


def _stamp(value: dict[str, Any]) -> dict[str, Any]:
    """The scored event with the wall-clock time it was scored (for the switch lag)."""
    value["scored_ms"] = time.time_ns() // 1_000_000
    return value


class _Run:
    def __init__(self, url: str, models_dir: str, *, events: int, flips: int, workers: int,
                 partitions: int, keys: int, max_batch: int, shadow: bool, watch_every_ms: float,
                 guarantee: str, say: Callable[[str], None]) -> None:
        self.url, self.models_dir = url, models_dir
        self.events, self.flips, self.workers = events, flips, workers
        self.partitions, self.keys, self.max_batch = partitions, keys, max_batch
        self.shadow, self.watch_every_ms, self.guarantee = shadow, watch_every_ms, guarantee
        self.say = say
        run_id = uuid.uuid4().hex[:8]
        self.prefix = f"bench-hotswap-{run_id}"
        self.model = f"hotswap-{run_id}"
        self.topics = {k: f"{self.prefix}-{k}" for k in ("events", "scored", "predictions")}

    # -- setup ----------------------------------------------------------------------
    def _registry(self) -> Any:
        from eventml.ml import ModelRegistry
        from eventml.ml.scorer import single_threaded

        try:
            from sklearn.linear_model import LogisticRegression
        except ImportError as e:
            raise BenchmarkError(f"the hot-swap benchmark needs scikit-learn ({e}): "
                                 "pip install 'eventml[ml]'") from None
        registry = ModelRegistry(self.models_dir)
        for seed in range(_VERSIONS):
            rng = np.random.default_rng(100 + seed)
            x = rng.normal(size=(4_000, len(FEATURES)))
            w = rng.normal(size=len(FEATURES))
            y = (x @ w + rng.normal(scale=0.5, size=len(x)) > 1.0).astype(np.int64)
            with single_threaded():
                est = LogisticRegression().fit(x, y)
            registry.register(self.model, est, flavor="sklearn", features=FEATURES,
                              description=f"hot-swap bench version {seed + 1}")
        registry.set_alias(self.model, "champion", 1)
        registry.set_alias(self.model, "challenger", _VERSIONS)
        return registry

    def _append(self, log: Log) -> list[tuple[str, int, int]]:
        log.create_topic(TopicSpec(self.topics["events"], self.partitions))
        rng = np.random.default_rng(7)
        placed: list[tuple[str, int, int]] = []
        now_ms = int(time.time() * 1000)
        for start in range(0, self.events, _APPEND_CHUNK):
            n = min(_APPEND_CHUNK, self.events - start)
            x = rng.normal(size=(n, len(FEATURES))).tolist()
            ids = [f"{self.prefix}-{i}" for i in range(start, start + n)]
            messages = []
            for j, row in enumerate(x):
                i = start + j
                card = f"card-{i % self.keys}"
                value = {"n": i, "card": card, **dict(zip(FEATURES, row, strict=True))}
                messages.append(Message(orjson.dumps(value), card.encode(),
                                        (("ce_id", ids[j].encode()), ("ce_type", b"card.tx")),
                                        now_ms + i // 1000))
            for event_id, md in zip(ids, log.append(self.topics["events"], messages), strict=True):
                placed.append((event_id, md.partition, md.offset))
        return placed

    def _app(self, registry: Any) -> App:
        from eventml.engine import App

        app = App(self.prefix, broker=self.url, max_batch=self.max_batch,
                  guarantee=self.guarantee)
        source = app.topic(self.topics["events"], partitions=self.partitions, key="card")
        scored = app.topic(self.topics["scored"], partitions=self.partitions, key="card")
        (app.stream(source)
            .predict(f"{self.model}@champion", features=list(FEATURES), registry=registry,
                     predictions=self.topics["predictions"], decision=0.5,
                     shadow=f"{self.model}@challenger" if self.shadow else None,
                     watch_every_ms=self.watch_every_ms)
            .map(_stamp)
            .to(scored))
        return app

    # -- the run --------------------------------------------------------------------
    def go(self) -> dict[str, Any]:
        self.say(f"registering {_VERSIONS} versions of {self.model}")
        registry = self._registry()
        with open_log(self.url) as log:
            try:
                return self._measure(log, registry)
            finally:  # a shared broker keeps no bench topics (dead letters included)
                for topic in log.list_topics():
                    if topic.startswith(self.prefix):
                        log.delete_topic(topic)

    def _measure(self, log: Log, registry: Any) -> dict[str, Any]:
        from eventml.ml import move_alias

        self.say(f"appending {self.events:,} events to {self.topics['events']}")
        t0 = time.perf_counter()
        placed = self._append(log)
        append_s = time.perf_counter() - t0
        app = self._app(registry)
        committed = _Committed(log, self.url, app.name, self.topics["events"], self.partitions)
        self.say(f"running {self.workers} workers, flipping {self.model}@champion "
                 f"{self.flips} times")
        version, flipped = 1, 0
        flip_at = [self.events * (k + 1) // (self.flips + 1) for k in range(self.flips)]
        with _Workers(app, self.workers) as fleet:
            started = time.perf_counter()
            first: float | None = None
            last_progress, last_change = 0, started
            while True:
                fleet.check()
                done = committed.total()
                now = time.perf_counter()
                if done and first is None:
                    first = now
                if done != last_progress:
                    last_progress, last_change = done, now
                elif now - last_change > STALL_S:
                    raise BenchmarkError(f"workers stalled at {done:,} of {self.events:,} events")
                while flipped < self.flips and done >= flip_at[flipped]:
                    version = version % _VERSIONS + 1
                    move_alias(registry, log, self.model, "champion", version,
                               reason=f"bench flip {flipped + 1}")
                    flipped += 1
                if done >= self.events:
                    break
                time.sleep(_WATCH_EVERY_S)
            ended = time.perf_counter()
            counters = fleet.stop()
        committed.close()
        self.say("reading the prediction log, the control topic and the outputs back")
        return self._result(log, placed, counters, append_s=append_s,
                            total_s=ended - started, scoring_s=ended - (first or started))

    def _result(self, log: Log, placed: list[tuple[str, int, int]], counters: Mapping[str, int],
                *, append_s: float, total_s: float, scoring_s: float) -> dict[str, Any]:
        from eventml.ml.control import alias_changes
        from eventml.ml.predlog import iter_prediction_rows, iter_predictions
        from eventml.testing import check_predictions

        alias = f"{self.model}@champion"
        changes = [c for c in alias_changes(log) if f"{c.model}@{c.alias}" == alias]
        logged: dict[str, int | None] = {}

        def acted_versions() -> Iterator[Any]:
            for p in iter_predictions(log, self.topics["predictions"]):
                if p.role != "shadow":
                    logged.setdefault(p.event_id, p.version)
                yield p

        t0 = time.perf_counter()
        report = check_predictions(placed, acted_versions(), changes, initial=1, alias=alias)
        check_s = time.perf_counter() - t0
        scored_at: dict[int, int] = {}
        outputs = mismatched = 0
        for _partition, value in iter_prediction_rows(log, self.topics["scored"]):
            v = orjson.loads(value)
            outputs += 1
            scored_at[v["n"]] = v["scored_ms"]
            version = int(v["model_version"].rpartition(":")[2])
            if logged.get(f"{self.prefix}-{v['n']}") != version:
                mismatched += 1
        lags = _lags(report.switches, changes, scored_at, self.prefix)
        lag_values = [f["lag_ms"] for f in lags if f["lag_ms"] is not None]
        return {
            "benchmark": "hotswap",
            "broker": parse_broker_url(self.url).scheme,
            "events": self.events,
            "flips": self.flips,
            "workers": self.workers,
            "partitions": self.partitions,
            "max_batch": self.max_batch,
            "guarantee": self.guarantee,
            "shadow": self.shadow,
            "watch_every_ms": self.watch_every_ms,
            "append_s": round(append_s, 3),
            "total_s": round(total_s, 3),
            "scoring_s": round(scoring_s, 3),
            "events_per_s": round(self.events / scoring_s) if scoring_s else None,
            "predictions": report.acted_on,
            "shadow_predictions": report.shadow,
            "outputs": outputs,
            "outputs_not_matching_log": mismatched,
            "duplicates": len(report.duplicated),
            "missing": len(report.missing),
            "unexpected": len(report.unexpected),
            "unknown_versions": len(report.unknown_versions),
            "reverted": len(report.reverted),
            "versions_used": {str(k): n for k, n in report.versions.items()},
            "alias_changes": len(changes),
            "switch_lag_ms": {
                "max": max(lag_values) if lag_values else None,
                "median": float(np.median(lag_values)) if lag_values else None,
            },
            "per_flip": lags,
            "mean_batch": round(counters["records"] / counters["batches"], 1)
            if counters.get("batches") else None,
            "check_s": round(check_s, 3),
            "ok": report.ok and mismatched == 0 and outputs == self.events,
            "checker": report.summary(),
            "workers_stats": dict(counters),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
        }


def _lags(switches: Any, changes: list[Any], scored_at: Mapping[int, int], prefix: str
          ) -> list[dict[str, Any]]:
    """Per flip: when each partition first scored with it, after the change was published."""
    per: dict[int, list[int]] = {}
    for s in switches:
        if s.assignment == 0:
            continue
        n = int(s.event_id.rpartition("-")[2])
        if n in scored_at:
            per.setdefault(s.assignment, []).append(scored_at[n])
    out = []
    for k, change in enumerate(changes, start=1):
        times = per.get(k, [])
        out.append({
            "flip": k,
            "version": change.version,
            "partitions_switched": len(times),
            "lag_ms": (max(times) - change.at_ms) if times else None,
            "first_ms": (min(times) - change.at_ms) if times else None,
        })
    return out


# -- workers in processes, and the group's progress ----------------------------------------


def _child(app: App, index: int, stop: Any, results: Any) -> None:
    from eventml.engine import Worker

    try:
        worker = Worker(app, index=index)

        def watch() -> None:
            stop.wait()
            worker.stop()

        threading.Thread(target=watch, daemon=True).start()
        stats = worker.run()
        results.put((index, {"records": stats.records, "batches": stats.batches,
                             "outputs": stats.outputs, "dead_letters": stats.dead_letters,
                             "commits_refused": stats.commits_refused}, None))
    except BaseException as e:
        results.put((index, None, f"{type(e).__name__}: {e}"))
        raise


class _Workers:
    """``n`` forked workers of ``app``; :meth:`stop` ends them and sums their counters."""

    def __init__(self, app: App, n: int) -> None:
        ctx = mp.get_context("fork")
        self.stop_flag = ctx.Event()
        self.results = ctx.Queue()
        self.procs = [ctx.Process(target=_child, args=(app, i, self.stop_flag, self.results),
                                  name=f"{app.name}-{i}", daemon=True) for i in range(n)]

    def __enter__(self) -> _Workers:
        for p in self.procs:
            p.start()
        return self

    def check(self) -> None:
        for p in self.procs:
            if not p.is_alive():
                raise BenchmarkError(f"worker {p.name} exited ({p.exitcode}): {self._error()}")

    def _error(self) -> str:
        with contextlib.suppress(Exception):
            while True:
                _, _, error = self.results.get(timeout=0.5)
                if error:
                    return str(error)
        return "no error reported"

    def stop(self) -> Counter[str]:
        self.stop_flag.set()
        total: Counter[str] = Counter()
        for _ in self.procs:
            try:
                _, counters, error = self.results.get(timeout=_START_TIMEOUT_S)
            except Exception:
                raise BenchmarkError("a worker did not report after being stopped") from None
            if error:
                raise BenchmarkError(f"a worker failed: {error}")
            total.update(counters)
        return total

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        for p in self.procs:
            p.join(30)
            if p.is_alive():
                p.kill()


class _Committed:
    """The group's committed offsets on the input, read without joining the group."""

    def __init__(self, log: Log, url: str, group: str, topic: str, partitions: int) -> None:
        self.log, self.group = log, group
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.starts = log.start_offsets(topic)

    def total(self) -> int:
        found = self.log.committed_offsets(self.group, self.tps)
        return sum(o - self.starts.get(tp.partition, 0) for tp, o in found.items() if o is not None)

    def close(self) -> None:
        """Nothing to release: the log keeps its offset reader."""


def render_hotswap_table(result: Mapping[str, Any], console: Console) -> None:
    """The run's counts, then one row per flip."""
    from rich.table import Table

    verdict = "[green]checker passed[/]" if result["ok"] else "[red]CHECKER FAILED[/]"
    summary = Table(
        title=f"hot swap: {result['events']:,} events, {result['flips']} flips, "
        f"{result['workers']} workers, {result['partitions']} partitions",
        caption=f"{result['broker']}, {result['guarantee']}, max batch {result['max_batch']:,}, "
        f"watch every {result['watch_every_ms']:g} ms; {verdict}",
    )
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    for name, value in (
        ("events/s (scoring window)", f"{result['events_per_s']:,}"),
        ("scoring window", f"{result['scoring_s']:.2f} s"),
        ("mean batch (events)", f"{result['mean_batch']:,}"),
        ("acted-on predictions", f"{result['predictions']:,}"),
        ("shadow predictions", f"{result['shadow_predictions']:,}"),
        ("duplicates", f"{result['duplicates']:,}"),
        ("missing", f"{result['missing']:,}"),
        ("unknown versions / reverted", f"{result['unknown_versions']} / {result['reverted']}"),
        ("outputs not matching the log", f"{result['outputs_not_matching_log']:,}"),
        ("versions used", ", ".join(f"v{k}: {n:,}" for k, n in result["versions_used"].items())),
        ("switch lag max / median", _ms(result["switch_lag_ms"]["max"]) + " / "
         + _ms(result["switch_lag_ms"]["median"])),
    ):
        summary.add_row(name, value)
    console.print(summary)
    flips = Table(title="per flip: publication to the first event scored with it")
    for col in ("flip", "version", "partitions switched", "first", "all switched"):
        flips.add_column(col, justify="right")
    for f in result["per_flip"]:
        flips.add_row(str(f["flip"]), str(f["version"]), str(f["partitions_switched"]),
                      _ms(f["first_ms"]), _ms(f["lag_ms"]))
    console.print(flips)
    if not result["ok"]:
        console.print(f"[red]{result['checker']}[/]")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"
