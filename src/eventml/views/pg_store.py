"""A read model in PostgreSQL: its rows and the log positions they reflect.

One table per view, ``view_<name>`` (``key text COLLATE "C" PRIMARY KEY, row jsonb``;
each indexed field gets an expression index on ``row -> 'field'``, which the equality
filters of :meth:`PostgresViewStore.query` use), plus two tables shared by every view
in the schema: ``eventml_view_positions`` (view, topic, partition → next offset) and
``eventml_views`` (the catalog: view → rows table, last update). :meth:`commit` writes
the changed rows *and* the positions in one PostgreSQL transaction, so the rows always
reflect exactly the events before the stored positions (exactly-once updates).

Durability: like the SQLite store (``synchronous=NORMAL``), the session runs with
``synchronous_commit = off``: an OS crash may lose the last few hundred milliseconds of
commits, rows and positions *together*, and the runner applies those events again.

The tables go to the first schema of the connection's ``search_path`` (``public`` by
default); pass ``schema=`` or put ``options=-csearch_path%3Dmyschema`` in the URL to
choose another. Needs psycopg 3: ``pip install 'eventml[postgres]'``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the PostgreSQL view store needs psycopg 3: pip install 'eventml[postgres]'"
    ) from e

import orjson

from eventml.log.base import TopicPartition
from eventml.views.base import (
    JsonRowStore,
    StoredPosition,
    ViewNotFound,
    check_filters,
    check_page,
    decode_row,
)
from eventml.views.projection import Row, check_field

__all__ = ["PostgresViewStore", "redact", "table_name"]

_MAX_IDENT = 63  # PostgreSQL's NAMEDATALEN - 1
_CHUNK = 10_000
_POSITIONS = "eventml_view_positions"
_CATALOG = "eventml_views"


def _ident(base: str) -> str:
    """``base`` as a PostgreSQL identifier: shortened with a hash past 63 bytes."""
    if len(base.encode()) <= _MAX_IDENT:
        return base
    digest = hashlib.sha1(base.encode()).hexdigest()[:10]
    return f"{base[: _MAX_IDENT - 11]}_{digest}"


def table_name(view: str) -> str:
    """The rows table of ``view`` (quoted when used: view names may hold ``.`` and ``-``)."""
    return _ident(f"view_{view}")


def redact(dsn: str) -> str:
    """``dsn`` without its password, as ``postgresql://user@host:port/db``."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql://?"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


