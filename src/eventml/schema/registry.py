"""The schema registry: subjects, versions, global ids and compatibility, kept on the log.

>>> from eventml.log.memory import MemoryLog
>>> registry = SchemaRegistry(MemoryLog())
>>> v1 = registry.register("users-value", '{"type": "object", "properties": {"age": {"type": "integer"}}}', "JSON")
>>> (v1.id, v1.version)
(1, 1)
>>> registry.register("users-value", '{"properties": {"age": {"type": "integer"}}, "type": "object"}', "JSON").id
1

The same operations back the Confluent-compatible REST API (:mod:`eventml.schema.api`)
and the ``eventml schemas`` CLI. Reads are served from memory and refreshed from the
log when older than ``stale_after_s`` or when an id is unknown; writes go through
:class:`~eventml.schema.store.LogStore`.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from eventml.log.base import Log
from eventml.schema import compat
from eventml.schema.core import Commands, Mode, RegistryState, SchemaVersion, StoredSchema, Write
from eventml.schema.errors import InvalidSchema, SchemaNotFound, SubjectNotFound
from eventml.schema.store import TOPIC, LogStore
from eventml.schema.types import ParsedSchema, Reference, SchemaType

T = TypeVar("T")

_PARSERS: dict[str, Any] = {
    "AVRO": "eventml.schema.avro:parse",
    "JSON": "eventml.schema.json_schema:parse",
}


def parse_schema(schema_type: str, text: str, references: Mapping[str, str] | None = None) -> ParsedSchema:
    """Parse ``text`` as a schema of ``schema_type`` (AVRO or JSON); :class:`InvalidSchema` if not."""
    parser = _PARSERS.get(schema_type)
    if parser is None:
        raise InvalidSchema(
            f"Invalid schema: schema type {schema_type!r} is not supported; use AVRO or JSON"
        )
    if isinstance(parser, str):
        module, _, attr = parser.partition(":")
        parser = _PARSERS[schema_type] = getattr(importlib.import_module(module), attr)
    if not isinstance(text, str):
        raise InvalidSchema(f"Invalid schema: the schema must be a string, got {type(text).__name__}")
    result: ParsedSchema = parser(text, dict(references or {}))
    return result


def stored(
    schema: str, schema_type: str = "AVRO", references: Iterable[Reference | Mapping[str, Any]] = ()
) -> StoredSchema:
    """A :class:`StoredSchema` from API-shaped parts (references as objects or dicts)."""
    refs: list[Reference] = []
    for r in references:
        if isinstance(r, Reference):
            refs.append(r)
            continue
        try:
            refs.append(Reference(str(r["name"]), str(r["subject"]), int(r["version"])))
        except (KeyError, TypeError, ValueError):
            raise InvalidSchema(
                f"Invalid schema: a reference needs name, subject and version, got {r!r}"
            ) from None
    kind = (schema_type or "AVRO").upper()
    return StoredSchema(kind, schema, tuple(refs))  # type: ignore[arg-type]


class SchemaRegistry:
    """A registry over ``log``'s ``topic`` (default ``_schemas``)."""

    def __init__(
        self,
        log: Log,
        *,
        topic: str = TOPIC,
        stale_after_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.state = RegistryState()
        self.commands = Commands(self.state, parse_schema)
        self.store = LogStore(log, topic)
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._lock = threading.RLock()
        self._refreshed = -float("inf")
        self.refresh()

    # -- plumbing ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Fold in everything other writers appended."""
        with self._lock:
            self.store.catch_up(self.state)
            self._refreshed = self._clock()

    def _read(self, fn: Callable[[], T]) -> T:
        with self._lock:
            if self._clock() - self._refreshed > self.stale_after_s:
                self.refresh()
            return fn()

    def _write(self, plan: Callable[[], tuple[T, list[Write]]]) -> T:
        with self._lock:
            result = self.store.write(self.state, plan)
            self._refreshed = self._clock()
            return result

    # -- schemas by id (the deserializers' hot path) -------------------------------------

    def schema_by_id(self, sid: int) -> StoredSchema:
        """The schema registered under ``sid``; refreshes once before saying :class:`SchemaNotFound`."""
        with self._lock:
            found = self.state.by_id.get(sid)
            if found is None:
                self.refresh()
                found = self.commands.schema(sid)
            return found

    def parsed_by_id(self, sid: int) -> ParsedSchema:
        """The parsed schema of ``sid`` (cached), e.g. to decode or validate a frame's payload."""
        with self._lock:
            self.schema_by_id(sid)
            return self.commands.parsed(sid)

    def usages(self, sid: int, deleted: bool = False) -> list[SchemaVersion]:
        with self._lock:
            self.schema_by_id(sid)
            return self.commands.usages(sid, deleted)

    # -- subjects and versions -----------------------------------------------------------

    def subjects(self, deleted: bool = False, prefix: str = "") -> list[str]:
        return self._read(lambda: self.commands.subjects(deleted, prefix))

    def versions(self, subject: str, deleted: bool = False) -> list[SchemaVersion]:
        return self._read(lambda: self.commands.versions(subject, deleted))

    def version(self, subject: str, version: object = "latest", deleted: bool = False) -> SchemaVersion:
        return self._read(lambda: self.commands.version(subject, version, deleted))

    def lookup(
        self, subject: str, schema: str, schema_type: str = "AVRO",
        references: Sequence[Reference | Mapping[str, Any]] = (), deleted: bool = False,
    ) -> SchemaVersion:
        """The version of ``subject`` that holds ``schema``: :class:`SchemaNotFound` if none."""
        wanted = stored(schema, schema_type, references)
        return self._read(lambda: self.commands.lookup(subject, wanted, deleted))

    def register(
        self, subject: str, schema: str, schema_type: str = "AVRO",
        references: Sequence[Reference | Mapping[str, Any]] = (),
        *, sid: int | None = None, version: int | None = None,
    ) -> SchemaVersion:
        """Register ``schema`` under ``subject`` (a no-op returning the existing version if there).

        Raises :class:`~eventml.schema.errors.InvalidSchema` (422/42201) for a schema that
        does not parse and :class:`~eventml.schema.errors.IncompatibleSchema` (409) for one
        that breaks the subject's compatibility level.
        """
        wanted = stored(schema, schema_type, references)
        if sid is None and version is None:  # already there: no writer lock (which fences others)
            try:
                found = self._read(lambda: self.commands.lookup(subject, wanted))
                if not self.commands.mode(subject).startswith("READONLY"):
                    return found
            except (SubjectNotFound, SchemaNotFound):
                pass
        return self._write(lambda: self.commands.register(subject, wanted, sid=sid, version=version))

    def check(
        self, subject: str, schema: str, schema_type: str = "AVRO",
        references: Sequence[Reference | Mapping[str, Any]] = (), version: object = "latest",
    ) -> list[str]:
        """Dry run of :meth:`register`'s compatibility check: the reasons it would fail."""
        wanted = stored(schema, schema_type, references)
        return self._read(lambda: self.commands.test(subject, wanted, version))

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        return self._write(lambda: self.commands.delete_subject(subject, permanent))

    def delete_version(self, subject: str, version: object, permanent: bool = False) -> int:
        return self._write(lambda: self.commands.delete_version(subject, version, permanent))

    # -- configuration -------------------------------------------------------------------

    def compatibility(self, subject: str | None = None, default_to_global: bool = True) -> compat.Level:
        return self._read(lambda: self.commands.compatibility(subject, default_to_global))

    def set_compatibility(self, level: str, subject: str | None = None) -> compat.Level:
        return self._write(lambda: self.commands.set_compatibility(subject, level))

    def delete_compatibility(self, subject: str) -> compat.Level:
        return self._write(lambda: self.commands.delete_compatibility(subject))

    def mode(self, subject: str | None = None, default_to_global: bool = True) -> Mode:
        return self._read(lambda: self.commands.mode(subject, default_to_global))

    def set_mode(self, mode: str, subject: str | None = None, force: bool = False) -> Mode:
        return self._write(lambda: self.commands.set_mode(subject, mode, force))

    def delete_mode(self, subject: str) -> Mode:
        return self._write(lambda: self.commands.delete_mode(subject))


def schema_types() -> list[SchemaType]:
    return ["AVRO", "JSON"]
