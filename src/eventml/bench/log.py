"""The log benchmark: batched append and fresh-group read throughput, against a raw baseline.

What is timed (``time.perf_counter``):

* **append**: ``log.append(topic, batch)`` over pre-built batches of
  :class:`~eventml.log.Message` (payloads are built before the clock starts).
  ``append`` returning means acknowledged, so every batch is durable per the
  backend's setting when it is counted.
* **read**: a consumer in a fresh group (``auto_offset_reset="earliest"``)
  polling ``max_records=batch_size`` until it has all N records; the clock
  starts before the first poll, so joining the group is included
  (``read_startup_s`` says how long the first record took).

Pre-built inputs (1M ``Message`` tuples for 1M events) are moved out of the
garbage collector's sight with ``gc.freeze`` before timing, on both sides, so
that collections triggered by either side's own allocations do not traverse
the benchmark's inputs; each side's own objects are collected as usual.

The baseline does the same work with the bare client in the same run, on its
own topic or file: see :mod:`eventml.bench.baselines`.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from eventml.bench import baselines
from eventml.bench._timing import BenchmarkError, time_reads
from eventml.bench.baselines import Timing
from eventml.log import ConsumerConfig, Log, Message, TopicSpec, open_log
from eventml.log.partitioner import partition_for
from eventml.log.registry import BrokerUrl, parse_broker_url

Statistic = Literal["best", "median"]
Progress = Callable[[str], None]

#: Targets per backend (design.md, "Targets"): minimum events/s and minimum
#: eventml/baseline ratio ("within 2x of the raw client" = ratio >= 0.5).
TARGETS: Mapping[str, Mapping[str, float]] = {
    "embedded": {
        "append_eps": 300_000,
        "read_eps": 1_000_000,
        "append_ratio": 0.5,
        "read_ratio": 0.5,
    },
    "kafka": {"append_ratio": 0.5, "read_ratio": 0.5},
}

_PAYLOAD_POOL = 4096  # distinct random payloads, cycled (incompressible, little memory)


@dataclass(frozen=True, slots=True)
class Workload:
    """The events both eventml and the baseline write and read."""

    events: int
    batch_size: int = 10_000
    value_size: int = 200
    partitions: int = 1
    keys: int = 0  # distinct keys, cycled; 0: no keys (round-robin over partitions)
    seed: int = 20240601

    def __post_init__(self) -> None:
        for name in ("events", "batch_size", "partitions"):
            if getattr(self, name) < 1:
                raise BenchmarkError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.value_size < 0 or self.keys < 0:
            raise BenchmarkError("value_size and keys must be >= 0")

    def payloads(self) -> list[bytes]:
        rng = random.Random(self.seed)
        return [rng.randbytes(self.value_size) for _ in range(min(self.events, _PAYLOAD_POOL))]

    def key_of(self, i: int) -> bytes | None:
        return b"key-%010d" % (i % self.keys) if self.keys else None

    def partition_of(self, i: int, key: bytes | None) -> int:
        """Keyed: murmur2 like every backend; unkeyed: round-robin."""
        return partition_for(key, self.partitions) if key is not None else i % self.partitions

    def batches(self) -> list[list[Message]]:
        """The events as ``Message`` batches of ``batch_size`` (the last may be shorter)."""
        pool = self.payloads()
        messages = [Message(pool[i % len(pool)], self.key_of(i)) for i in range(self.events)]
        return [messages[i : i + self.batch_size] for i in range(0, self.events, self.batch_size)]

    @property
    def payload_bytes(self) -> int:
        return self.events * self.value_size


@dataclass(frozen=True, slots=True)
class _Profile:
    """How to benchmark one backend: its baseline and its targets."""

    baseline: Callable[[BrokerUrl, Log, Workload, str], Timing] | None
    settings: Callable[[BrokerUrl], dict[str, Any]]
    targets: Mapping[str, float] = field(default_factory=dict)


def _embedded_settings(url: BrokerUrl) -> dict[str, Any]:
    return {"durability": baselines.embedded_durability(url)}


def _kafka_settings(url: BrokerUrl) -> dict[str, Any]:
    return baselines.kafka_settings(url)


_PROFILES: dict[str, _Profile] = {
    "memory": _Profile(None, lambda url: {}),
    "embedded": _Profile(baselines.sqlite_baseline, _embedded_settings, TARGETS["embedded"]),
    "kafka": _Profile(baselines.kafka_baseline, _kafka_settings, TARGETS["kafka"]),
}
_NO_PROFILE = _Profile(None, lambda url: {})


def run_log_benchmark(
    url: str,
    *,
    events: int,
    batch_size: int = 10_000,
    value_size: int = 200,
    partitions: int = 1,
    keys: int = 0,
    repeat: int = 1,
    statistic: Statistic = "best",
    baseline: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Benchmark the log at ``url`` and its raw baseline; returns the JSON-ready result.

    Each of the ``repeat`` runs appends ``events`` events of ``value_size`` random bytes
    to a new topic, reads them back in a fresh consumer group, deletes the topic, then
    does the same with the baseline. Reported numbers are the ``statistic`` ("best" =
    highest, "median") over the runs, per metric and per side, and ``"ratio"`` divides
    eventml's by the baseline's; every run is kept under ``"runs"`` with its own ratios.
    """
    parsed = parse_broker_url(url)  # an unknown scheme fails here, before any work
    if repeat < 1:
        raise BenchmarkError(f"repeat must be >= 1, got {repeat}")
    if statistic not in ("best", "median"):
        raise BenchmarkError(f"statistic must be 'best' or 'median', got {statistic!r}")
    work = Workload(events, batch_size, value_size, partitions, keys)
    profile = _PROFILES.get(parsed.scheme, _NO_PROFILE)
    say = progress or (lambda _msg: None)

    runs: list[dict[str, Any]] = []
    with open_log(url) as log, baselines.inputs_out_of_gc():  # an unreachable log fails first
        say(f"building {events:,} events of {value_size} bytes")
        batches = work.batches()
        baselines.freeze_inputs()
        for k in range(1, repeat + 1):
            say(f"run {k}/{repeat}: eventml on {url}")
            mine = _run_eventml(log, work, batches)
            base: Timing | None = None
            if baseline and profile.baseline is not None:
                say(f"run {k}/{repeat}: raw {parsed.scheme} baseline")
                base = _run_baseline(profile.baseline, parsed, log, work)
            ours_k = _metrics(mine, work)
            theirs_k = _metrics(base, work) if base else None
            runs.append(
                {"eventml": ours_k, "baseline": theirs_k, "ratio": _ratios(ours_k, theirs_k)}
            )

    pick = max if statistic == "best" else statistics.median
    ours = _combine([r["eventml"] for r in runs], pick)
    theirs = (
        _combine([r["baseline"] for r in runs], pick) if runs[0]["baseline"] is not None else None
    )
    ratio = _ratios(ours, theirs)
    return {
        "benchmark": "log",
        "broker": url,
        "backend": parsed.scheme,
        "settings": profile.settings(parsed),
        "events": events,
        "value_bytes": value_size,
        "batch_size": batch_size,
        "partitions": partitions,
        "keys": keys,
        "repeat": repeat,
        "statistic": statistic,
        **ours,
        "baseline": theirs,
        "ratio": ratio,
        "targets": _targets(profile.targets, ours, ratio),
        "runs": runs,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": _versions(parsed.scheme),
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "arch": platform.machine(),
        },
    }


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _run_eventml(log: Log, work: Workload, batches: list[list[Message]]) -> Timing:
    topic = _unique("bench-log")
    log.create_topic(TopicSpec(topic, work.partitions))
    try:
        t0 = time.perf_counter()
        for batch in batches:
            log.append(topic, batch)
        append_s = time.perf_counter() - t0
        stored = sum(log.end_offsets(topic).values())
        if stored != work.events:
            raise BenchmarkError(f"appended {work.events} events but the topic holds {stored}")
        read = _read_all(log, topic, work)
    finally:
        log.delete_topic(topic)
    return Timing(append_s, *read)


