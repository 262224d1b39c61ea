"""`eventml bench inference`: batched model scoring inside the pipeline vs per-event calls.

On one log (a temporary embedded one by default), N events with F numeric features
are appended once; then, for scikit-learn's ``LogisticRegression`` and
``HistGradientBoostingClassifier`` (fitted and scored on one thread), in the same run:

* the pipeline ``source → predict → sink`` (one worker, exactly-once) drains the topic:
  predictions/s, the part of its time spent in model calls, batch sizes;
* the same pipeline without ``predict`` (pass-through): what the engine costs alone;
* the raw batched model call (``predict_proba`` on the pipeline's batch size, no engine);
* the same model called per event (``predict_proba`` on a 1-row array).

Targets (issue 6): >= 200k predictions/s inside the pipeline on 2 cores, and >= 20x
the per-event call rate.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import pstats
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from eventml.bench._timing import BenchmarkError
from eventml.log import Log, Message, TopicSpec, open_log

Progress = Callable[[str], None]

TARGET_PREDICTIONS_PER_S = 200_000
TARGET_RATIO = 20.0
_TOPIC = "bench-inference"
_APPEND_CHUNK = 20_000


def run(
    broker: str | None = None,
    *,
    events: int = 400_000,
    features: int = 10,
    max_batch: int = 5_000,
    per_event_calls: int = 2_000,
    train_rows: int = 50_000,
    models: tuple[str, ...] = ("logreg", "hgb"),
    profile: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Time scoring ``events`` events of ``features`` features (see the module's doc)."""
    for name, value, least in (("events", events, 1), ("features", features, 1),
                               ("max_batch", max_batch, 1), ("per_event_calls", per_event_calls, 1),
                               ("train_rows", train_rows, 10)):
        if value < least:
            raise BenchmarkError(f"{name} must be >= {least}, got {value}")
    unknown = set(models) - set(_MODELS)
    if unknown or not models:
        raise BenchmarkError(f"models must be among {sorted(_MODELS)}, got {list(models)}")
    say = progress or (lambda _msg: None)
    names = [f"f{i}" for i in range(features)]
    x, y = _dataset(max(events, train_rows), features)
    with _broker(broker) as url, open_log(url) as log:
        say(f"appending {events:,} events with {features} features to {url}")
        _append(log, x[:events], names)
        say("pass-through pipeline (no predict)")
        passthrough = _pipeline(url, log, events, None, names, max_batch, profile=False)
        results: dict[str, Any] = {}
        for kind in models:
            say(f"{kind}: fitting on {train_rows:,} rows (one thread)")
            estimator, fit_s = _fit(kind, x[:train_rows], y[:train_rows])
            say(f"{kind}: pipeline with predict")
            pipe = _pipeline(url, log, events, estimator, names, max_batch, profile=profile)
            say(f"{kind}: raw batched and per-event calls")
            raw = _raw_batched(estimator, x[:events], max_batch)
            single = _per_event(estimator, x, per_event_calls)
            results[kind] = _model_result(type(estimator).__name__, fit_s, pipe, raw, single, passthrough)
    checks = {
        f"{kind} pipeline predictions/s": {"min": TARGET_PREDICTIONS_PER_S,
                                           "value": r["pipeline"]["predictions_per_s"],
                                           "met": r["pipeline"]["predictions_per_s"] >= TARGET_PREDICTIONS_PER_S}
        for kind, r in results.items()
    } | {
        f"{kind} pipeline / per-event": {"min": TARGET_RATIO, "value": r["pipeline_vs_per_event"],
                                         "met": r["pipeline_vs_per_event"] >= TARGET_RATIO}
        for kind, r in results.items()
    }
    return {
        "benchmark": "inference",
        "broker": url if broker else "embedded (temporary)",
        "events": events,
        "features": features,
        "max_batch": max_batch,
        "per_event_calls": per_event_calls,
        "guarantee": "exactly_once",
        "workers": 1,
        "cpus": os.cpu_count(),
        "load": _load(),
        "versions": _versions(),
        "passthrough": {k: v for k, v in passthrough.items() if k != "profile"},
        "models": results,
        "targets": {"checks": checks, "met": all(c["met"] for c in checks.values())},
    }


