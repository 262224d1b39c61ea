"""The key store: API keys' digests, scopes, expiry and revocation in one SQLite file.

``<data dir>/keys.sqlite`` by default (the embedded log's directory, else ``./.eventml``),
created by the first :meth:`KeyStore.create` with owner-only permissions; reading a store
that does not exist finds no keys (and creates nothing).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from eventml.clock import system_clock_ms
from eventml.log.registry import data_dir
from eventml.security.keys import (
    AuthError,
    Scope,
    ScopeError,
    digest,
    key_id_of,
    new_key,
    parse_scope,
    same_digest,
)

FILE_NAME = "keys.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    revoked_ms INTEGER
)
"""
_COLUMNS = "key_id, name, digest, scopes, created_ms, expires_ms, revoked_ms"
_DUMMY_DIGEST = digest("eml_aaaaaaaa_" + "a" * 32)  # compared when the id is unknown


class KeyStoreError(Exception):
    """A request the store cannot carry out (unknown key, bad scope, ...): one line."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored: everything but its secret."""

    key_id: str
    name: str
    scopes: tuple[Scope, ...]
    created_ms: int
    expires_ms: int | None = None
    revoked_ms: int | None = None

    def allows(self, operation: str, resource: str) -> bool:
        return any(s.allows(operation, resource) for s in self.scopes)

    @property
    def is_admin(self) -> bool:
        return any(s.operation == "admin" for s in self.scopes)

    def status(self, now_ms: int) -> str:
        if self.revoked_ms is not None:
            return "revoked"
        if self.expires_ms is not None and now_ms >= self.expires_ms:
            return "expired"
        return "active"


def default_path(log_url: str | None = None) -> Path:
    return data_dir(log_url) / FILE_NAME


class KeyStore:
    """API keys in the SQLite file at ``path`` (thread-safe; one connection per store)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    # -- connection ---------------------------------------------------------------------
    def _conn(self, *, create: bool) -> sqlite3.Connection | None:
        if self._db is None:
            if not self.path.exists():
                if not create:
                    return None
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA busy_timeout = 5000")
            db.execute(_SCHEMA)
            self._db = db
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- keys ---------------------------------------------------------------------------
    def create(self, name: str, scopes: Iterable[str | Scope], *, expires_in_s: float | None = None,
               now_ms: int | None = None) -> tuple[str, ApiKey]:
        """A new key: ``(token, record)``. The token is shown once; only its digest is kept."""
        if not name.strip():
            raise KeyStoreError("a key needs a name (who or what uses it)")
        try:
            parsed = tuple(s if isinstance(s, Scope) else parse_scope(s) for s in scopes)
        except ScopeError as e:
            raise KeyStoreError(str(e)) from None
        if not parsed:
            raise KeyStoreError("a key needs at least one scope, e.g. produce:orders or read:*")
        if expires_in_s is not None and expires_in_s <= 0:
            raise KeyStoreError(f"expiry must be in the future, got {expires_in_s:g} s")
        now = system_clock_ms() if now_ms is None else now_ms
        expires = None if expires_in_s is None else now + int(expires_in_s * 1000)
        key_id, token = new_key()
        record = ApiKey(key_id, name.strip(), parsed, now, expires)
        with self._lock:
            db = self._conn(create=True)
            assert db is not None
            db.execute(
                f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (key_id, record.name, digest(token), _scopes_json(parsed), now, expires),
            )
        return token, record

    def list(self) -> list[ApiKey]:
        with self._lock:
            db = self._conn(create=False)
            if db is None:
                return []
            rows = db.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_ms, key_id").fetchall()
        return [_record(r) for r in rows]

    def get(self, key_id: str) -> ApiKey:
        with self._lock:
            row = self._row(key_id)
        if row is None:
            raise KeyStoreError(f"no key {key_id!r}: `eventml keys list` shows the ids")
        return _record(row)

    def revoke(self, key_id: str, *, now_ms: int | None = None) -> ApiKey:
        """Revoke a key by id (or its full token); revoking twice keeps the first time."""
        if key_id.startswith("eml_"):
            try:
                key_id = key_id_of(key_id)
            except AuthError:
                raise KeyStoreError("that is not an eventml key (eml_<id>_<secret>)") from None
        now = system_clock_ms() if now_ms is None else now_ms
        with self._lock:
            db = self._conn(create=False)
            if db is not None:
                db.execute("UPDATE api_keys SET revoked_ms = ? WHERE key_id = ? AND revoked_ms IS NULL",
                           (now, key_id))
        return self.get(key_id)

    def authenticate(self, token: str, *, now_ms: int | None = None) -> ApiKey:
        """The key ``token`` is, if active; else :class:`AuthError` with the reason."""
        key_id = key_id_of(token)
        with self._lock:
            row = self._row(key_id)
        if row is None:
            same_digest(token, _DUMMY_DIGEST)  # the same work as for a known id
            raise AuthError("unknown", key_id)
        if not same_digest(token, str(row[2])):
            raise AuthError("unknown", key_id)
        record = _record(row)
        status = record.status(system_clock_ms() if now_ms is None else now_ms)
        if status != "active":
            raise AuthError(status, key_id)  # type: ignore[arg-type]
        return record

    def _row(self, key_id: str) -> tuple[object, ...] | None:
        db = self._conn(create=False)
        if db is None:
            return None
        row: tuple[object, ...] | None = db.execute(
            f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return row


def _scopes_json(scopes: Sequence[Scope]) -> str:
    return orjson.dumps([str(s) for s in scopes]).decode()


def _record(row: tuple[object, ...]) -> ApiKey:
    key_id, name, _digest, scopes, created, expires, revoked = row
    return ApiKey(
        key_id=str(key_id), name=str(name),
        scopes=tuple(parse_scope(s) for s in orjson.loads(str(scopes))),
        created_ms=int(created),  # type: ignore[call-overload]
        expires_ms=None if expires is None else int(expires),  # type: ignore[call-overload]
        revoked_ms=None if revoked is None else int(revoked),  # type: ignore[call-overload]
    )
