"""State stores for the embedded log: one table in the log's own SQLite file.

``state (store, p, k, v, t)``: ``store`` is ``<app>/<name>/<input topic>``, ``p``
the input partition, ``k`` the key, ``v`` the pickled value (protocol 5), ``t``
the TTL time (event time in ms, ``NULL`` for none). A batch's writes are a hook
of its log transaction (:meth:`EmbeddedLog.transactional_producer`), so they
commit in the same SQLite transaction as the batch's appends and input offsets:
after a crash, state matches the committed offsets exactly.

Opening a partition store reads its rows in one ``SELECT`` into memory (about a
million keys a second); reads are then dict look-ups. Values are unpickled on
open: state is trusted, app-private data; never open a file written by others.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from eventml.log._buffered import BufferedTransaction
from eventml.log.base import TopicPartition, TopicSpec, Transaction
from eventml.log.embedded import EmbeddedLog
from eventml.state import _codec
from eventml.state._store import BufferedStore
from eventml.state._table import Table, Writes
from eventml.state.base import PartitionStore, StateBackend, StateError, StoreSpec

_CREATE = (
    "CREATE TABLE IF NOT EXISTS state ("
    "store TEXT NOT NULL, p INTEGER NOT NULL, k TEXT NOT NULL, v BLOB NOT NULL, t INTEGER, "
    "PRIMARY KEY (store, p, k)) WITHOUT ROWID"
)
_UPSERT = (
    "INSERT INTO state (store, p, k, v, t) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (store, p, k) DO UPDATE SET v = excluded.v, t = excluded.t"
)
_DELETE = "DELETE FROM state WHERE store = ? AND p = ? AND k = ?"
_SELECT_VALUES = "SELECT k, v FROM state WHERE store = ? AND p = ?"
_SELECT_TIMES = "SELECT k, t FROM state WHERE store = ? AND p = ? AND t IS NOT NULL"


def store_name(spec: StoreSpec, topic: str) -> str:
    """The ``store`` column of ``spec``'s rows for input ``topic``."""
    return f"{spec.app}/{spec.name}/{topic}"


class SqliteStateBackend(StateBackend):
    """Partition stores in ``log``'s SQLite file, committed with the log's transactions."""

    def __init__(self, log: EmbeddedLog, *, busy_timeout_s: float = 30.0) -> None:
        if not isinstance(log, EmbeddedLog):
            raise StateError(f"SqliteStateBackend needs an EmbeddedLog, got {type(log).__name__}")
        self.log = log
        self._busy_timeout_s = busy_timeout_s
        with log.transaction() as conn:
            conn.execute(_CREATE)

    def required_topics(self, spec: StoreSpec, partitions: int) -> list[TopicSpec]:
        return []

    def open(
        self, spec: StoreSpec, partition: TopicPartition, committed_offset: int | None
    ) -> PartitionStore:
        store = store_name(spec, partition.topic)
        args = (store, partition.partition)
        conn = self._reader()
        try:
            conn.execute("BEGIN")  # one snapshot for both queries
            raw: dict[str, bytes] = dict(conn.execute(_SELECT_VALUES, args))
            times: dict[str, int] = dict(conn.execute(_SELECT_TIMES, args))
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise StateError(f"could not read store {store!r} from {self.log.db_path!r}: {e}") from e
        finally:
            conn.close()
        values: dict[str, Any] = dict(zip(raw, map(_codec.loads_value, raw.values()), strict=True))
        return _SqliteStore(spec, partition, Table(values, times), store)

    def drop(self, spec: StoreSpec) -> None:
        prefix = f"{spec.app}/{spec.name}/"
        upper = prefix[:-1] + chr(ord("/") + 1)  # every store name starting with ``prefix``
        with self.log.transaction() as conn:
            conn.execute("DELETE FROM state WHERE store >= ? AND store < ?", (prefix, upper))

    def _reader(self) -> sqlite3.Connection:
        """A short-lived read connection: restoring never holds the log's write lock."""
        try:
            conn = sqlite3.connect(
                self.log.db_path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as e:
            raise StateError(f"could not open {self.log.db_path!r}: {e}") from e
        return conn


class _SqliteStore(BufferedStore):
    def __init__(self, spec: StoreSpec, partition: TopicPartition, table: Table, store: str):
        super().__init__(spec, partition, table)
        self._store = store

    def _write_through(self, txn: Transaction, writes: Writes, source_offset: int) -> None:
        if not isinstance(txn, BufferedTransaction):
            raise StateError(
                "the SQLite state backend needs a transaction of the embedded log: "
                "log.transactional_producer(id).begin(consumer)"
            )
        store, p = self._store, self.partition.partition
        dump = _codec.dump
        upserts: list[tuple[str, int, str, bytes, int | None]] = []
        deletes: list[tuple[str, int, str]] = []
        for key, entry in writes.items():  # pickled now, outside SQLite's write lock
            if entry is None:
                deletes.append((store, p, key))
            else:
                upserts.append((store, p, key, dump(entry[0]), entry[1]))

        def apply(conn: sqlite3.Connection) -> None:
            if deletes:
                conn.executemany(_DELETE, deletes)
            if upserts:
                conn.executemany(_UPSERT, upserts)

        txn.add_hook(apply)
