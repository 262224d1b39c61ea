"""The view rebuild benchmark: how fast a projection replays a topic into its table.

What :func:`run` does, on the log at ``url`` (default: a fresh embedded log in a
temporary directory):

1. appends ``events`` JSON order events (``keys`` customers, ``partitions`` partitions)
   to a new topic (not timed);
2. **rebuild** (timed, ``time.perf_counter``): a :class:`ProjectionRunner` with a
   trivial handler (count and total per customer) drops its table and replays the
   topic from the start: poll, decode with orjson, apply, and one store transaction
   of changed rows + positions per micro-batch, into the view's SQLite file (default)
   or, with ``db="postgresql://..."``, a PostgreSQL table;
3. checks the table (``keys`` rows, counts summing to ``events``), removes the topic
   (and the PostgreSQL table).

Target (issue 5): rebuilding a 1M-event projection at >= 100k events/s.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from eventml.bench._timing import BenchmarkError
from eventml.log import Message, TopicSpec, open_log
from eventml.views import EventMeta, Projection, ProjectionRunner, Table, open_view_store

if TYPE_CHECKING:
    from rich.console import Console

TARGET_EVENTS_PER_S = 100_000


def count_per_customer(value: Any, meta: EventMeta, table: Table) -> None:
    """The trivial handler: orders and total per customer."""
    key = value["customer"]
    row = table.get(key)
    if row is None:
        row = {"orders": 0, "total": 0}
    row["orders"] += 1
    row["total"] += value["amount"]
    table.put(key, row)


def run(
    events: int = 1_000_000,
    *,
    url: str | None = None,
    keys: int = 10_000,
    partitions: int = 4,
    max_batch: int = 10_000,
    db: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Append ``events`` events, time a rebuild of a view over them, return the figures.

    ``db``: a ``postgresql://`` URL to rebuild into PostgreSQL (default: a SQLite file).
    """
    if events < 1 or keys < 1 or partitions < 1:
        raise BenchmarkError("events, keys and partitions must be >= 1")
    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="eventml-bench-views-") as tmp:
        log_url = url or f"embedded://{tmp}/data?durability=fast"
        topic = f"bench-views-{uuid.uuid4().hex[:8]}"
        with open_log(log_url) as log:
            log.create_topic(TopicSpec(topic, partitions))
            try:
                say(f"appending {events:,} events to {topic}")
                t0 = time.perf_counter()
                for start in range(0, events, 50_000):
                    log.append(topic, [
                        Message(orjson.dumps({"customer": f"c{i % keys}", "amount": i % 100}),
                                f"c{i % keys}".encode())
                        for i in range(start, min(events, start + 50_000))
                    ])
                append_s = time.perf_counter() - t0
                view = Projection(f"bench_{topic[-8:]}", [topic], count_per_customer)
                store = open_view_store(db or Path(tmp) / "view.sqlite", view.name)
                location = store.location
                say(f"rebuilding the view into {location}")
                try:
                    with ProjectionRunner(log, view, store, max_batch=max_batch) as runner:
                        stats = runner.rebuild()
                        rows, applied = runner.count(), sum(
                            r["orders"] for _, r in runner.query(limit=min(keys, 100_000)))
                finally:
                    _drop(db, view.name)
            finally:
                log.delete_topic(topic)
    if stats.events != events or rows != keys or (keys <= 100_000 and applied != events):
        raise BenchmarkError(
            f"the rebuild read {stats.events:,} of {events:,} events into {rows:,} rows "
            f"(expected {keys:,}), applied {applied:,}")
    rate = stats.events_per_s
    return {
        "benchmark": "views",
        "broker": url or "embedded (temporary, durability=fast)",
        "store": "postgresql" if db else "sqlite",
        "store_location": location,
        "events": events,
        "keys": keys,
        "partitions": partitions,
        "max_batch": max_batch,
        "append_s": round(append_s, 3),
        "rebuild_s": round(stats.seconds, 3),
        "rebuild_events_per_s": round(rate),
        "batches": stats.batches,
        "target": {"min_events_per_s": TARGET_EVENTS_PER_S, "met": rate >= TARGET_EVENTS_PER_S},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
    }


def _drop(db: str | None, view: str) -> None:
    """Remove the benchmark's PostgreSQL table (a SQLite file goes with the temporary dir)."""
    if db:
        from eventml.views.pg_store import PostgresViewStore

        with PostgresViewStore(db, view) as store:
            store.drop()


def render_views_table(result: Mapping[str, Any], console: Console) -> None:
    """The rebuild's figures, then the target verdict."""
    from rich.table import Table as RichTable

    table = RichTable(title=f"view rebuild: {result['events']:,} events, {result['keys']:,} keys, "
                            f"{result['partitions']} partitions",
                      caption=f"log: {result['broker']}; view: {result['store_location']}")
    table.add_column("store")
    table.add_column("rebuild s", justify="right")
    table.add_column("events/s", justify="right")
    table.add_column("batches", justify="right")
    table.add_row(result["store"], f"{result['rebuild_s']:.2f}",
                  f"{result['rebuild_events_per_s']:,}", f"{result['batches']:,}")
    console.print(table)
    target = result["target"]
    verdict = "[green]ok[/]" if target["met"] else "[red]MISSED[/]"
    console.print(f"target >= {target['min_events_per_s']:,} events/s: "
                  f"{result['rebuild_events_per_s']:,} {verdict}")


if __name__ == "__main__":  # python -m eventml.bench.views [EVENTS [POSTGRESQL_URL]]
    import sys

    print(orjson.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000,
                           db=sys.argv[2] if len(sys.argv) > 2 else None, progress=print),
                       option=orjson.OPT_INDENT_2).decode())
