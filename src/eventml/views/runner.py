"""Keeping a read model up to date: the runner that folds events into its table.

A :class:`ProjectionRunner` reads the projection's topics as consumer group
``eventml-view-<name>`` in micro-batches, applies the handler to each event
against an in-memory overlay of the rows it changes, and commits the changed rows
*and* the next position of every partition it read in one transaction of the view's
store (:class:`~eventml.views.base.RowStore`: its own SQLite file,
:class:`~eventml.views.store.ViewStore`, by default, or a PostgreSQL table,
:class:`~eventml.views.pg_store.PostgresViewStore`). When it gets a
partition it seeks to the position stored there, not to the group's
committed offset: so each event changes the table exactly once, on every log
backend, across crashes. The group's offsets are committed afterwards, best
effort, only so lag tools see progress.

A handler failure is classified like the engine's (:func:`eventml.deadletter.classify`):
transient ones are retried with backoff, permanent or exhausted ones send the
event to ``<topic>.dlq`` with provenance (appended before the checkpoint that
skips it: a crash in between repeats the dead letter, it never loses it), fatal
ones stop the runner without committing the batch.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from eventml.clock import ClockMs, system_clock_ms
from eventml.deadletter import (
    ErrorKind,
    RetryPolicy,
    classify,
    dead_letter_message,
    dead_letter_topic,
)
from eventml.deadletter.retry import RandomSource
from eventml.log.base import (
    Consumer,
    ConsumerConfig,
    Log,
    LogError,
    Message,
    RebalanceListener,
    Record,
    TopicPartition,
    TopicSpec,
)
from eventml.log.registry import data_dir
from eventml.views.base import RowStore, open_view_store
from eventml.views.projection import EventMeta, Projection, Row
from eventml.views.store import ViewStore

_MISSING: Any = object()
Stage = Callable[[str], None]
"""A test hook called with ``"before_commit"`` and ``"after_commit"`` around each checkpoint."""


class ProjectionFailed(LogError):
    """The handler failed fatally (or the view cannot be written): the batch was not committed."""


def default_db_path(log_url: str | None, name: str) -> Path:
    """Where a view's file lives by default: ``<data dir>/views/<name>.sqlite``.

    The data dir is the embedded log's directory, else ``./.eventml``.
    """
    return data_dir(log_url) / "views" / f"{name}.sqlite"


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    """One source partition: the view's position in it against the log's end."""

    topic: str
    partition: int
    position: int
    end_offset: int
    updated_ms: int | None

    @property
    def lag(self) -> int:
        return max(0, self.end_offset - self.position)


@dataclass(frozen=True, slots=True)
class ViewStatus:
    """How far a view has caught up with its sources, and what it holds."""

    name: str
    path: str
    """Where the view is: its SQLite file, or a PostgreSQL URL (no password) and table."""
    rows: int
    last_update_ms: int | None
    partitions: tuple[PartitionStatus, ...]

    @property
    def lag(self) -> int:
        """Events in the sources the view has not applied yet."""
        return sum(p.lag for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "path": self.path, "rows": self.rows, "lag": self.lag,
            "last_update_ms": self.last_update_ms,
            "partitions": [
                {"topic": p.topic, "partition": p.partition, "position": p.position,
                 "end_offset": p.end_offset, "lag": p.lag, "updated_ms": p.updated_ms}
                for p in self.partitions
            ],
        }


@dataclass(frozen=True, slots=True)
class RunStats:
    """What a run did: events read, dead-lettered, batches committed, wall seconds."""

    events: int
    dead_lettered: int
    batches: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def view_status(log: Log, projection: Projection, store: RowStore) -> ViewStatus:
    """The status of ``projection``'s view in ``store`` against ``log`` (reads only)."""
    stored = store.positions()
    parts: list[PartitionStatus] = []
    for topic in projection.topics:
        starts = log.start_offsets(topic)
        for p, end in sorted(log.end_offsets(topic).items()):
            pos = stored.get(TopicPartition(topic, p))
            position = pos.next_offset if pos is not None else starts.get(p, 0)
            parts.append(PartitionStatus(topic, p, max(position, starts.get(p, 0)), end,
                                         None if pos is None else pos.updated_ms))
    return ViewStatus(projection.name, store.location, store.count(), store.last_update_ms(),
                      tuple(parts))