def _read_all(log: Log, topic: str, work: Workload) -> tuple[float, float, int, int]:
    """Poll a fresh group from the earliest offset until every event is read."""
    config = ConsumerConfig(auto_offset_reset="earliest")
    with log.consumer(_unique("bench-group"), [topic], config=config) as consumer:
        read = time_reads(
            lambda: len(consumer.poll(max_records=work.batch_size, timeout_s=1.0)),
            work.events,
            "read",
        )
    if read[2] != work.events:
        raise BenchmarkError(f"read {read[2]:,} events, expected {work.events:,}")
    return read


def _run_baseline(
    run: Callable[[BrokerUrl, Log, Workload, str], Timing],
    url: BrokerUrl,
    log: Log,
    work: Workload,
) -> Timing:
    timing = run(url, log, work, _unique("bench-raw"))
    if timing.read_events != work.events:
        raise BenchmarkError(
            f"baseline read {timing.read_events:,} events, expected {work.events:,}"
        )
    return timing


def _metrics(t: Timing, work: Workload) -> dict[str, Any]:
    mb = work.payload_bytes / 1e6
    return {
        "append_eps": _rate(work.events, t.append_s),
        "read_eps": _rate(work.events, t.read_s),
        "read_steady_eps": (
            _rate(t.read_events - t.read_first_events, t.read_s - t.read_startup_s)
            if t.read_events > t.read_first_events
            else _rate(work.events, t.read_s)
        ),
        "append_mb_s": _rate(mb, t.append_s, 2),
        "read_mb_s": _rate(mb, t.read_s, 2),
        "append_s": round(t.append_s, 6),
        "read_s": round(t.read_s, 6),
        "read_startup_s": round(t.read_startup_s, 6),
        "read_events": t.read_events,
    }