class PostgresViewStore(JsonRowStore):
    """One view's table in PostgreSQL (a :class:`~eventml.views.base.RowStore`).

    Holds one connection; not thread-safe; one writer (its runner) at a time. With
    ``create=False`` it only opens a view that exists (else :class:`ViewNotFound`) and
    changes no schema: what read-only tools use.
    """

    def __init__(
        self,
        dsn: str,
        view: str,
        *,
        indexed: Sequence[str] = (),
        schema: str | None = None,
        create: bool = True,
        connect_timeout_s: int = 10,
    ) -> None:
        for f in indexed:
            check_field(f)
        self.dsn = dsn
        self.view = view
        self.schema = schema
        self._table = self._name(table_name(view))
        self._positions = self._name(_POSITIONS)
        self._catalog = self._name(_CATALOG)
        self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout_s,
                                     application_name=_ident(f"eventml-view-{view}"))
        try:
            self._conn.execute("SET synchronous_commit = off")
            if create:
                self._create(indexed)
            elif not self._exists():
                raise ViewNotFound(f"view {view!r} has no table in {self.location} yet")
            self._prepare_statements()
        except BaseException:
            self._conn.close()
            raise

    def _name(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.schema, name) if self.schema else sql.Identifier(name)

    def _create(self, indexed: Sequence[str]) -> None:
        table = table_name(self.view)
        with self._conn.transaction():
            # DDL of concurrent openers is serialized (IF NOT EXISTS alone can race)
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext('eventml-views-ddl'))")
            if self.schema:
                self._conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(self.schema)))
            self._conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (view text COLLATE \"C\" PRIMARY KEY, "
                "rows_table text NOT NULL, last_update_ms bigint)").format(self._catalog))
            self._conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (view text COLLATE \"C\" NOT NULL, "
                "topic text COLLATE \"C\" NOT NULL, partition integer NOT NULL, "
                "next_offset bigint NOT NULL, updated_ms bigint NOT NULL, "
                "PRIMARY KEY (view, topic, partition))").format(self._positions))
            self._conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (key text COLLATE \"C\" PRIMARY KEY, "
                "row jsonb NOT NULL)").format(self._table))
            for f in indexed:
                self._conn.execute(sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {} ON {} ((row -> {}))").format(
                    sql.Identifier(_ident(f"{table}_ix_{f}")), self._table, sql.Literal(f)))
            self._conn.execute(sql.SQL(
                "INSERT INTO {} (view, rows_table) VALUES (%s, %s) ON CONFLICT (view) DO NOTHING"
            ).format(self._catalog), (self.view, table))

    def _exists(self) -> bool:
        found = self._conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
            (self._qualified(_CATALOG), self._qualified(table_name(self.view)))).fetchone()
        return bool(found and found[0])

    def _qualified(self, name: str) -> str:
        def quote(part: str) -> str:
            return '"' + part.replace('"', '""') + '"'

        return f"{quote(self.schema)}.{quote(name)}" if self.schema else quote(name)

    def _prepare_statements(self) -> None:
        # key and row arrays travel in binary (%b): 5x cheaper to send than text arrays
        t, pos, cat = self._table, self._positions, self._catalog
        self._sql_get = sql.SQL("SELECT row::text FROM {} WHERE key = %s").format(t)
        self._sql_get_many = sql.SQL(
            "SELECT key, row::text FROM {} WHERE key = ANY(%b::text[])").format(t)
        self._sql_upsert = sql.SQL(
            "INSERT INTO {} (key, row) SELECT k, r::jsonb FROM unnest(%b::text[], %b::text[]) "
            "AS u(k, r) ON CONFLICT (key) DO UPDATE SET row = excluded.row").format(t)
        self._sql_delete = sql.SQL("DELETE FROM {} WHERE key = ANY(%b::text[])").format(t)
        self._sql_position = sql.SQL(
            "INSERT INTO {} (view, topic, partition, next_offset, updated_ms) "
            "SELECT %s, t, p, o, %s FROM unnest(%s::text[], %s::integer[], %s::bigint[]) "
            "AS u(t, p, o) ON CONFLICT (view, topic, partition) DO UPDATE SET "
            "next_offset = excluded.next_offset, updated_ms = excluded.updated_ms").format(pos)
        self._sql_touch = sql.SQL(
            "UPDATE {} SET last_update_ms = %s WHERE view = %s").format(cat)

    @property
    def location(self) -> str:
        qualified = f"{self.schema}.{table_name(self.view)}" if self.schema else table_name(self.view)
        return f"{redact(self.dsn)} table {qualified}"

    # -- reads --------------------------------------------------------------
    def get_encoded(self, key: str) -> str | None:
        found = self._conn.execute(self._sql_get, (key,)).fetchone()
        return None if found is None else str(found[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, Row]:
        """The rows that exist among ``keys``."""
        out: dict[str, Row] = {}
        keys = list(keys)
        for i in range(0, len(keys), _CHUNK):
            for k, v in self._conn.execute(self._sql_get_many, (keys[i : i + _CHUNK],)):
                out[k] = decode_row(v)
        return out

    def query(
        self, where: Mapping[str, Any] | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[tuple[str, Row]]:
        """``(key, row)`` pairs whose top-level fields equal ``where``'s values, by key.

        ``null`` matches a null or absent field; numbers compare by value (1 = 1.0);
        unlike SQLite, ``true`` does not match ``1``.
        """
        check_page(limit, offset)
        clause, params = self._where(where or {})
        found = self._conn.execute(
            sql.SQL("SELECT key, row::text FROM {}{} ORDER BY key LIMIT %s OFFSET %s").format(
                self._table, clause), [*params, limit, offset])
        return [(k, decode_row(v)) for k, v in found]

    def count(self, where: Mapping[str, Any] | None = None) -> int:
        clause, params = self._where(where or {})
        found = self._conn.execute(
            sql.SQL("SELECT count(*) FROM {}{}").format(self._table, clause), params).fetchone()
        return int(found[0]) if found else 0

    def positions(self) -> dict[TopicPartition, StoredPosition]:
        found = self._conn.execute(sql.SQL(
            "SELECT topic, partition, next_offset, updated_ms FROM {} WHERE view = %s"
        ).format(self._positions), (self.view,))
        return {TopicPartition(t, p): StoredPosition(o, u) for t, p, o, u in found}

    def last_update_ms(self) -> int | None:
        found = self._conn.execute(sql.SQL("SELECT last_update_ms FROM {} WHERE view = %s").format(
            self._catalog), (self.view,)).fetchone()
        return None if found is None or found[0] is None else int(found[0])

    @staticmethod
    def _where(where: Mapping[str, Any]) -> tuple[sql.Composable, list[Any]]:
        """Equality tests on top-level fields; ``row -> 'f' = value`` uses the field's index."""
        if not where:
            return sql.SQL(""), []
        check_filters(where)
        parts: list[sql.Composable] = []
        params: list[Any] = []
        for name, value in where.items():
            if value is None:
                parts.append(sql.SQL("row ->> {} IS NULL").format(sql.Literal(name)))
            else:
                parts.append(sql.SQL("row -> {} = %s::jsonb").format(sql.Literal(name)))
                params.append(orjson.dumps(value).decode())
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts), params

    # -- writes -------------------------------------------------------------
    def check_encoded(self, key: str, text: str) -> None:
        """PostgreSQL text and jsonb cannot hold the NUL character."""
        if "\\u0000" in text or "\x00" in key:
            raise ValueError(
                f"row {key!r}: PostgreSQL cannot store the NUL character (\\u0000) in a key "
                "or a jsonb row")

    def commit_encoded(
        self,
        rows: Mapping[str, str | None],
        positions: Mapping[TopicPartition, int],
        *,
        now_ms: int,
    ) -> None:
        """:meth:`commit` for rows already encoded as JSON text: one transaction."""
        upsert_keys = [k for k, v in rows.items() if v is not None]
        upsert_rows = [v for v in rows.values() if v is not None]
        deletes = [k for k, v in rows.items() if v is None]
        conn = self._conn
        with conn.transaction(), conn.cursor() as cur:
            for i in range(0, len(upsert_keys), _CHUNK):
                cur.execute(self._sql_upsert,
                            (upsert_keys[i : i + _CHUNK], upsert_rows[i : i + _CHUNK]))
            for i in range(0, len(deletes), _CHUNK):
                cur.execute(self._sql_delete, (deletes[i : i + _CHUNK],))
            if positions:
                tps = list(positions)
                cur.execute(self._sql_position, (
                    self.view, now_ms, [tp.topic for tp in tps], [tp.partition for tp in tps],
                    [positions[tp] for tp in tps]))
            cur.execute(self._sql_touch, (now_ms, self.view))

    def reset(self) -> None:
        """Forget every row and position (a rebuild starts from here), in one transaction."""
        conn = self._conn
        with conn.transaction():
            conn.execute(sql.SQL("TRUNCATE {}").format(self._table))
            conn.execute(sql.SQL("DELETE FROM {} WHERE view = %s").format(self._positions),
                         (self.view,))
            conn.execute(sql.SQL("UPDATE {} SET last_update_ms = NULL WHERE view = %s").format(
                self._catalog), (self.view,))

    def drop(self) -> None:
        """Delete the view: its table, positions and catalog entry (then close)."""
        conn = self._conn
        with conn.transaction():
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._table))
            conn.execute(sql.SQL("DELETE FROM {} WHERE view = %s").format(self._positions),
                         (self.view,))
            conn.execute(sql.SQL("DELETE FROM {} WHERE view = %s").format(self._catalog),
                         (self.view,))
        self.close()

    def close(self) -> None:
        self._conn.close()

