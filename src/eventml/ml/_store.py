"""The registry's SQLite file: models, versions and aliases (no artifacts, no flavors).

Every write runs in one ``BEGIN IMMEDIATE`` transaction, so two processes
registering the same model at once take distinct, consecutive version numbers.
Versions are immutable in SQL as well: a trigger rejects any UPDATE.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

FILENAME = "registry.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL REFERENCES models(name),
    version INTEGER NOT NULL CHECK (version >= 1),
    created_ms INTEGER NOT NULL,
    flavor TEXT NOT NULL,
    meta TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES versions(name, version)
);
CREATE TRIGGER IF NOT EXISTS versions_are_immutable BEFORE UPDATE ON versions
BEGIN SELECT RAISE(ABORT, 'model versions are immutable'); END;
"""


class Store:
    """One registry database file; a short-lived connection per operation (process-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for queries (autocommit reads see the last committed state)."""
        with contextlib.closing(self._connect()) as conn:
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed if the block returns, rolled back if it raises."""
        with contextlib.closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


def next_version(conn: sqlite3.Connection, name: str) -> int:
    """The number the next version of ``name`` takes (call inside a write transaction)."""
    row = conn.execute("SELECT MAX(version) FROM versions WHERE name = ?", (name,)).fetchone()
    return int(row[0] or 0) + 1


def insert_version(
    conn: sqlite3.Connection, name: str, version: int, created_ms: int, flavor: str, meta: str
) -> None:
    """Add a version row (and the model row on its first version)."""
    conn.execute(
        "INSERT OR IGNORE INTO models (name, created_ms) VALUES (?, ?)", (name, created_ms)
    )
    conn.execute(
        "INSERT INTO versions (name, version, created_ms, flavor, meta) VALUES (?, ?, ?, ?, ?)",
        (name, version, created_ms, flavor, meta),
    )