def _rate(amount: float, seconds: float, digits: int = 0) -> float:
    value = amount / seconds if seconds > 0 else float("inf")
    return round(value, digits) if digits else float(round(value))


def _combine(runs: list[dict[str, Any]], pick: Callable[[list[float]], float]) -> dict[str, Any]:
    """One number per metric over the runs: rates by ``pick``, times by its mirror."""
    out: dict[str, Any] = {}
    for name in runs[0]:
        values = [r[name] for r in runs]
        if name.endswith(("_eps", "_mb_s")):
            out[name] = pick(values)
        elif name == "read_events":
            out[name] = values[0]
        else:  # seconds: the best run is the shortest
            out[name] = min(values) if pick is max else statistics.median(values)
    return out


def _ratios(ours: Mapping[str, Any], theirs: Mapping[str, Any] | None) -> dict[str, float] | None:
    if theirs is None:
        return None
    return {
        "append": _ratio(ours["append_eps"], theirs["append_eps"]),
        "read": _ratio(ours["read_eps"], theirs["read_eps"]),
        "read_steady": _ratio(ours["read_steady_eps"], theirs["read_steady_eps"]),
    }


def _ratio(ours: float, theirs: float) -> float:
    return round(ours / theirs, 3) if theirs else float("inf")


def _targets(
    targets: Mapping[str, float], ours: Mapping[str, Any], ratio: Mapping[str, float] | None
) -> dict[str, Any]:
    """Each target with the measured value and whether it is met; ``met`` over all of them."""
    values: dict[str, float | None] = {
        "append_eps": ours["append_eps"],
        "read_eps": ours["read_eps"],
        "append_ratio": ratio["append"] if ratio else None,
        "read_ratio": ratio["read"] if ratio else None,
    }
    checks: dict[str, Any] = {}
    for name, minimum in targets.items():
        value = values[name]
        checks[name] = {
            "min": minimum,
            "value": value,
            "met": None if value is None else value >= minimum,  # None: not measured
        }
    verdicts = [c["met"] for c in checks.values()]
    met = (
        None if not verdicts else False if False in verdicts else None if None in verdicts else True
    )
    return {"checks": checks, "met": met}


def _versions(scheme: str) -> dict[str, str]:
    import sqlite3

    out = {"eventml": _dist_version("eventml")}
    if scheme == "embedded":
        out["sqlite"] = sqlite3.sqlite_version
    if scheme == "kafka":
        out["confluent_kafka"] = _dist_version("confluent-kafka")
        try:
            import confluent_kafka

            out["librdkafka"] = confluent_kafka.libversion()[0]
        except ImportError:  # pragma: no cover - the kafka extra is missing
            pass
    return out


def _dist_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"
