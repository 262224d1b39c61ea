"""The feature store benchmark: point-in-time retrieval at scale, and online lookups.

1. **Historical retrieval**: ``events`` card transactions (keyed by card, 4
   partitions) are appended to a topic on the log at ``url``; then a fresh Python
   process (so its peak RSS is the retrieval's own) asks
   :func:`~eventml.features.get_historical_features` for ``rows`` random
   ``(card, time)`` rows x the 10 features of :data:`FEATURES`. Reported: seconds, rows
   and events per second, peak RSS (the process's plus its largest forked worker's). Targets: 100k rows x 10 features over 5M events
   in ≤ 60 s and ≤ 4 GB (Feast reports 30 min / 50 GB for 17k rows, issue #3003).
2. **Online lookups**: an :class:`~eventml.features.OnlineStore` holding ``keys``
   entities (200 events each) answers single-key lookups in this process:
   p50/p99 of warm lookups (state restored, windowed values cached per tile), and of
   each key's first (cold) lookup. Target: p99 ≤ 100 µs in-process.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from eventml.bench._timing import BenchmarkError
from eventml.features import (
    DAY,
    HOUR,
    MINUTE,
    EntityState,
    FeatureView,
    count,
    distinct,
    maximum,
    mean,
    since_last,
    total,
)
from eventml.features.online import OnlineStore
from eventml.features.redis_store import RedisOnlineStore
from eventml.log import Message, TopicSpec, open_log

T0 = 1_700_000_000_000
STEP_MS = 50  # one event every 50 ms: 5M events span ~2.9 days
CARDS = 20_000
FEATURES = [
    count("tx_10m", 10 * MINUTE), count("tx_1h", HOUR), count("tx_24h", DAY),
    total("amount_10m", "amount", 10 * MINUTE), total("amount_1h", "amount", HOUR),
    total("amount_24h", "amount", DAY), mean("amount_mean_1h", "amount", HOUR),
    maximum("amount_max_24h", "amount", DAY), distinct("merchants_24h", "merchant", DAY),
    since_last("secs_since_last"),
]
TARGETS = {"historical_s": 60.0, "historical_rss_mb": 4096.0, "online_p99_us": 100.0}


def view(source: str) -> FeatureView:
    return FeatureView("card_activity", entity="card", source=source, features=FEATURES,
                       ttl_ms=DAY, time="ts")


def run(
    url: str | None = None, *, events: int = 1_000_000, rows: int = 100_000, keys: int = 10_000,
    seed: int = 7,
) -> dict[str, Any]:
    if events < 1 or rows < 1 or keys < 1:
        raise BenchmarkError("events, rows and keys must be >= 1")
    with tempfile.TemporaryDirectory(prefix="eventml-bench-features-") as tmp:
        target = url or f"embedded://{tmp}/data"
        topic = f"bench-features-{int(time.time())}"
        append_s = _append(target, topic, events, seed)
        historical = _historical_in_child(target, topic, events, rows, seed)
    online = _online(keys, seed)
    return {
        "benchmark": "features",
        "broker": url or "embedded://(temporary)",
        "events": events,
        "append_s": round(append_s, 2),
        "historical": historical,
        "online": online,
        "targets": _targets(historical, online, events, rows),
    }


def _append(url: str, topic: str, events: int, seed: int) -> float:
    rng = random.Random(seed)
    started = time.perf_counter()
    with open_log(url) as log:
        log.create_topic(TopicSpec(topic, 4))
        batch: list[Message] = []
        for i in range(events):
            card = f"c{rng.randrange(CARDS)}"
            t = T0 + i * STEP_MS
            value = {"card": card, "ts": t, "amount": round(rng.uniform(1, 500), 2),
                     "merchant": f"m{rng.randrange(300)}"}
            batch.append(Message(orjson.dumps(value), card.encode(), timestamp_ms=t))
            if len(batch) == 50_000:
                log.append(topic, batch)
                batch = []
        if batch:
            log.append(topic, batch)
    return time.perf_counter() - started


_CHILD = """
import json, random, resource, sys, time
from eventml.bench.features import CARDS, STEP_MS, T0, view
from eventml.features import get_historical_features
from eventml.log import open_log
url, topic, events, rows, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed + 1)
asks = [(f"c{rng.randrange(CARDS)}", T0 + rng.randrange(events * STEP_MS)) for _ in range(rows)]
with open_log(url) as log:
    started = time.perf_counter()
    result = get_historical_features(log, view(topic), asks)
    seconds = time.perf_counter() - started
filled = sum(1 for r in result.rows if r[2] is not None)
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
# forked workers run beside the parent: their peak adds to its own (an upper bound)
print(json.dumps({"seconds": seconds, "rows": len(result.rows), "filled": filled,
                  "events_read": result.events_read, "parent_rss_mb": own,
                  "worker_rss_mb": workers, "peak_rss_mb": own + workers}))