# -- data and models -------------------------------------------------------------------


def _dataset(n: int, k: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(n, k))
    w = rng.normal(size=k)
    y = (x @ w + 0.5 * x[:, 0] * x[:, 1 % k] + rng.normal(size=n) > 1.0).astype(np.int64)
    return x, y


def _logreg() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=500)


def _hgb() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=100, random_state=0)


_MODELS: dict[str, Callable[[], Any]] = {"logreg": _logreg, "hgb": _hgb}


def _fit(kind: str, x: NDArray[np.float64], y: NDArray[np.int64]) -> tuple[Any, float]:
    from eventml.ml.inference import _one_thread

    try:
        estimator = _MODELS[kind]()
    except ImportError as e:
        raise BenchmarkError(f"the inference benchmark needs scikit-learn ({e}): pip install 'eventml[ml]'") from None
    t0 = time.perf_counter()
    with _one_thread():  # OpenMP threads on 2 busy cores made fit ~10x slower here
        estimator.fit(x, y)
    return estimator, time.perf_counter() - t0


# -- the log and the pipelines ------------------------------------------------------------


@contextlib.contextmanager
def _broker(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="eventml-bench-inference-") as tmp:
        yield f"embedded://{tmp}/data"


def _append(log: Log, x: NDArray[np.float64], names: list[str]) -> None:
    log.create_topic(TopicSpec(_TOPIC, 1))
    now_ms = int(time.time() * 1000)
    rows = x.tolist()
    for start in range(0, len(rows), _APPEND_CHUNK):
        log.append(_TOPIC, [
            Message(orjson.dumps(dict(zip(names, row, strict=True))), None,
                    (("ce_id", f"e{i}".encode()),), now_ms)
            for i, row in enumerate(rows[start:start + _APPEND_CHUNK], start)
        ])


def _pipeline(
    url: str, log: Log, events: int, estimator: Any, names: list[str], max_batch: int, *, profile: bool
) -> dict[str, Any]:
    """Drain the topic with one worker (its own consumer group); ``estimator`` None: no predict."""
    from eventml.engine import App, Worker
    from eventml.ml.inference import InferenceStats

    app = App(f"bench-inference-{uuid.uuid4().hex[:8]}", broker=url, max_batch=max_batch)
    seen = [0]

    def count(items: list[Any]) -> None:
        seen[0] += len(items)

    stream = app.stream(app.topic(_TOPIC))
    stats = InferenceStats()
    if estimator is not None:
        stream = stream.predict(estimator, features=names, stats=stats, version_of="bench")
    stream.sink(count)
    worker = Worker(app, log=log)
    profiler = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    worker.run(max_records=events, idle_timeout_s=30)
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - t0
    if seen[0] != events:
        raise BenchmarkError(f"pipeline saw {seen[0]:,} of {events:,} events")
    sizes = worker.stats.batch_sizes
    out: dict[str, Any] = {
        "seconds": round(seconds, 4),
        "events_per_s": round(events / seconds),
        "batches": worker.stats.batches,
        "mean_batch": round(sum(sizes) / len(sizes), 1) if sizes else 0,
    }
    if estimator is not None:
        s = stats.versions["bench"]
        out["model_seconds"] = round(s.seconds, 4)
        out["model_share"] = round(s.seconds / seconds, 3)
        out["model_batch_p50_ms"] = _round(s.percentile_ms(0.5))
        out["model_batch_p99_ms"] = _round(s.percentile_ms(0.99))
    if profiler is not None:
        out["profile"] = _top(profiler)
    return out


def _raw_batched(estimator: Any, x: NDArray[np.float64], batch: int) -> dict[str, Any]:
    from eventml.ml.inference import _one_thread

    t0 = time.perf_counter()
    for start in range(0, len(x), batch):
        with _one_thread():
            estimator.predict_proba(x[start:start + batch])
    seconds = time.perf_counter() - t0
    return {"seconds": round(seconds, 4), "predictions_per_s": round(len(x) / seconds)}


