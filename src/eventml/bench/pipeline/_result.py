"""The pipeline benchmark's result: metrics per side, ratios, the statistic over runs, targets."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from eventml.bench.log import _versions
from eventml.bench.pipeline._setup import Statistic, _Bench, _Drain
from eventml.log.registry import BrokerUrl

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
    if "dead_letters" in out:
        out["dead_letters"] = sum(r["dead_letters"] for r in runs)
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
        "validation": None,  # see _validation._add_validation
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
    return {"checks": checks, "met": _overall(checks)}


def _overall(checks: Mapping[str, Mapping[str, Any]]) -> bool | None:
    """All met: True; one missed: False; else (none, or one not measured): None."""
    verdicts = [c["met"] for c in checks.values()]
    return (
        None if not verdicts else False if False in verdicts else None if None in verdicts else True
    )
