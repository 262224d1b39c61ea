"""The embedded log's SQLite file: tables, pragmas, and the per-topic statements.

Layout (one database file, ``<data dir>/log.db``, WAL mode, 16 KiB pages):

* ``topics``: one row per topic (``id`` never reused: ``AUTOINCREMENT``), with its
  :class:`~eventml.log.TopicSpec` (``config`` as JSON).
* ``partitions``: per topic partition, ``start_offset`` (first offset held),
  ``next_offset`` (persisted, so offsets are never reused even after retention
  empties a partition) and ``last_header`` (highest offset that carries headers,
  ``-1`` if none: reads past it skip header decoding).
* ``r<topic id>``: the records of one topic, ``WITHOUT ROWID`` clustered on
  ``(p, o)`` = (partition, offset), columns ``ts``, ``k``, ``v``, ``h`` (headers,
  ``NULL`` when empty). One table per topic keeps rows short, makes
  ``delete_topic`` a ``DROP TABLE`` and scopes retention scans to one topic.
* ``groups`` / ``group_members`` / ``group_owners`` / ``group_offsets``: consumer
  groups (see :mod:`eventml.log.embedded.groups`).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Final, Literal

from eventml.log.base import BrokerUnavailable, LogError
from eventml.log.embedded.headers import header_size

Durability = Literal["fsync", "fast"]

SCHEMA_VERSION: Final = 1
DB_FILE: Final = "log.db"
PAGE_SIZE: Final = 16384
JOURNAL_SIZE_LIMIT: Final = 64 * 1024 * 1024  # bytes of WAL kept after a checkpoint

SYNCHRONOUS: Final[dict[str, str]] = {"fsync": "FULL", "fast": "NORMAL"}

_TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS meta (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS topics (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        partitions INTEGER NOT NULL,
        retention_ms INTEGER,
        retention_bytes INTEGER,
        cleanup_policy TEXT NOT NULL,
        config TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS partitions (
        topic_id INTEGER NOT NULL,
        p INTEGER NOT NULL,
        start_offset INTEGER NOT NULL DEFAULT 0,
        next_offset INTEGER NOT NULL DEFAULT 0,
        last_header INTEGER NOT NULL DEFAULT -1,
        PRIMARY KEY (topic_id, p)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS groups (
        grp TEXT PRIMARY KEY,
        generation INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS group_members (
        grp TEXT NOT NULL,
        member TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        pid_start INTEGER NOT NULL,
        topics TEXT NOT NULL,
        joined_ms INTEGER NOT NULL,
        last_poll_ms INTEGER NOT NULL,
        max_poll_interval_ms INTEGER NOT NULL,
        PRIMARY KEY (grp, member)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS group_owners (
        grp TEXT NOT NULL,
        topic TEXT NOT NULL,
        p INTEGER NOT NULL,
        member TEXT NOT NULL,
        generation INTEGER NOT NULL,
        PRIMARY KEY (grp, topic, p)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS group_offsets (
        grp TEXT NOT NULL,
        topic TEXT NOT NULL,
        p INTEGER NOT NULL,
        o INTEGER NOT NULL,
        committed_ms INTEGER NOT NULL,
        PRIMARY KEY (grp, topic, p)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS producers (
        txn_id TEXT PRIMARY KEY,
        epoch INTEGER NOT NULL
    ) WITHOUT ROWID""",
)


@dataclass(frozen=True, slots=True)
class TopicSql:
    """Statement texts for one topic's records table (constant, so sqlite3 caches them)."""

    table: str
    create: str
    insert: str
    select: str  # Record fields between topic and headers: (p, o, ts, k, v)
    select_with_headers: str  # (p, o, ts, k, v, h)
    first_at_or_after_time: str
    first_offset: str

    @classmethod
    def for_topic(cls, topic_id: int) -> TopicSql:
        t = f"r{int(topic_id)}"
        return cls(
            table=t,
            create=(
                f"CREATE TABLE {t} (p INTEGER NOT NULL, o INTEGER NOT NULL, ts INTEGER NOT NULL, "
                "k BLOB, v BLOB, h BLOB, PRIMARY KEY (p, o)) WITHOUT ROWID"
            ),
            insert=f"INSERT INTO {t} (p, o, ts, k, v, h) VALUES (?, ?, ?, ?, ?, ?)",
            select=(
                f"SELECT p, o, ts, k, v FROM {t} "
                "WHERE p = ? AND o >= ? AND o < ? ORDER BY o LIMIT ?"
            ),
            select_with_headers=(
                f"SELECT p, o, ts, k, v, h FROM {t} "
                "WHERE p = ? AND o >= ? AND o < ? ORDER BY o LIMIT ?"
            ),
            first_at_or_after_time=(
                f"SELECT o FROM {t} WHERE p = ? AND ts >= ? ORDER BY o LIMIT 1"
            ),
            first_offset=f"SELECT o FROM {t} WHERE p = ? ORDER BY o LIMIT 1",
        )


def connect(path: str, durability: Durability, busy_timeout_s: float) -> sqlite3.Connection:
    """A connection with the log's pragmas; autocommit mode (transactions are explicit).

    ``check_same_thread=False`` only so :meth:`EmbeddedLog.close` may close every
    thread's connection; each connection is used by the one thread that opened it.
    """
    sync = SYNCHRONOUS.get(durability)
    if sync is None:
        raise LogError(
            f"durability must be one of {sorted(SYNCHRONOUS)} (fsync: acknowledged = on disk; "
            f"fast: survives a process crash, not a power loss), got {durability!r}"
        )
    try:
        conn = sqlite3.connect(
            path,
            timeout=busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=512,
        )
    except sqlite3.Error as e:
        raise BrokerUnavailable(f"cannot open the embedded log at {path!r}: {e}") from e
    try:
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only takes effect on a new file
        _ensure_wal(conn, busy_timeout_s)
        for pragma in (
            f"synchronous={sync}",
            f"busy_timeout={int(busy_timeout_s * 1000)}",
            "cache_size=-32768",  # 32 MiB per connection
            "mmap_size=1073741824",  # reads of the main file without copies
            "temp_store=MEMORY",
            f"journal_size_limit={JOURNAL_SIZE_LIMIT}",
            "wal_autocheckpoint=2000",  # pages: ~32 MiB of WAL between checkpoints
        ):
            conn.execute(f"PRAGMA {pragma}")
        conn.create_function("eventml_header_size", 1, header_size, deterministic=True)
    except sqlite3.Error as e:
        conn.close()
        raise BrokerUnavailable(f"cannot set up the embedded log at {path!r}: {e}") from e
    return conn


def _ensure_wal(conn: sqlite3.Connection, busy_timeout_s: float) -> None:
    """Switch to WAL (persistent in the file); retried, since a concurrent opener may hold a lock."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if str(mode).lower() == "wal":
                return
            raise LogError(f"the embedded log needs WAL mode but SQLite kept {mode!r}")
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def create_tables(conn: sqlite3.Connection) -> None:
    """Create missing tables and check the schema version; run inside a write transaction."""
    for ddl in _TABLES:
        conn.execute(ddl)
    row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO meta (name, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
    elif int(row[0]) > SCHEMA_VERSION:
        raise LogError(
            f"this data directory was written by a newer eventml (schema {row[0]}, "
            f"this one reads {SCHEMA_VERSION}): upgrade eventml"
        )