def _per_event(estimator: Any, x: NDArray[np.float64], calls: int) -> dict[str, Any]:
    """``predict_proba`` on a 1-row array, one thread (the limit set once, around the loop)."""
    from eventml.ml.inference import _one_thread

    rows = [x[i % len(x)].reshape(1, -1) for i in range(calls)]
    with _one_thread():
        for row in rows[: min(50, calls)]:  # warm-up
            estimator.predict_proba(row)
        t0 = time.perf_counter()
        for row in rows:
            estimator.predict_proba(row)
        seconds = time.perf_counter() - t0
    return {"calls": calls, "seconds": round(seconds, 4), "predictions_per_s": round(calls / seconds),
            "us_per_call": round(seconds / calls * 1e6, 1)}


def _model_result(
    name: str, fit_s: float, pipe: Mapping[str, Any], raw: Mapping[str, Any],
    single: Mapping[str, Any], passthrough: Mapping[str, Any],
) -> dict[str, Any]:
    rate = pipe["events_per_s"]
    per_event = single["predictions_per_s"]
    pipeline = {("predictions_per_s" if k == "events_per_s" else k): v for k, v in pipe.items()}
    return {
        "estimator": name,
        "fit_s": round(fit_s, 3),
        "pipeline": pipeline,
        "raw_batched": dict(raw),
        "per_event": dict(single),
        "pipeline_vs_per_event": round(rate / per_event, 1),
        "raw_batched_vs_per_event": round(raw["predictions_per_s"] / per_event, 1),
        "pipeline_vs_passthrough": round(rate / passthrough["events_per_s"], 3),
    }


def _top(profiler: cProfile.Profile, n: int = 12) -> list[dict[str, Any]]:
    """The ``n`` functions with the most own time."""
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    raw: Mapping[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (path, line, func), (_cc, calls, tottime, cumtime, _callers) in raw.items():
        rows.append({"function": f"{os.path.basename(path)}:{line}:{func}", "calls": calls,
                     "own_s": round(tottime, 4), "cum_s": round(cumtime, 4)})
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    return rows[:n]


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on this platform
        return None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"numpy": np.__version__}
    with contextlib.suppress(PackageNotFoundError):
        out["scikit_learn"] = version("scikit-learn")
    return out


# -- rendering ----------------------------------------------------------------------------


def render_inference_table(result: Mapping[str, Any], console: Console) -> None:
    """Per model: pipeline, raw batched and per-event rates, then the target verdicts."""
    table = Table(
        title=f"inference: {result['events']:,} events x {result['features']} features, "
        f"max batch {result['max_batch']:,}",
        caption=f"{result['broker']}, 1 worker, exactly-once; "
        f"pass-through {result['passthrough']['events_per_s']:,} events/s",
    )
    for col in ("model", "pipeline pred/s", "model share", "raw batched pred/s",
                "per-event pred/s", "pipeline / per-event", "pipeline / pass-through"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for kind, r in result["models"].items():
        table.add_row(
            f"{kind} ({r['estimator']})",
            f"{r['pipeline']['predictions_per_s']:,}",
            f"{r['pipeline'].get('model_share', 0):.0%}",
            f"{r['raw_batched']['predictions_per_s']:,}",
            f"{r['per_event']['predictions_per_s']:,}",
            f"{r['pipeline_vs_per_event']:,}x",
            f"{r['pipeline_vs_passthrough']:.0%}",
        )
    console.print(table)
    for kind, r in result["models"].items():
        for row in r["pipeline"].get("profile", [])[:8]:
            console.print(f"  {kind} profile: {row['own_s']:>8.3f} s own  {row['calls']:>9,}  {row['function']}")
    for name, c in result["targets"]["checks"].items():
        verdict = "[green]ok[/]" if c["met"] else "[red]MISSED[/]"
        console.print(f"target {name} >= {c['min']:,}: {c['value']:,} {verdict}")
