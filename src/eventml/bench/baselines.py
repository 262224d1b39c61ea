"""Raw baselines: the same events written and read with the bare client, no eventml in between.

* ``embedded://`` → bare ``sqlite3`` on a temporary file beside the data directory
  (same filesystem), with the backend's pragmas and row shape: one
  ``executemany`` of pre-built rows in one transaction per batch, then ``SELECT``
  in chunks of ``batch_size`` per partition.
* ``kafka://`` → a bare ``confluent_kafka.Producer`` (the backend's acks and
  idempotence settings; ``produce`` loop, ``flush`` per batch, because ``append``
  returning means acknowledged) and a bare ``Consumer`` in a fresh group looping
  ``consume(num_messages=batch_size)``, on a topic of its own.

Both return a :class:`Timing` measured the same way as eventml's side.
"""

from __future__ import annotations

import dataclasses
import gc
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventml.bench._timing import time_reads
from eventml.log import ConsumerConfig, Log, LogError, TopicSpec
from eventml.log.registry import BrokerUrl

if TYPE_CHECKING:
    from eventml.bench.log import Workload



@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds spent appending all events, and reading them back.

    ``read_s`` runs from the first poll to the last record (group join included);
    ``read_startup_s`` is the part before the first records arrived, and
    ``read_first_events`` how many came with them, so the steady rate
    ``(read_events - read_first_events) / (read_s - read_startup_s)`` excludes the join.
    """

    append_s: float
    read_s: float
    read_startup_s: float
    read_events: int
    read_first_events: int = 0


@contextmanager
def inputs_out_of_gc() -> Iterator[None]:
    """Scope for :func:`freeze_inputs`: unfreezes at the end unless the caller had frozen objects."""
    had_frozen = gc.get_freeze_count() > 0
    try:
        yield
    finally:
        if not had_frozen:
            gc.unfreeze()


def freeze_inputs() -> None:
    """Keep the objects built so far (the pre-built inputs) out of every later GC pass."""
    gc.collect()
    gc.freeze()


# -- embedded: bare sqlite3 ------------------------------------------------------------

# Mirrors the embedded backend (src/eventml/log/embedded/schema.py): one WITHOUT ROWID
# table per topic clustered on (partition, offset), 16 KiB pages, WAL, and the same
# connection pragmas; ``synchronous`` follows the URL's ``durability``.
_PAGE_SIZE = 16384
_SCHEMA = (
    "CREATE TABLE r1 (p INTEGER NOT NULL, o INTEGER NOT NULL, ts INTEGER NOT NULL, "
    "k BLOB, v BLOB, h BLOB, PRIMARY KEY (p, o)) WITHOUT ROWID"
)
_INSERT = "INSERT INTO r1 (p, o, ts, k, v, h) VALUES (?, ?, ?, ?, ?, ?)"
_SELECT = "SELECT p, o, ts, k, v FROM r1 WHERE p = ? AND o >= ? ORDER BY o LIMIT ?"
_SYNCHRONOUS = {"fsync": "FULL", "fast": "NORMAL"}
_PRAGMAS = (
    "busy_timeout=10000",
    "cache_size=-32768",
    "mmap_size=268435456",
    "temp_store=MEMORY",
    "journal_size_limit=67108864",
    "wal_autocheckpoint=2000",
)


def embedded_durability(url: BrokerUrl) -> str:
    """The durability mode an ``embedded://`` URL asks for (``fsync`` unless ``?durability=``)."""
    return url.options.get("durability", "fsync")


def _pragmas(durability: str) -> list[str]:
    sync = _SYNCHRONOUS.get(durability)
    if sync is None:
        raise LogError(f"durability must be one of {sorted(_SYNCHRONOUS)}, got {durability!r}")
    return [
        f"PRAGMA page_size={_PAGE_SIZE}",
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={sync}",
        *(f"PRAGMA {p}" for p in _PRAGMAS),
    ]


def _data_dir(url: BrokerUrl) -> Path:
    return Path(url.location or ".").expanduser().resolve()


def sqlite_baseline(url: BrokerUrl, log: Log, work: Workload, name: str) -> Timing:
    """Bare sqlite3: the same rows, inserted and selected the way the embedded log does."""
    pragmas = _pragmas(embedded_durability(url))
    parent = _data_dir(url).parent
    where = str(parent) if parent.is_dir() else None
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=where) as tmp:
        path = Path(tmp) / "baseline.db"
        batches = _rows(work)
        freeze_inputs()
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            for pragma in pragmas:
                db.execute(pragma)
            db.execute(_SCHEMA)
            t0 = time.perf_counter()
            for rows in batches:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(_INSERT, rows)
                db.execute("COMMIT")
            append_s = time.perf_counter() - t0
        finally:
            db.close()
        del batches
        read = _sqlite_read(path, pragmas, work)
    return dataclasses.replace(read, append_s=append_s)