class _Rows:
    """The handler's :class:`~eventml.views.projection.Table` during a batch.

    Rows are kept as JSON text: ``get`` hands out a fresh object (the handler may change
    it freely), ``put`` checks the row serializes at once (inside the handler's call).
    ``dirty`` holds the batch's changes (``None`` = deleted), ``cache`` committed rows
    (``None`` = known absent); when ``complete`` the cache holds the whole table.
    """

    __slots__ = ("cache", "cache_limit", "complete", "dirty", "store", "undo")

    def __init__(self, store: RowStore, cache_limit: int) -> None:
        self.store = store
        self.dirty: dict[str, str | None] = {}
        self.cache: dict[str, str | None] = {}
        self.undo: dict[str, Any] = {}
        self.cache_limit = cache_limit
        self.complete = store.count() == 0

    def get(self, key: str) -> Row | None:
        text = self.dirty.get(key, _MISSING)
        if text is _MISSING:
            text = self.cache.get(key, _MISSING)
            if text is _MISSING:
                text = None if self.complete else self._load(key)
        if text is None:
            return None
        row: Row = orjson.loads(text)
        return row

    def put(self, key: str, row: Row) -> None:
        if type(key) is not str:
            raise TypeError(f"row keys are text, got {type(key).__name__}")
        if not isinstance(row, dict):
            raise TypeError(f"a row must be a dict (a JSON object), got {type(row).__name__}")
        text = orjson.dumps(row).decode()
        self.store.check_encoded(key, text)
        if key not in self.undo:
            self.undo[key] = self.dirty.get(key, _MISSING)
        self.dirty[key] = text

    def delete(self, key: str) -> None:
        if key not in self.undo:
            self.undo[key] = self.dirty.get(key, _MISSING)
        self.dirty[key] = None

    def _load(self, key: str) -> str | None:
        text = self.store.get_encoded(key)
        self.cache[key] = text
        return text

    def rollback_event(self) -> None:
        """Undo the current event's changes."""
        for key, before in self.undo.items():
            if before is _MISSING:
                self.dirty.pop(key, None)
            else:
                self.dirty[key] = before
        self.undo.clear()

    def committed(self) -> None:
        """The batch's changes are on disk: they become the cache."""
        if len(self.cache) + len(self.dirty) > self.cache_limit:
            self.cache.clear()
            self.complete = False
        self.cache.update(self.dirty)
        self.dirty = {}

    def dropped(self) -> None:
        """The batch was not committed: forget its changes."""
        self.dirty = {}
        self.undo.clear()

    def reset(self) -> None:
        self.dirty, self.cache, self.complete = {}, {}, True
        self.undo.clear()


