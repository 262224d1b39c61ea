"""The state restore benchmark: how long a worker takes to get N keys of state back.

What it does, on the log at ``url`` with that log's state backend
(:func:`eventml.state.backend_for`: SQLite for ``embedded://``, a compacted
changelog for ``kafka://``):

1. **write**: ``keys`` keys (``value_size`` random bytes each) into one
   partition's store, ``batch_size`` keys per transaction, as a worker would;
2. **restore** (timed, ``time.perf_counter``): a fresh log object and a fresh
   backend, then ``backend.open(spec, partition, committed_offset)``, which
   returns once every key is in memory and readable (SQLite: one ``SELECT``;
   changelog: the partition read from start to end, values unpickled);
3. the store's rows or changelog topic are deleted.

``memory://`` keeps state beside the log in this process, so its restore is
a copy of the committed dict (no fresh log object).
"""

from __future__ import annotations

import gc
import os
import platform
import random
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from eventml.bench._timing import BenchmarkError
from eventml.bench.log import _versions
from eventml.log import Log, TopicPartition, open_log
from eventml.log.registry import parse_broker_url
from eventml.state import PartitionStore, StateBackend, StoreSpec, backend_for

Progress = Callable[[str], None]

#: design.md, "Targets": restart with 1M keys of state in <= 10 s (embedded).
TARGETS: Mapping[str, Mapping[str, float]] = {"embedded": {"restore_keys_per_s": 100_000}}

_INPUT_TOPIC = "bench-state-input"  # the store's input partition (never read or written)
_PAYLOAD_POOL = 4096


def run_state_benchmark(
    url: str,
    *,
    keys: int = 1_000_000,
    value_size: int = 50,
    batch_size: int = 100_000,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write ``keys`` keys to one partition's store at ``url``, then time restoring them."""
    parsed = parse_broker_url(url)
    for name, value, least in (("keys", keys, 1), ("batch_size", batch_size, 1), ("value_size", value_size, 0)):
        if value < least:
            raise BenchmarkError(f"{name} must be >= {least}, got {value}")
    say = progress or (lambda _msg: None)
    spec = StoreSpec("bench", f"state-{uuid.uuid4().hex[:12]}")
    tp = TopicPartition(_INPUT_TOPIC, 0)
    with open_log(url) as log:
        backend = backend_for(log)
        for topic in backend.required_topics(spec, 1):
            log.create_topic(topic)
        try:
            say(f"writing {keys:,} keys of {value_size} bytes with {type(backend).__name__}")
            write_s = _write(log, backend, spec, tp, keys, value_size, batch_size)
            say("restoring with a fresh log object and backend")
            # memory:// state lives with its log object: restore from the same one
            fresh = log if parsed.scheme == "memory" else open_log(url)
            try:
                restore_s = _restore(fresh, spec, tp, keys)
            finally:
                if fresh is not log:
                    fresh.close()
        finally:
            backend.drop(spec)
    rate = keys / restore_s if restore_s > 0 else float("inf")
    targets = TARGETS.get(parsed.scheme, {})
    checks = {
        name: {"min": minimum, "value": round(rate), "met": rate >= minimum}
        for name, minimum in targets.items()
    }
    return {
        "benchmark": "state",
        "broker": url,
        "backend": parsed.scheme,
        "state_backend": type(backend).__name__,
        "keys": keys,
        "value_bytes": value_size,
        "batch_size": batch_size,
        "write_s": round(write_s, 6),
        "write_keys_per_s": round(keys / write_s) if write_s > 0 else None,
        "restore_s": round(restore_s, 6),
        "restore_keys_per_s": round(rate),
        "targets": {"checks": checks, "met": all(c["met"] for c in checks.values()) if checks else None},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": _versions(parsed.scheme),
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "arch": platform.machine(),
        },
    }


def _write(
    log: Log,
    backend: StateBackend,
    spec: StoreSpec,
    tp: TopicPartition,
    keys: int,
    value_size: int,
    batch_size: int,
) -> float:
    rng = random.Random(20240601)
    pool = [rng.randbytes(value_size) for _ in range(min(keys, _PAYLOAD_POOL))]
    store = backend.open(spec, tp, None)
    producer = log.transactional_producer(f"bench-state-{uuid.uuid4().hex[:8]}")
    t0 = time.perf_counter()
    try:
        for start in range(0, keys, batch_size):
            stop = min(keys, start + batch_size)
            for i in range(start, stop):
                store.put(f"key-{i:010d}", pool[i % len(pool)])
            txn = producer.begin()
            store.stage(txn, stop)  # the source offset: all of them count as committed
            txn.commit()
            store.commit()
    finally:
        producer.close()
    return time.perf_counter() - t0


def _restore(log: Log, spec: StoreSpec, tp: TopicPartition, keys: int) -> float:
    gc.collect()  # the write phase's garbage is not the restore's cost
    t0 = time.perf_counter()
    store = backend_for(log).open(spec, tp, keys)
    restore_s = time.perf_counter() - t0
    restored = _count(store)
    if restored != keys:
        raise BenchmarkError(f"restored {restored:,} keys, expected {keys:,}")
    return restore_s


def _count(store: PartitionStore) -> int:
    length = getattr(store, "__len__", None)
    return int(length()) if length is not None else sum(1 for _ in store.range())


def render_state_table(result: Mapping[str, Any], console: Console) -> None:
    """The write and restore figures, then the target verdict."""
    table = Table(
        title=f"state restore: {result['keys']:,} keys x {result['value_bytes']} B",
        caption=f"{result['broker']} ({result['state_backend']})",
        min_width=44,
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("write (s)", f"{result['write_s']:.3f}")
    table.add_row("write keys/s", f"{result['write_keys_per_s'] or 0:,}")
    table.add_row("restore (s)", f"{result['restore_s']:.3f}")
    table.add_row("restore keys/s", f"{result['restore_keys_per_s']:,}")
    console.print(table)
    checks: Mapping[str, Any] = (result.get("targets") or {}).get("checks") or {}
    if not checks:
        console.print("targets: none for this backend")
    for name, c in checks.items():
        verdict = "[green]ok[/]" if c["met"] else "[red]MISSED[/]"
        console.print(f"target {name} >= {c['min']:,.0f}: {c['value']:,} {verdict}")