def _rows(work: Workload) -> list[list[tuple[Any, ...]]]:
    """Pre-built rows, one list per batch: what the backend would insert for the same events."""
    pool = work.payloads()
    next_offset = [0] * work.partitions
    now_ms = int(time.time() * 1000)
    batches: list[list[tuple[Any, ...]]] = []
    for start in range(0, work.events, work.batch_size):
        rows = []
        for i in range(start, min(start + work.batch_size, work.events)):
            key = work.key_of(i)
            p = work.partition_of(i, key)
            rows.append((p, next_offset[p], now_ms, key, pool[i % len(pool)], None))
            next_offset[p] += 1
        batches.append(rows)
    return batches


def _sqlite_read(path: Path, pragmas: list[str], work: Workload) -> Timing:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        for pragma in pragmas:
            db.execute(pragma)
        count = first_count = 0
        first: float | None = None
        t0 = time.perf_counter()
        positions = [0] * work.partitions
        live = list(range(work.partitions))
        while live:  # round-robin over partitions, one chunk each, like a consumer's fetch
            for p in list(live):
                rows = db.execute(_SELECT, (p, positions[p], work.batch_size)).fetchall()
                if not rows:
                    live.remove(p)
                    continue
                count += len(rows)
                positions[p] = rows[-1][1] + 1
                if first is None:
                    first, first_count = time.perf_counter(), len(rows)
        read_s = time.perf_counter() - t0
    finally:
        db.close()
    return Timing(0.0, read_s, (first or t0) - t0, count, first_count)


# -- kafka: bare confluent-kafka ---------------------------------------------------------


def _kafka_configs(url: BrokerUrl, group: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Kafka backend's own producer and consumer settings (acks, idempotence, batching,
    isolation level, assignment strategy), so the bare loops differ from eventml only in code.
    """
    try:
        from eventml.log.kafka import config
    except ImportError as e:  # pragma: no cover - the kafka extra is missing
        raise LogError(
            "the Kafka benchmark needs confluent-kafka: pip install 'eventml[kafka]'"
        ) from e
    options = dict(url.options)
    producer = dict(config.producer(url.location, options))
    consumer = dict(
        config.consumer(url.location, options, group, ConsumerConfig(auto_offset_reset="earliest"))
    )
    return producer, consumer


def kafka_settings(url: BrokerUrl) -> dict[str, Any]:
    """What the report shows of the client settings both sides use."""
    producer, consumer = _kafka_configs(url, "unused")
    skip = ("bootstrap.servers", "log_level", "group.id")
    return {
        "producer": {k: v for k, v in producer.items() if k not in skip},
        "consumer": {k: v for k, v in consumer.items() if k not in skip},
    }


def kafka_baseline(url: BrokerUrl, log: Log, work: Workload, name: str) -> Timing:
    """Bare confluent-kafka on a topic of its own (created and deleted through ``log``)."""
    from confluent_kafka import Consumer, KafkaException, Producer

    producer_conf, consumer_conf = _kafka_configs(url, f"bench-raw-group-{uuid.uuid4().hex[:12]}")
    log.create_topic(TopicSpec(name, work.partitions))
    try:
        batches = work.batches()
        # the partition eventml picks (murmur2 of the key, else round-robin), pre-computed
        placed = [
            [work.partition_of(i, m.key) for i, m in enumerate(batch, start)]
            for start, batch in zip(range(0, work.events, work.batch_size), batches, strict=True)
        ]
        freeze_inputs()
        errors: list[str] = []

        def on_error(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        producer = Producer(
            {
                **producer_conf,
                "delivery.report.only.error": True,  # the bare loop pays nothing per message
                "on_delivery": on_error,
            }
        )
        t0 = time.perf_counter()
        for batch, partitions in zip(batches, placed, strict=True):
            for m, p in zip(batch, partitions, strict=True):
                while True:
                    try:
                        producer.produce(name, m.value, m.key, p)
                        break
                    except BufferError:
                        producer.poll(0.01)
            if producer.flush(60) != 0:
                raise LogError("baseline producer: messages still in flight after 60 s")
        append_s = time.perf_counter() - t0
        if errors:
            raise LogError(f"baseline producer: {len(errors)} delivery errors, e.g. {errors[0]}")
        del batches, placed

        consumer = Consumer(consumer_conf)
        try:
            consumer.subscribe([name])

            def fetch() -> int:
                msgs = consumer.consume(num_messages=work.batch_size, timeout=1.0)
                for msg in msgs:
                    if msg.error() is not None:
                        raise KafkaException(msg.error())
                return len(msgs)

            read = time_reads(fetch, work.events, "baseline read")
        finally:
            consumer.close()
    finally:
        log.delete_topic(name)
    return Timing(append_s, *read)
