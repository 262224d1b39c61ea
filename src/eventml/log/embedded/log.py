"""The embedded log: a durable, partitioned log in one SQLite file, shared by local processes."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from operator import add
from pathlib import Path
from typing import Any

import orjson

from eventml.clock import ClockMs, system_clock_ms
from eventml.log._buffered import BufferedTransaction, LocalProducer, fenced
from eventml.log._local import LocalConsumer
from eventml.log.base import (
    BrokerUnavailable,
    Consumer,
    ConsumerConfig,
    Log,
    LogError,
    Message,
    RebalanceListener,
    Record,
    RecordMetadata,
    TopicDescription,
    TopicExists,
    TopicPartition,
    TopicSpec,
    UnknownTopic,
)
from eventml.log.embedded import groups, retention, schema
from eventml.log.embedded.batch import place_batch
from eventml.log.embedded.checkpoint import Checkpointer
from eventml.log.embedded.headers import decode_headers
from eventml.log.embedded.schema import Durability, TopicSql

_log = logging.getLogger(__name__)

_WAIT_SLICE_S = 0.005  # cross-process append detection granularity
_BUSY_CHECK_S = 0.025  # ... while this process appends to topics a waiter does not read
_SYNC_EVERY_MS = 100  # full group sync (heartbeat, liveness, rebalance) at most this often
_STREAM_ABOVE = 2000  # read(): rows per call above which rows are streamed

# Record / RecordMetadata built in C: tuple.__new__ skips the namedtuple's Python __new__.
_new_record = partial(tuple.__new__, Record)
_new_metadata = partial(tuple.__new__, RecordMetadata)
_NO_HEADERS: tuple[tuple[()]] = ((),)

_SQL_NEXT_OFFSETS = (
    "SELECT t.id, p.next_offset FROM topics AS t "
    "JOIN partitions AS p ON p.topic_id = t.id WHERE t.name = ? ORDER BY p.p"
)
_SQL_OFFSETS = (
    "SELECT p.p, p.start_offset, p.next_offset FROM topics AS t "
    "JOIN partitions AS p ON p.topic_id = t.id WHERE t.name = ? ORDER BY p.p"
)
_SQL_PARTITION = "SELECT next_offset, last_header FROM partitions WHERE topic_id = ? AND p = ?"
_SQL_TOPIC = (
    "SELECT id, name, partitions, retention_ms, retention_bytes, cleanup_policy, config FROM topics"
)
_SQL_UPDATE_NEXT = (
    "UPDATE partitions SET next_offset = ?, last_header = max(last_header, ?) "
    "WHERE topic_id = ? AND p = ?"
)


@dataclass(frozen=True, slots=True)
class _Topic:
    id: int
    partitions: int
    sql: TopicSql


@dataclass(slots=True)
class _MemberState:
    """What a member of this process learned at its last full sync."""

    topics: tuple[str, ...]
    max_poll_interval_ms: int
    generation: int
    synced_ms: int
    synced_mono: float
    owned: frozenset[TopicPartition]
    expiry_ms: int | None  # the earliest another member may expire: sync fully after it


class _Shared:
    """What this process's logs on one file share.

    ``write_lock`` hands the SQLite write lock from thread to thread without
    SQLite's busy-wait sleeps; ``cond``/``seq`` wake waiters when any of them appends, and
    ``topic_seq`` (the ``seq`` of each topic's last append) lets a waiter sleep through
    appends to topics it does not read.
    """

    def __init__(self) -> None:
        self.write_lock = threading.Lock()
        self.cond = threading.Condition(threading.Lock())
        self.seq = 0
        self.topic_seq: dict[str, int] = {}
        self.checkpointer: Checkpointer | None = None  # made by the first append

    def notify(self, topics: Iterable[str]) -> None:
        with self.cond:
            self.seq += 1
            for topic in topics:
                self.topic_seq[topic] = self.seq
            self.cond.notify_all()

    def last(self, topics: Collection[str] | None) -> int:
        """The ``seq`` of the last append to any of ``topics`` (None: to any topic)."""
        if topics is None:
            return self.seq
        return max((self.topic_seq.get(t, 0) for t in topics), default=0)


_SHARED: dict[str, _Shared] = {}
_SHARED_LOCK = threading.Lock()



def _shared_for(db_path: str) -> _Shared:
    with _SHARED_LOCK:
        return _SHARED.setdefault(db_path, _Shared())


class _ThreadState(threading.local):
    conn: sqlite3.Connection | None = None
    appended: set[str] | None = None  # topics appended to in the open transaction: notify at commit
    # per set of topics waited for: (notifier sequence, append mark) at the end of the last wait
    seen: dict[frozenset[str] | None, tuple[int, tuple[int, int]]] | None = None


class EmbeddedLog(Log):
    """A log in a data directory (``<path>/log.db``, SQLite in WAL mode).

    Several processes on one machine may open the same directory at once: appends
    are serialized by SQLite (``BEGIN IMMEDIATE``, waiting up to ``busy_timeout_s``),
    and consumer groups spread partitions over every process's members.

    ``durability``:

    * ``"fsync"`` (default, ``synchronous=FULL``): ``append`` returns once the batch
      is on disk; an acknowledged batch survives a process crash, an OS crash and a
      power loss.
    * ``"fast"`` (``synchronous=NORMAL``): no fsync per commit. An acknowledged
      batch survives a crash of the process, but an OS crash or power loss may lose
      the most recent acknowledged transactions (never corrupts the file, never
      leaves half a batch).

    Every ``append`` is one transaction: all of the batch or none of it.

    Retention (``retention_ms``, ``retention_bytes``, compaction) runs when
    :meth:`enforce_retention` is called and, unless ``retention_interval_s=0``,
    automatically after an append once ``retention_interval_s`` seconds (default 60)
    have passed since the last run, in the appending thread (never inside a
    :meth:`transaction`); the same upkeep restarts a WAL that concurrent readers
    kept from being recycled. Deleted rows free pages that new appends reuse; the
    file itself does not shrink.

    Threads: each thread uses its own SQLite connection, opened on first use;
    :meth:`close` closes all of them. Consumers are not thread-safe (use each from
    one thread), the log itself is. After ``fork()`` the child opens fresh
    connections (the parent's are never touched).

    :meth:`transaction` groups appends, offset commits and your own statements on
    this file into one atomic transaction (exactly-once on the embedded log).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "fsync",
        clock: ClockMs = system_clock_ms,
        url: str | None = None,
        retention_interval_s: float = 60.0,
        busy_timeout_s: float = 30.0,
    ) -> None:
        if durability not in schema.SYNCHRONOUS:
            raise LogError(
                f"durability must be 'fsync' (acknowledged = on disk) or 'fast' (survives a "
                f"process crash, may lose the last batches on power loss), got {durability!r}"
            )
        directory = Path(path).expanduser()
        if directory.exists() and not directory.is_dir():
            raise LogError(f"{str(directory)!r} is not a directory: give a data directory")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LogError(f"cannot create the data directory {str(directory)!r}: {e}") from e
        self.path = directory
        self.db_path = str((directory / schema.DB_FILE).resolve())
        self.url = url or f"embedded://{directory}"
        self.durability: Durability = durability
        self.clock = clock
        self._busy_timeout_s = busy_timeout_s
        self._retention_interval_s = retention_interval_s
        self._next_retention = time.monotonic() + retention_interval_s
        self._closed = False
        self._tls = _ThreadState()
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._conns_lock = threading.Lock()
        self._shared = _shared_for(self.db_path)
        self._topics: dict[str, _Topic] = {}
        self._round_robin: dict[str, int] = {}
        self._members: dict[tuple[str, str], _MemberState] = {}
        with self._write() as conn:
            schema.create_tables(conn)
        _OPEN_LOGS.add(self)

    # -- connections and transactions ---------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise LogError(f"the log {self.url} is closed: open it again with open_log(...)")
        conn = self._tls.conn
        if conn is None:
            conn = schema.connect(self.db_path, self.durability, self._busy_timeout_s)
            with self._conns_lock:
                alive = []
                for thread, c in self._conns:
                    if thread.is_alive():
                        alive.append((thread, c))
                    else:
                        c.close()
                alive.append((threading.current_thread(), conn))
                self._conns = alive
            self._tls.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection (joins one already open)."""
        conn = self._conn()
        if conn.in_transaction:
            yield conn
            return
        lock = self._shared.write_lock
        if not lock.acquire(timeout=self._busy_timeout_s):
            raise BrokerUnavailable(
                f"another thread of this process held the embedded log {self.db_path!r} for "
                f"{self._busy_timeout_s:g} s; retry, or raise busy_timeout_s"
            )
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise self._error(e) from e
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._tls.appended = None
                if isinstance(e, sqlite3.Error):
                    raise self._error(e) from e
                raise
        finally:
            lock.release()
        if self._tls.appended:
            topics, self._tls.appended = self._tls.appended, None
            self._shared.notify(topics)
            self._checkpoint_soon()

    def _checkpoint_soon(self) -> None:
        """WAL checkpoints in a thread, not in a later append's commit (see checkpoint.py)."""
        shared = self._shared
        if shared.checkpointer is None:
            with _SHARED_LOCK:
                if shared.checkpointer is None:
                    shared.checkpointer = Checkpointer(partial(
                        schema.connect, self.db_path, self.durability, self._busy_timeout_s))
        shared.checkpointer.appended()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several reads (joins a transaction already open)."""
        conn = self._conn()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _error(self, e: sqlite3.Error) -> LogError:
        text = str(e)
        if "locked" in text or "busy" in text:
            return BrokerUnavailable(
                f"the embedded log {self.db_path!r} stayed locked by another writer for "
                f"{self._busy_timeout_s:g} s ({text}); retry, or raise busy_timeout_s"
            )
        return LogError(f"the embedded log {self.db_path!r} failed: {text}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction on this thread's connection.

        ``append``, consumer ``commit`` and statements you run on the yielded
        connection (your own tables in this file) all commit together when the
        block exits, or none of them if it raises. Do not ``COMMIT``/``ROLLBACK`` on
        the connection yourself. Hold it briefly: other writers wait meanwhile.
        Nested calls join the outer transaction.
        """
        with self._write() as conn:
            yield conn

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for _, conn in conns:
            with suppress(sqlite3.Error):  # closing is best effort
                conn.close()
        _OPEN_LOGS.discard(self)

    def _after_fork_in_child(self) -> None:
        # the parent's connections must not be used (nor closed) here: forget them
        _ABANDONED.extend(c for _, c in self._conns)
        if self._tls.conn is not None:
            _ABANDONED.append(self._tls.conn)
        self._tls = _ThreadState()
        self._conns = []
        self._conns_lock = threading.Lock()
        self._members.clear()
        self._shared = _shared_for(self.db_path)

    # -- topics ---------------------------------------------------------------
    def create_topic(self, spec: TopicSpec, *, exist_ok: bool = False) -> None:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM topics WHERE name = ?", (spec.name,)).fetchone():
                if exist_ok:
                    return
                raise TopicExists(f"topic {spec.name!r} already exists")
            cur = conn.execute(
                "INSERT INTO topics (name, partitions, retention_ms, retention_bytes, "
                "cleanup_policy, config, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.name,
                    spec.partitions,
                    spec.retention_ms,
                    spec.retention_bytes,
                    spec.cleanup_policy,
                    orjson.dumps(dict(spec.config)).decode(),
                    self.clock(),
                ),
            )
            topic_id = int(cur.lastrowid or 0)
            conn.execute(TopicSql.for_topic(topic_id).create)
            conn.executemany(
                "INSERT INTO partitions (topic_id, p) VALUES (?, ?)",
                [(topic_id, p) for p in range(spec.partitions)],
            )
            groups.topics_changed(conn)

    def delete_topic(self, name: str) -> None:
        with self._write() as conn:
            row = conn.execute("SELECT id FROM topics WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise _unknown(name)
            topic_id = int(row[0])
            conn.execute("DELETE FROM topics WHERE id = ?", (topic_id,))
            conn.execute("DELETE FROM partitions WHERE topic_id = ?", (topic_id,))
            conn.execute(f"DROP TABLE IF EXISTS {TopicSql.for_topic(topic_id).table}")
            groups.forget_topic(conn, name)
        self._topics.pop(name, None)
        self._round_robin.pop(name, None)

    def list_topics(self) -> list[str]:
        rows = self._conn().execute("SELECT name FROM topics ORDER BY name").fetchall()
        return sorted(r[0] for r in rows)

    def describe_topic(self, name: str) -> TopicDescription:
        with self._read() as conn:
            spec = self._spec(conn, name)
            rows = conn.execute(_SQL_OFFSETS, (name,)).fetchall()
        return TopicDescription(spec, {p: s for p, s, _ in rows}, {p: e for p, _, e in rows})

    def _spec(self, conn: sqlite3.Connection, name: str) -> TopicSpec:
        row = conn.execute(_SQL_TOPIC + " WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise _unknown(name)
        return _spec_of(row)

    def _topic(self, conn: sqlite3.Connection, name: str, *, fresh: bool = False) -> _Topic | None:
        """Where ``name`` is stored (cached; ``fresh`` re-reads it), or ``None`` if it does not exist."""
        if not fresh:
            cached = self._topics.get(name)
            if cached is not None:
                return cached
        row = conn.execute("SELECT id, partitions FROM topics WHERE name = ?", (name,)).fetchone()
        if row is None:
            self._topics.pop(name, None)
            return None
        topic = _Topic(int(row[0]), int(row[1]), TopicSql.for_topic(int(row[0])))
        self._topics[name] = topic
        return topic

    def topic_epoch(self, topic: str) -> int | None:
        """Identifies this incarnation of ``topic`` (its never-reused id); ``None`` if absent."""
        row = self._conn().execute("SELECT id FROM topics WHERE name = ?", (topic,)).fetchone()
        return None if row is None else int(row[0])

    # -- append ---------------------------------------------------------------
    def append(self, topic: str, messages: Sequence[Message]) -> list[RecordMetadata]:
        if not isinstance(messages, list | tuple):
            messages = list(messages)
        now = self.clock()
        with self._write() as conn:
            parts = conn.execute(_SQL_NEXT_OFFSETS, (topic,)).fetchall()
            if not parts:
                raise _unknown(topic)
            info = self._topics.get(topic)
            if info is None or info.id != parts[0][0]:
                info = self._topic(conn, topic, fresh=True)
                assert info is not None
            if not messages:
                return []
            firsts = [row[1] for row in parts]
            rr = self._round_robin.get(topic, 0)
            placed = place_batch(topic, messages, firsts, rr, now)
            conn.executemany(info.sql.insert, placed.rows)
            nexts = placed.next_offsets
            conn.executemany(
                _SQL_UPDATE_NEXT,
                [
                    (nexts[p], placed.last_header.get(p, -1), info.id, p)
                    for p in range(len(nexts))
                    if nexts[p] != firsts[p]
                ],
            )
            if self._tls.appended is None:
                self._tls.appended = {topic}
            else:
                self._tls.appended.add(topic)
        if placed.round_robin != rr:
            self._round_robin[topic] = placed.round_robin
        out = list(map(_new_metadata, zip(repeat(topic), placed.partitions, placed.offsets)))
        if (
            self._retention_interval_s > 0
            and time.monotonic() >= self._next_retention
            and not conn.in_transaction  # not inside the caller's transaction()
        ):
            self._maintain()
        return out

    # -- offsets and reads ------------------------------------------------------
    def _offsets(self, topic: str) -> list[tuple[int, int, int]]:
        rows = self._conn().execute(_SQL_OFFSETS, (topic,)).fetchall()
        if not rows:
            raise _unknown(topic)
        return rows

    def start_offsets(self, topic: str) -> dict[int, int]:
        return {p: start for p, start, _ in self._offsets(topic)}

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {p: end for p, _, end in self._offsets(topic)}

    def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        with self._read() as conn:
            info = self._topic(conn, topic, fresh=True)
            if info is None:
                raise _unknown(topic)
            result: dict[int, int] = {}
            for p, _, end in conn.execute(_SQL_OFFSETS, (topic,)).fetchall():
                row = conn.execute(info.sql.first_at_or_after_time, (p, timestamp_ms)).fetchone()
                result[p] = end if row is None else int(row[0])
            return result

    def read(self, tp: TopicPartition, offset: int, max_records: int) -> list[Record]:
        """Up to ``max_records`` records of ``tp`` from ``offset`` on (``[]`` for unknown topics)."""
        if max_records <= 0:
            return []
        conn = self._conn()
        topic, partition = tp
        info = self._topics.get(topic) or self._topic(conn, topic)
        if info is None:
            return []
        row = conn.execute(_SQL_PARTITION, (info.id, partition)).fetchone()
        if row is None:  # no such partition, or the topic was deleted (and maybe re-created)
            info = self._topic(conn, topic, fresh=True)
            if info is None:
                return []
            row = conn.execute(_SQL_PARTITION, (info.id, partition)).fetchone()
            if row is None:
                return []
        end, last_header = row
        if offset >= end:
            return []
        # bounded by `end` as read above: that snapshot's `last_header` covers these rows
        try:
            if last_header < offset:
                cursor = conn.execute(info.sql.select, (partition, offset, end, max_records))
                # large reads stream rows (fewer live objects for the GC to scan), small
                # ones fetch them at once (less per-row overhead): measured both ways
                plain = cursor if max_records > _STREAM_ABOVE else cursor.fetchall()
                # (topic,) + (p, o, ts, k, v) + ((),) -> Record, all in C
                with_topic = map(add, repeat((topic,)), plain)
                return list(map(_new_record, map(add, with_topic, repeat(_NO_HEADERS))))
            rows = conn.execute(
                info.sql.select_with_headers, (partition, offset, end, max_records)
            ).fetchall()
        except sqlite3.OperationalError:  # the table was dropped in the meantime
            self._topics.pop(topic, None)
            return []
        return [
            Record(topic, p, o, ts, k, v, decode_headers(h) if h is not None else ())
            for p, o, ts, k, v, h in rows
        ]

    def wait_for_append(self, timeout_s: float, topics: Collection[str] | None = None) -> None:
        """Return once any process may have appended (to one of ``topics``; None: to any
        topic) since this thread last waited for them, or on timeout.

        Appends in this process wake waiters at once; other processes' appends are
        noticed within ~5 ms (``PRAGMA data_version``, then the partitions' end offsets;
        ~25 ms while this process keeps appending to topics the waiter does not read). A
        waiter on some topics sleeps through appends to others: a consumer of a quiet
        topic does not poll SQLite at every append of a busy one.
        """
        deadline = time.monotonic() + timeout_s
        conn = self._conn()
        tls = self._tls
        key = None if topics is None else frozenset(topics)
        if tls.seen is None:
            tls.seen = {}
        notifier = self._shared
        seq = notifier.last(key)
        mark = self._append_mark(conn, key)
        seen = tls.seen.get(key)
        if seen != (seq, mark):
            tls.seen[key] = (seq, mark)
            if seen is not None:
                return  # appended since this thread last looked
        version = _data_version(conn)
        local = notifier.seq  # every in-process commit with appends moves it
        checked_at = time.monotonic()
        while True:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return
            with notifier.cond:
                if notifier.last(key) == seq:
                    notifier.cond.wait(min(remaining, _WAIT_SLICE_S))
                now_seq, now_local = notifier.last(key), notifier.seq
            if now_seq != seq:
                tls.seen[key] = (now_seq, self._append_mark(conn, key))
                return
            now_version = _data_version(conn)
            if now_version == version:
                continue
            # another connection committed. If this process appended meanwhile (to topics
            # this waiter ignores), that may be all it was: look at the end offsets at most
            # every _BUSY_CHECK_S then, at once when only other processes can have written
            explained = now_local != local
            local = now_local
            if explained and time.monotonic() - checked_at < _BUSY_CHECK_S:
                continue
            version, checked_at = now_version, time.monotonic()
            now_mark = self._append_mark(conn, key)
            if now_mark != mark:
                tls.seen[key] = (seq, now_mark)
                return

    @staticmethod
    def _append_mark(conn: sqlite3.Connection, topics: frozenset[str] | None = None
                     ) -> tuple[int, int]:
        if topics is None:
            row = conn.execute(
                "SELECT count(*), coalesce(sum(next_offset), 0) FROM partitions").fetchone()
        else:
            names = sorted(topics)
            row = conn.execute(
                "SELECT count(*), coalesce(sum(p.next_offset), 0) FROM partitions p JOIN topics t "
                f"ON t.id = p.topic_id WHERE t.name IN ({','.join('?' * len(names))})", names,
            ).fetchone()
        return int(row[0]), int(row[1])

    # -- transactions ---------------------------------------------------------------
    def transactional_producer(self, transactional_id: str) -> LocalProducer:
        """A producer whose transactions are single SQLite transactions.

        Hooks added with ``txn.add_hook`` get the connection, so tables of your own
        in this file (state stores) commit with the appends and offsets.
        """
        with self._write() as conn:
            conn.execute(
                "INSERT INTO producers (txn_id, epoch) VALUES (?, 1) "
                "ON CONFLICT (txn_id) DO UPDATE SET epoch = epoch + 1",
                (transactional_id,),
            )
            (epoch,) = conn.execute(
                "SELECT epoch FROM producers WHERE txn_id = ?", (transactional_id,)
            ).fetchone()
        return LocalProducer(transactional_id, int(epoch), self._apply_transaction)

    def _apply_transaction(self, txn: BufferedTransaction) -> None:
        with self._write() as conn:
            row = conn.execute(
                "SELECT epoch FROM producers WHERE txn_id = ?", (txn.transactional_id,)
            ).fetchone()
            if row is None or int(row[0]) != txn.epoch:
                raise fenced(txn.transactional_id)
            member = txn.member
            if txn.offsets and member is not None:
                groups.commit(
                    conn, member[0], member[1], txn.offsets, self.clock(), groups.current_process()
                )
            for topic, messages in txn.appends:
                self.append(topic, messages)
            for hook in txn.hooks:
                hook(conn)

    # -- consumer groups (LocalBackend) --------------------------------------------
    def consumer(
        self,
        group: str,
        topics: Sequence[str],
        *,
        config: ConsumerConfig | None = None,
        listener: RebalanceListener | None = None,
    ) -> Consumer:
        self._conn()  # fail now if closed
        return LocalConsumer(self, group, topics, config or ConsumerConfig(), listener)

    def group_sync(
        self, group: str, member: str, topics: Sequence[str], config: ConsumerConfig
    ) -> tuple[frozenset[TopicPartition], bool]:
        now = self.clock()
        mono = time.monotonic()
        max_poll = config.max_poll_interval_ms
        every_ms = min(_SYNC_EVERY_MS, max(1, max_poll // 4))
        key = (group, member)
        state = self._members.get(key)
        if (
            state is not None
            and state.topics == tuple(topics)
            and state.max_poll_interval_ms == max_poll
            and 0 <= now - state.synced_ms < every_ms
            and (mono - state.synced_mono) * 1000 < every_ms
            and (state.expiry_ms is None or now <= state.expiry_ms)
            and groups.generation(self._conn(), group) == state.generation
        ):
            return state.owned, False
        with self._write() as conn:
            result = groups.full_sync(
                conn, group, member, topics, max_poll, now, groups.current_process()
            )
        self._members[key] = _MemberState(
            tuple(topics), max_poll, result.generation, now, mono, result.owned, result.expiry_ms
        )
        return result.owned, result.joined

    def group_leave(self, group: str, member: str) -> None:
        self._members.pop((group, member), None)
        if self._closed:  # the log was closed first: leave through a short-lived connection
            conn = schema.connect(self.db_path, self.durability, self._busy_timeout_s)
            try:
                conn.execute("BEGIN IMMEDIATE")
                groups.leave(conn, group, member)
                conn.execute("COMMIT")
            finally:
                conn.close()
            return
        with self._write() as conn:
            groups.leave(conn, group, member)

    def commit_offsets(
        self, group: str, member: str, offsets: Mapping[TopicPartition, int]
    ) -> None:
        with self._write() as conn:
            groups.commit(conn, group, member, offsets, self.clock(), groups.current_process())

    def committed_offsets(
        self, group: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int | None]:
        return groups.committed(self._conn(), group, partitions)

    # -- retention ----------------------------------------------------------------
    def enforce_retention(self, now_ms: int | None = None) -> int:
        now = self.clock() if now_ms is None else now_ms
        deleted = 0
        rows = self._conn().execute(_SQL_TOPIC).fetchall()
        for row in rows:
            spec = _spec_of(row)
            if spec.cleanup_policy == "delete" and (
                spec.retention_ms is None and spec.retention_bytes is None
            ):
                continue
            topic_id = int(row[0])
            sql = TopicSql.for_topic(topic_id)
            for p in range(spec.partitions):
                with self._write() as conn:  # one short transaction per partition
                    if not conn.execute(
                        "SELECT 1 FROM topics WHERE id = ?", (topic_id,)
                    ).fetchone():
                        break  # deleted meanwhile
                    n = retention.enforce_partition(conn, sql, spec, p, now)
                    if n and spec.cleanup_policy == "delete":
                        # compaction leaves holes but never moves the log start (as Kafka),
                        # so a committed offset inside a compacted range stays valid
                        conn.execute(
                            "UPDATE partitions SET start_offset = coalesce("
                            f"({sql.first_offset}), next_offset) WHERE topic_id = ? AND p = ?",
                            (p, topic_id, p),
                        )
                deleted += n
        return deleted

    def _maintain(self) -> None:
        """Periodic upkeep after an append: retention, and a WAL that outgrew its limit."""
        self._next_retention = time.monotonic() + self._retention_interval_s
        try:
            deleted = self.enforce_retention()
            self._restart_wal_if_starved()
        except LogError as e:  # the append itself succeeded: report, retry next interval
            _log.warning("automatic retention on %s failed: %s", self.url, e)
        else:
            if deleted:
                _log.debug("retention on %s deleted %d records", self.url, deleted)

    def _restart_wal_if_starved(self) -> None:
        """Checkpoint and restart the WAL if it grew past twice its limit.

        Automatic checkpoints can copy the WAL into the database but cannot start it
        over while readers keep overlapping (many consumers polling); then it grows.
        ``RESTART`` waits (up to ``busy_timeout_s``) for the readers of the moment.
        """
        try:
            size = os.path.getsize(self.db_path + "-wal")
        except OSError:
            return
        if size > 2 * schema.JOURNAL_SIZE_LIMIT:
            try:
                self._conn().execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
            except sqlite3.Error as e:
                raise self._error(e) from e


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def _unknown(name: str) -> UnknownTopic:
    return UnknownTopic(f"unknown topic {name!r}: create it first")


def _spec_of(row: tuple[Any, ...]) -> TopicSpec:
    _, name, partitions, retention_ms, retention_bytes, policy, config = row
    return TopicSpec(
        name=name,
        partitions=int(partitions),
        retention_ms=retention_ms,
        retention_bytes=retention_bytes,
        cleanup_policy=policy,
        config=orjson.loads(config),
    )


# -- fork safety ------------------------------------------------------------------------
_OPEN_LOGS: weakref.WeakSet[EmbeddedLog] = weakref.WeakSet()
_ABANDONED: list[sqlite3.Connection] = []  # inherited over fork: kept open, never used


def _reset_after_fork() -> None:
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    _SHARED.clear()
    for log in list(_OPEN_LOGS):
        log._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_after_fork)
