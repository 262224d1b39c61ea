"""A read model's own SQLite file: its rows and the log positions they reflect.

One file per view (WAL mode). ``rows`` holds the table (key → JSON text);
``positions`` the next offset to read per source topic-partition; ``meta`` the last
update time. :meth:`ViewStore.commit` writes changed rows *and* positions in one
``BEGIN IMMEDIATE`` transaction: the rows always reflect exactly the events before
the stored positions, whatever the log backend does with its own offsets.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from eventml.log.base import TopicPartition
from eventml.views.base import (
    JsonRowStore,
    StoredPosition,
    check_filters,
    check_page,
    decode_row,
    encode_row,
)
from eventml.views.projection import Row, check_field

__all__ = ["StoredPosition", "ViewStore", "encode_row"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL, PRIMARY KEY (topic, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
"""
_UPSERT = "INSERT INTO rows (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
_DELETE = "DELETE FROM rows WHERE key = ?"
_POSITION = (
    "INSERT INTO positions (topic, partition, next_offset, updated_ms) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(topic, partition) DO UPDATE SET next_offset = excluded.next_offset, "
    "updated_ms = excluded.updated_ms"
)


class ViewStore(JsonRowStore):
    """The SQLite file of one view (a :class:`~eventml.views.base.RowStore`).
    Not thread-safe; one writer (its runner) at a time."""

    def __init__(self, path: str | Path, *, indexed: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        for f in indexed:
            check_field(f)
            self._db.execute(
                f"CREATE INDEX IF NOT EXISTS ix_{f} ON rows (json_extract(value, '$.{f}'))"
            )

    @property
    def location(self) -> str:
        return str(self.path)

    # -- reads --------------------------------------------------------------
    def get_encoded(self, key: str) -> str | None:
        found = self._db.execute("SELECT value FROM rows WHERE key = ?", (key,)).fetchone()
        return None if found is None else str(found[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, Row]:
        """The rows that exist among ``keys``."""
        out: dict[str, Row] = {}
        keys = list(keys)
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for k, v in self._db.execute(f"SELECT key, value FROM rows WHERE key IN ({marks})", chunk):
                out[k] = decode_row(v)
        return out

    def query(
        self, where: Mapping[str, Any] | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[tuple[str, Row]]:
        """``(key, row)`` pairs whose top-level fields equal ``where``'s values, by key."""
        check_page(limit, offset)
        clause, params = _where(where or {})
        sql = f"SELECT key, value FROM rows{clause} ORDER BY key LIMIT ? OFFSET ?"
        return [(k, decode_row(v)) for k, v in self._db.execute(sql, [*params, limit, offset])]

    def count(self, where: Mapping[str, Any] | None = None) -> int:
        clause, params = _where(where or {})
        return int(self._db.execute(f"SELECT count(*) FROM rows{clause}", params).fetchone()[0])

    def positions(self) -> dict[TopicPartition, StoredPosition]:
        return {
            TopicPartition(t, p): StoredPosition(o, u)
            for t, p, o, u in self._db.execute(
                "SELECT topic, partition, next_offset, updated_ms FROM positions")
        }

    def last_update_ms(self) -> int | None:
        found = self._db.execute("SELECT v FROM meta WHERE k = 'last_update_ms'").fetchone()
        return None if found is None else int(found[0])

    # -- writes -------------------------------------------------------------
    def check_encoded(self, key: str, text: str) -> None:
        """Any JSON object text is storable in SQLite."""

    def commit_encoded(
        self,
        rows: Mapping[str, str | None],
        positions: Mapping[TopicPartition, int],
        *,
        now_ms: int,
    ) -> None:
        """:meth:`commit` for rows already encoded as JSON text."""
        upserts = [(k, v) for k, v in rows.items() if v is not None]
        deletes = [(k,) for k, v in rows.items() if v is None]
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if upserts:
                db.executemany(_UPSERT, upserts)
            if deletes:
                db.executemany(_DELETE, deletes)
            db.executemany(_POSITION, [(tp.topic, tp.partition, o, now_ms) for tp, o in positions.items()])
            db.execute(
                "INSERT INTO meta (k, v) VALUES ('last_update_ms', ?) "
                "ON CONFLICT(k) DO UPDATE SET v = excluded.v", (str(now_ms),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def reset(self) -> None:
        """Forget every row and position (a rebuild starts from here)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM rows")
            db.execute("DELETE FROM positions")
            db.execute("DELETE FROM meta")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()



def _where(where: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """An SQL ``WHERE`` clause of equality tests on top-level JSON fields."""
    if not where:
        return "", []
    check_filters(where)
    parts: list[str] = []
    params: list[Any] = []
    for name, value in where.items():
        path = f"json_extract(value, '$.{name}')"
        if value is None:
            parts.append(f"{path} IS NULL")
        elif isinstance(value, bool):  # JSON true/false read back as 1/0
            parts.append(f"{path} = ?")
            params.append(int(value))
        else:
            parts.append(f"{path} = ?")
            params.append(value)
    return " WHERE " + " AND ".join(parts), params
