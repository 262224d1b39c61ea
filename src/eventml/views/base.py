"""The contract of a view's storage: rows and the log positions they reflect, together.

Two backends satisfy :class:`RowStore`: :class:`~eventml.views.store.ViewStore` (the
view's own SQLite file, the default) and
:class:`~eventml.views.pg_store.PostgresViewStore` (a table in PostgreSQL). Either
way :meth:`RowStore.commit` writes changed rows *and* the next positions in one
transaction, which is what makes a view's updates exactly-once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import orjson

from eventml.log.base import TopicPartition
from eventml.views.projection import Row, check_field

MAX_LIMIT = 100_000


class ViewNotFound(LookupError):
    """The view has no storage yet (opened with ``create=False``); the message says where."""


@dataclass(frozen=True, slots=True)
class StoredPosition:
    next_offset: int
    updated_ms: int


@runtime_checkable
class RowStore(Protocol):
    """Where one view's rows and positions live. Not thread-safe; one writer at a time."""

    @property
    def location(self) -> str:
        """Where the view is, for people: a file path or a password-free URL and table."""
        ...

    def get(self, key: str) -> Row | None: ...

    def get_encoded(self, key: str) -> str | None:
        """The row under ``key`` as JSON text (``None`` if there is none)."""
        ...

    def get_many(self, keys: Iterable[str]) -> dict[str, Row]: ...

    def query(
        self, where: Mapping[str, Any] | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[tuple[str, Row]]:
        """``(key, row)`` pairs whose top-level fields equal ``where``'s values, by key."""
        ...

    def count(self, where: Mapping[str, Any] | None = None) -> int: ...

    def positions(self) -> dict[TopicPartition, StoredPosition]: ...

    def last_update_ms(self) -> int | None: ...

    def check_encoded(self, key: str, text: str) -> None:
        """Raise ``ValueError`` if this backend cannot store the row (called at ``put``)."""
        ...

    def commit(
        self, rows: Mapping[str, Row | None], positions: Mapping[TopicPartition, int], *,
        now_ms: int,
    ) -> None:
        """Write changed ``rows`` (``None`` deletes) and the next ``positions`` atomically."""
        ...

    def commit_encoded(
        self, rows: Mapping[str, str | None], positions: Mapping[TopicPartition, int], *,
        now_ms: int,
    ) -> None:
        """:meth:`commit` for rows already encoded as JSON text."""
        ...

    def commit_positions(self, positions: Mapping[TopicPartition, int], *, now_ms: int) -> None: ...

    def reset(self) -> None:
        """Forget every row and position (a rebuild starts from here)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> RowStore: ...

    def __exit__(self, *exc: object) -> None: ...


class JsonRowStore:
    """What every :class:`RowStore` backend derives from its JSON-text primitives
    (``get_encoded``, ``commit_encoded``, ``close``): a backend defines only those."""

    def get_encoded(self, key: str) -> str | None:
        raise NotImplementedError

    def commit_encoded(
        self, rows: Mapping[str, str | None], positions: Mapping[TopicPartition, int], *,
        now_ms: int,
    ) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def get(self, key: str) -> Row | None:
        text = self.get_encoded(key)
        return None if text is None else decode_row(text)

    def commit(
        self, rows: Mapping[str, Row | None], positions: Mapping[TopicPartition, int], *,
        now_ms: int,
    ) -> None:
        """Write changed ``rows`` (``None`` deletes) and the next ``positions`` atomically."""
        self.commit_encoded({k: None if v is None else encode_row(v) for k, v in rows.items()},
                            positions, now_ms=now_ms)

    def commit_positions(self, positions: Mapping[TopicPartition, int], *, now_ms: int) -> None:
        """Positions alone (a batch whose events changed no row)."""
        self.commit_encoded({}, positions, now_ms=now_ms)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode_row(row: Row) -> str:
    """A row as the JSON text stored (``TypeError`` if it is not a JSON object)."""
    if not isinstance(row, dict):
        raise TypeError(f"a row must be a dict (a JSON object), got {type(row).__name__}")
    return orjson.dumps(row).decode()


def decode_row(text: str | bytes) -> Row:
    row: Row = orjson.loads(text)
    return row


def check_page(limit: int, offset: int) -> None:
    if not 0 < limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")


def check_filters(where: Mapping[str, Any]) -> None:
    """Field names usable and values comparable (strings, numbers, booleans, null)."""
    for name, value in where.items():
        check_field(name)
        if value is not None and not isinstance(value, bool | int | float | str):
            raise ValueError(
                f"filter {name}={value!r}: only strings, numbers, booleans and null compare")


def _open_sqlite(target: str | Path, view: str, indexed: Sequence[str], create: bool) -> RowStore:
    from eventml.views.store import ViewStore

    path = Path(target)
    if not create and not path.exists():
        raise ViewNotFound(f"view {view!r} has no table at {path} yet")
    return ViewStore(path, indexed=indexed)


def _open_postgres(target: str | Path, view: str, indexed: Sequence[str], create: bool) -> RowStore:
    from eventml.views.pg_store import PostgresViewStore

    return PostgresViewStore(str(target), view, indexed=indexed, create=create)


Opener = Callable[[str | Path, str, Sequence[str], bool], RowStore]
_BY_SCHEME: dict[str, Opener] = {"postgresql": _open_postgres, "postgres": _open_postgres}


def open_view_store(
    target: str | Path, view: str, indexed: Sequence[str] = (), *, create: bool = True
) -> RowStore:
    """The storage of ``view`` at ``target``: a ``postgresql://`` URL (a table per view in that
    database, :class:`~eventml.views.pg_store.PostgresViewStore`), else the path of the view's
    SQLite file (:class:`~eventml.views.store.ViewStore`).

    With ``create=False`` a view that has no storage yet raises :class:`ViewNotFound`.
    """
    scheme = target.split("://", 1)[0].lower() if isinstance(target, str) and "://" in target else ""
    if scheme and scheme not in _BY_SCHEME:
        raise ValueError(f"unsupported view store URL {target!r}: use postgresql://... or a file path")
    return _BY_SCHEME.get(scheme, _open_sqlite)(target, view, indexed, create)


def is_store_url(target: object) -> bool:
    """Whether ``target`` names a database server (not a file)."""
    return isinstance(target, str) and target.split("://", 1)[0].lower() in _BY_SCHEME