class ProjectionRunner:
    """Runs one projection against ``log``, its table in ``db_path``.

    ``db_path`` is the view's SQLite file (default :func:`default_db_path`), a
    ``postgresql://`` URL (the view gets a table in that database), or an open
    :class:`~eventml.views.base.RowStore`; the runner closes the store it uses.
    Run one runner per view at a time. ``max_batch`` bounds a micro-batch;
    ``retry`` governs transient handler failures (``sleep``/``rng`` are passed in for
    tests); ``clock`` stamps updates and dead letters; ``group_commit_interval_s``
    spaces the best-effort group offset commits.
    """

    def __init__(
        self,
        log: Log,
        projection: Projection,
        db_path: str | Path | RowStore | None = None,
        *,
        max_batch: int = 10_000,
        poll_timeout_s: float = 0.1,
        retry: RetryPolicy | None = None,
        clock: ClockMs = system_clock_ms,
        sleep: Callable[[float], None] = time.sleep,
        rng: RandomSource | None = None,
        cache_rows: int = 500_000,
        group_commit_interval_s: float = 1.0,
        on_stage: Stage | None = None,
    ) -> None:
        self.log = log
        self.projection = projection
        if db_path is None:
            db_path = default_db_path(log.url, projection.name)
        self.store: RowStore = (
            open_view_store(db_path, projection.name, projection.indexed)
            if isinstance(db_path, str | Path) else db_path)
        self.path: Path | None = self.store.path if isinstance(self.store, ViewStore) else None
        """The view's SQLite file (``None`` when the view lives in a database server)."""
        self.max_batch = max_batch
        self.poll_timeout_s = poll_timeout_s
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._rng: RandomSource = rng or random.Random()
        self._on_stage = on_stage
        self._rows = _Rows(self.store, cache_rows)
        self._next: dict[TopicPartition, int] = {
            tp: p.next_offset for tp, p in self.store.positions().items()}
        self._pending: set[TopicPartition] = set()
        self._dlq_ready: set[str] = set()
        self._group_commit_interval_s = group_commit_interval_s
        self._last_group_commit = 0.0
        self._uncommitted_group: dict[TopicPartition, int] = {}
        self._consumer: Consumer | None = None
        self.events = self.dead_lettered = self.batches = 0

    # -- the consumer ---------------------------------------------------------------
    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = self.log.consumer(
                self.projection.group, list(self.projection.topics),
                config=ConsumerConfig(auto_offset_reset="earliest"),
                listener=RebalanceListener(on_assign=self._on_assign, on_revoke=self._on_revoke),
            )
        return self._consumer

    def _on_assign(self, tps: frozenset[TopicPartition]) -> None:
        self._pending |= tps  # sought to the view's own positions after this poll

    def _on_revoke(self, tps: frozenset[TopicPartition]) -> None:
        self._pending -= tps

    def _seek_pending(self, consumer: Consumer) -> set[TopicPartition]:
        sought = self._pending & consumer.assignment()
        self._pending.clear()
        starts: dict[str, dict[int, int]] = {}
        for tp in sought:
            stored = self._next.get(tp)
            if stored is None:
                consumer.seek_to_beginning([tp])
            else:
                start = starts.setdefault(tp.topic, self.log.start_offsets(tp.topic))
                consumer.seek(tp, max(stored, start.get(tp.partition, 0)))
        return sought

    # -- one batch ------------------------------------------------------------------
    def step(self) -> int:
        """Poll one micro-batch, apply it and commit it; returns the events applied."""
        consumer = self.consumer
        records = consumer.poll(self.max_batch, self.poll_timeout_s)
        if self._pending:
            sought = self._seek_pending(consumer)
            records = [r for r in records if (r.topic, r.partition) not in sought]
        if not records:
            self._maybe_commit_group(force=False)
            return 0
        try:
            return self._apply(records)
        except BaseException:
            self._rows.dropped()
            self._rewind({TopicPartition(r.topic, r.partition) for r in records})
            raise

    def _rewind(self, tps: set[TopicPartition]) -> None:
        """After a failed batch: read its partitions again from the view's positions."""
        if self._consumer is None:
            return
        try:
            self._pending |= tps & self._consumer.assignment()
            self._seek_pending(self._consumer)
        except LogError:
            pass  # the consumer is gone; a new runner starts from the view's positions

    def _apply(self, records: list[Record]) -> int:
        handler = self.projection.handler
        rows = self._rows
        undo = rows.undo
        nexts: dict[TopicPartition, int] = {}
        dead: dict[str, list[Message]] = {}
        applied = 0
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            floor = nexts.get(tp)
            if floor is None:
                floor = self._applied_up_to(tp)
            if r.offset < floor:
                continue  # already applied (a redelivery)
            nexts[tp] = r.offset + 1
            applied += 1
            try:
                key = r.key
                meta = EventMeta(None if key is None else key.decode(), r.topic, r.partition,
                                 r.offset, r.timestamp_ms, _ce_type(r))
                handler(None if r.value is None else orjson.loads(r.value), meta, rows)
            except Exception as e:
                rows.rollback_event()
                self._failed(r, e, dead)
            undo.clear()
        self._commit(nexts, dead)
        self.events += applied
        self.batches += 1
        return applied

    def _applied_up_to(self, tp: TopicPartition) -> int:
        """Offsets of ``tp`` below this are in the view already (a redelivery is skipped)."""
        return self._next.get(tp, -1)

    def _failed(self, r: Record, error: Exception, dead: dict[str, list[Message]]) -> None:
        kind: ErrorKind = classify(error)
        attempts = 1
        while kind == "transient" and attempts < self.retry.max_attempts:
            self._sleep(self.retry.delay_ms(attempts, self._rng) / 1000)
            attempts += 1
            try:
                key = r.key
                meta = EventMeta(None if key is None else key.decode(), r.topic, r.partition,
                                 r.offset, r.timestamp_ms, _ce_type(r))
                self.projection.handler(None if r.value is None else orjson.loads(r.value),
                                        meta, self._rows)
                return
            except Exception as e:
                self._rows.rollback_event()
                error, kind = e, classify(e)
        if kind == "fatal":
            raise ProjectionFailed(
                f"view {self.projection.name!r}: the handler failed fatally on "
                f"{r.topic}[{r.partition}]@{r.offset}: {type(error).__name__}: {error}"
            ) from error
        source: dict[str, str | int] = {
            "topic": r.topic, "partition": r.partition, "offset": r.offset,
            "group": self.projection.group, "operator": f"view:{self.projection.name}",
            "timestamp_ms": r.timestamp_ms,
        }
        dead.setdefault(dead_letter_topic(r.topic), []).append(dead_letter_message(
            r.value, key=r.key, headers=r.headers, error=error, source=source,
            attempts=attempts, now_ms=self._clock(), kind=kind))

    def _commit(self, nexts: Mapping[TopicPartition, int], dead: Mapping[str, list[Message]]) -> None:
        """Dead letters first, then rows + positions in one transaction, then the group."""
        for topic, messages in dead.items():
            self._ensure_topic(topic)
            self.log.append(topic, messages)
            self.dead_lettered += len(messages)
        self._stage("before_commit")
        self._write(self._rows.dirty, nexts)
        self._rows.committed()
        self._next.update(nexts)
        self._uncommitted_group.update(nexts)
        self._stage("after_commit")
        self._maybe_commit_group(force=False)

    def _write(self, rows: Mapping[str, str | None], nexts: Mapping[TopicPartition, int]) -> None:
        """One store transaction: the batch's rows and positions (overridable in tests)."""
        self.store.commit_encoded(rows, nexts, now_ms=self._clock())

    def _stage(self, name: str) -> None:
        if self._on_stage is not None:
            self._on_stage(name)

    def _ensure_topic(self, topic: str) -> None:
        if topic not in self._dlq_ready:
            self.log.create_topic(TopicSpec(topic, 1), exist_ok=True)
            self._dlq_ready.add(topic)

    def _maybe_commit_group(self, *, force: bool) -> None:
        if not self._uncommitted_group or self._consumer is None:
            return
        now = time.monotonic()
        if not force and now - self._last_group_commit < self._group_commit_interval_s:
            return
        owned = self._consumer.assignment()
        offsets = {tp: o for tp, o in self._uncommitted_group.items() if tp in owned}
        self._uncommitted_group.clear()
        self._last_group_commit = now
        if offsets:
            with contextlib.suppress(LogError):  # best effort: the view's file holds positions
                self._consumer.commit(offsets)

    # -- loops ----------------------------------------------------------------------
    def catch_up(self, *, timeout_s: float = 60.0) -> RunStats:
        """Apply events until the view reaches the sources' end offsets as of now."""
        ends = {TopicPartition(t, p): o for t in self.projection.topics
                for p, o in self.log.end_offsets(t).items()}
        starts = {TopicPartition(t, p): o for t in self.projection.topics
                  for p, o in self.log.start_offsets(t).items()}
        events0, dead0, batches0 = self.events, self.dead_lettered, self.batches
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        while not self._reached(ends, starts):
            if time.monotonic() > deadline:
                raise LogError(
                    f"view {self.projection.name!r} did not catch up within {timeout_s:g}s: "
                    f"does another runner of it hold its partitions (group {self.projection.group!r})?"
                )
            self.step()
        self._maybe_commit_group(force=True)
        return RunStats(self.events - events0, self.dead_lettered - dead0,
                        self.batches - batches0, time.perf_counter() - t0)

    def _reached(self, ends: Mapping[TopicPartition, int], starts: Mapping[TopicPartition, int]) -> bool:
        consumer = self._consumer
        owned = consumer.assignment() if consumer is not None else frozenset()
        for tp, end in ends.items():
            if max(self._next.get(tp, 0), starts.get(tp, 0)) >= end:
                continue
            if tp in owned and tp not in self._pending and consumer is not None \
                    and consumer.position(tp) >= end and tp in self._next:
                continue  # only transaction markers left
            return False
        return True

    def run(self, *, idle_timeout_s: float | None = None, stop: Callable[[], bool] | None = None) -> RunStats:
        """Apply events until ``stop()`` is true or none came for ``idle_timeout_s``."""
        events0, dead0, batches0 = self.events, self.dead_lettered, self.batches
        t0 = time.perf_counter()
        idle_since = time.monotonic()
        while not (stop is not None and stop()):
            if self.step():
                idle_since = time.monotonic()
            elif idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                break
        self._maybe_commit_group(force=True)
        return RunStats(self.events - events0, self.dead_lettered - dead0,
                        self.batches - batches0, time.perf_counter() - t0)

    def rebuild(self, *, timeout_s: float = 600.0) -> RunStats:
        """Drop the table and positions, then re-apply every event the sources hold."""
        self.store.reset()
        self._rows.reset()
        self._next.clear()
        self._uncommitted_group.clear()
        if self._consumer is not None:
            self._pending |= self._consumer.assignment()
        return self.catch_up(timeout_s=timeout_s)

    # -- reads ----------------------------------------------------------------------
    @property
    def location(self) -> str:
        """Where the view is: its SQLite file, or a PostgreSQL URL (no password) and table."""
        return self.store.location

    def status(self) -> ViewStatus:
        return view_status(self.log, self.projection, self.store)

    def get(self, key: str) -> Row | None:
        return self.store.get(key)

    def query(self, where: Mapping[str, Any] | None = None, *, limit: int = 100) -> list[tuple[str, Row]]:
        return self.store.query(where, limit=limit)

    def count(self, where: Mapping[str, Any] | None = None) -> int:
        return self.store.count(where)

    def close(self) -> None:
        """Leave the group (after a last best-effort offset commit) and close the store."""
        if self._consumer is not None:
            try:
                self._maybe_commit_group(force=True)
            finally:
                self._consumer.close()
                self._consumer = None
        self.store.close()

    def __enter__(self) -> ProjectionRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ce_type(r: Record) -> str | None:
    for name, raw in r.headers:
        if name == "ce_type":
            return raw.decode("utf-8", "replace")
    return None