"""


def _historical_in_child(url: str, topic: str, events: int, rows: int, seed: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, url, topic, str(events), str(rows), str(seed)],
        capture_output=True, text=True, timeout=3600, env=os.environ.copy(),
    )
    if done.returncode != 0:
        raise BenchmarkError(f"the retrieval process failed: {done.stderr.strip().splitlines()[-1:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    out["features"] = len(FEATURES)
    out["rows_per_s"] = round(out["rows"] / out["seconds"])
    out["events_per_s"] = round(out["events_read"] / out["seconds"])
    out["seconds"] = round(out["seconds"], 2)
    for name in ("peak_rss_mb", "parent_rss_mb", "worker_rss_mb"):
        out[name] = round(out[name])
    return out


def _online(keys: int, seed: int, events_per_key: int = 200, lookups: int = 50_000) -> dict[str, Any]:
    rng = random.Random(seed)
    v = view("unused")
    store = OnlineStore(None, v, "unused", stale_after_s=float("inf"))  # type: ignore[arg-type]
    store._refreshed = float("inf")  # fed directly below: never read a log
    newest = T0
    for k in range(keys):
        state = EntityState(v)
        t = T0
        for _ in range(events_per_key):
            t += rng.randrange(1, 600_000)
            state.update({"card": k, "ts": t, "amount": rng.uniform(1, 500),
                          "merchant": f"m{rng.randrange(50)}"}, t)
        state.compact(t)
        store._snaps[str(k)] = state.snapshot()
        newest = max(newest, t)
    store.stream_time_ms = newest
    cold = _lookups(store, [str(k) for k in range(keys)])
    warm = _lookups(store, [str(rng.randrange(keys)) for _ in range(lookups)])
    return {"keys": keys, "features": len(FEATURES), "warm": warm, "cold": cold}


def redis_online(redis_url: str, keys: int = 2_000, seed: int = 7, lookups: int = 20_000) -> dict[str, Any]:
    """Single-key lookups from a :class:`~eventml.features.RedisOnlineStore` over
    ``redis_url`` (loopback: one MGET each), after :class:`~eventml.features.RedisSync`
    copied ``keys`` entities (200 events each) from a memory log. Not part of
    :func:`run`: it needs a Redis server (``scripts/redis start``)."""
    from eventml.features import RedisOnlineStore, RedisSync

    rng = random.Random(seed)
    v = view("unused")
    topic, prefix = "bench-online", f"eventml:bench:{time.time_ns()}:"
    with open_log(f"memory://bench{time.time_ns()}") as log:
        log.create_topic(TopicSpec(topic, 4, cleanup_policy="compact"))
        records = []
        for k in range(keys):
            state, t = EntityState(v), T0
            for _ in range(200):
                t += rng.randrange(1, 600_000)
                state.update({"card": k, "ts": t, "amount": rng.uniform(1, 500),
                              "merchant": f"m{rng.randrange(50)}"}, t)
            state.compact(t)
            record = {"entity": str(k), "t": t, "state": state.snapshot()}
            records.append(Message(orjson.dumps(record), str(k).encode(), timestamp_ms=t))
        log.append(topic, records)
        with RedisSync(log, v, topic, redis_url, key_prefix=prefix) as sync:
            sync.catch_up()
    with RedisOnlineStore(redis_url, v, key_prefix=prefix) as store:
        cold = _lookups(store, [str(k) for k in range(keys)])
        warm = _lookups(store, [str(rng.randrange(keys)) for _ in range(lookups)])
        store.client.delete(*store.client.scan_iter(match=f"{prefix}*", count=1_000))
    return {"keys": keys, "features": len(FEATURES), "warm": warm, "cold": cold}


def _lookups(store: OnlineStore | RedisOnlineStore, keys: list[str]) -> dict[str, float]:
    lat = np.empty(len(keys))
    clock = time.perf_counter_ns
    for i, key in enumerate(keys):
        start = clock()
        store.get_online_features([key])
        lat[i] = clock() - start
    lat /= 1000
    return {"lookups": len(keys), "p50_us": round(float(np.percentile(lat, 50)), 1),
            "p99_us": round(float(np.percentile(lat, 99)), 1), "max_us": round(float(lat.max()), 1)}


def _targets(historical: Mapping[str, Any], online: Mapping[str, Any], events: int, rows: int) -> dict[str, Any]:
    at_scale = events >= 5_000_000 and rows >= 100_000
    return {
        "at_target_scale": at_scale,
        "historical_s": {"target": TARGETS["historical_s"], "value": historical["seconds"],
                         "met": historical["seconds"] <= TARGETS["historical_s"]},
        "historical_rss_mb": {"target": TARGETS["historical_rss_mb"], "value": historical["peak_rss_mb"],
                              "met": historical["peak_rss_mb"] <= TARGETS["historical_rss_mb"]},
        "online_p99_us": {"target": TARGETS["online_p99_us"], "value": online["warm"]["p99_us"],
                          "met": online["warm"]["p99_us"] <= TARGETS["online_p99_us"]},
    }


def render_features_table(result: Mapping[str, Any], console: Console) -> None:
    h, o = result["historical"], result["online"]
    table = Table(title=f"feature store: {result['events']:,} events, {h['features']} features")
    for column in ("measurement", "value", "target"):
        table.add_column(column)
    t = result["targets"]
    table.add_row("historical retrieval", f"{h['rows']:,} rows in {h['seconds']} s "
                  f"({h['rows_per_s']:,} rows/s, {h['events_per_s']:,} events/s)", "≤ 60 s at 5M x 100k")
    table.add_row("  peak RSS", f"{h['peak_rss_mb']:,} MB", "≤ 4,096 MB")
    table.add_row("online lookup, warm", f"p50 {o['warm']['p50_us']} µs, p99 {o['warm']['p99_us']} µs",
                  "p99 ≤ 100 µs")
    table.add_row("online lookup, cold (first per key)",
                  f"p50 {o['cold']['p50_us']} µs, p99 {o['cold']['p99_us']} µs", "")
    console.print(table)
    verdicts = ", ".join(f"{name} {'met' if v['met'] else 'MISSED'}" for name, v in t.items() if isinstance(v, dict))
    scale = "" if t["at_target_scale"] else " (below the target scale: run --events 5000000 --rows 100000)"
    console.print(f"targets: {verdicts}{scale}")
