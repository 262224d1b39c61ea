"""The registry as a pure state machine over ``_schemas`` records (no I/O).

Every change is a record: a key naming what changes and a value (``None`` deletes).
:meth:`RegistryState.apply` folds records in log order, so any process that reads
the same log builds the same registry. Commands (:class:`Commands`) read the state
and return what to write; the storage adapter (:mod:`eventml.schema.store`) appends
those records while no other writer can (see there).

Record layout (JSON, like Confluent's own ``_schemas`` topic):

* ``{"keytype": "SCHEMA", "subject": s, "version": v}`` →
  ``{"subject", "version", "id", "schemaType", "schema", "references", "deleted"}``
* ``{"keytype": "CONFIG", "subject": s or null}`` → ``{"compatibilityLevel": level}``
* ``{"keytype": "MODE", "subject": s or null}`` → ``{"mode": mode}``

A record that claims an id already held by another schema, or a (subject, version)
already held by another id, is ignored: the first record in log order wins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, cast, get_args

import orjson

from eventml.schema import compat
from eventml.schema.errors import (
    CompatibilityNotConfigured,
    IncompatibleSchema,
    InvalidMode,
    InvalidSchema,
    InvalidVersion,
    ModeNotConfigured,
    OperationNotPermitted,
    ReferenceExists,
    SchemaNotFound,
    SubjectNotFound,
    SubjectNotSoftDeleted,
    SubjectSoftDeleted,
    VersionNotFound,
    VersionNotSoftDeleted,
    VersionSoftDeleted,
)
from eventml.schema.types import SCHEMA_TYPES, ParsedSchema, Reference, SchemaType

Mode = Literal["READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT"]
MODES: tuple[Mode, ...] = get_args(Mode)
MAX_VERSION = 2**31 - 1
Write = tuple[bytes, bytes | None]  # one record to append: key, value (None deletes)
Parse = Callable[[SchemaType, str, Mapping[str, str]], ParsedSchema]


@dataclass(frozen=True, slots=True)
class StoredSchema:
    """A schema as registered under an id: type, text and references."""

    schema_type: SchemaType
    schema: str
    references: tuple[Reference, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Confluent's shape: ``schemaType`` only when not AVRO, ``references`` when any."""
        out: dict[str, Any] = {"schema": self.schema}
        if self.schema_type != "AVRO":
            out["schemaType"] = self.schema_type
        if self.references:
            out["references"] = [r.to_json() for r in self.references]
        return out


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One version of a subject."""

    subject: str
    version: int
    id: int
    schema: StoredSchema
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "version": self.version, "id": self.id, **self.schema.to_json()}


def parse_version(text: object, *, allow_latest: bool = True) -> int | None:
    """A version as given in a path: ``latest`` or ``-1`` → ``None``; else 1..2^31-1."""
    if allow_latest and (text == "latest" or text == -1 or text == "-1"):
        return None
    try:
        number = int(cast(Any, text))
    except (TypeError, ValueError):
        number = 0
    if isinstance(text, bool) or not 1 <= number <= MAX_VERSION or str(number) != str(text).strip():
        raise InvalidVersion(
            f"The specified version '{text}' is not a valid version id. Allowed values are "
            f"between [1, {MAX_VERSION}] and the string \"latest\""
        )
    return number


def parse_mode(text: object) -> Mode:
    mode = text.upper() if isinstance(text, str) else text
    if mode not in MODES:
        raise InvalidMode(f"Invalid mode {text!r}: use one of {', '.join(MODES)}")
    return mode


def _key(keytype: str, subject: str | None, version: int | None = None) -> bytes:
    body: dict[str, Any] = {"keytype": keytype, "subject": subject, "magic": 1 if version else 0}
    if version is not None:
        body["version"] = version
    return orjson.dumps(body)


class RegistryState:
    """Subjects, versions, ids, configs and modes as of the records applied so far."""

    def __init__(self) -> None:
        self.subjects: dict[str, dict[int, SchemaVersion]] = {}
        self.by_id: dict[int, StoredSchema] = {}
        self.configs: dict[str | None, compat.Level] = {}
        self.modes: dict[str | None, Mode] = {}
        self.max_id = 0
        self.records = 0  # applied, for tests and status

    # -- folding records ---------------------------------------------------------------

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one ``_schemas`` record in; records this version does not know are skipped."""
        self.records += 1
        try:
            k = orjson.loads(key) if key else None
            v = orjson.loads(value) if value is not None else None
        except orjson.JSONDecodeError:
            return
        if not isinstance(k, dict):
            return
        keytype, subject = k.get("keytype"), k.get("subject")
        if keytype == "SCHEMA" and isinstance(subject, str):
            self._apply_schema(subject, k.get("version"), v)
        elif keytype == "CONFIG":
            self._apply_setting(self.configs, subject, v, "compatibilityLevel")
        elif keytype == "MODE":
            self._apply_setting(self.modes, subject, v, "mode")

    def _apply_setting(self, table: dict[Any, Any], subject: Any, v: Any, field: str) -> None:
        if v is None:
            table.pop(subject, None)
        elif isinstance(v, dict) and isinstance(v.get(field), str):
            table[subject] = v[field]

    def _apply_schema(self, subject: str, version: Any, v: Any) -> None:
        if not isinstance(version, int):
            return
        versions = self.subjects.get(subject, {})
        if v is None:  # hard delete of one version
            gone = versions.pop(version, None)
            if not versions:
                self.subjects.pop(subject, None)
            if gone is not None and not self._id_used(gone.id):
                self.by_id.pop(gone.id, None)
            return
        try:
            stored = StoredSchema(
                v.get("schemaType") or "AVRO",
                v["schema"],
                tuple(Reference(r["name"], r["subject"], int(r["version"])) for r in v.get("references") or ()),
            )
            sid = int(v["id"])
        except (KeyError, TypeError, ValueError, AttributeError):
            return
        held = self.by_id.get(sid)
        if held is not None and held != stored:
            return  # the id belongs to another schema: the first record won
        current = versions.get(version)
        if current is not None and current.id != sid:
            return  # the version belongs to another schema: the first record won
        self.by_id[sid] = stored
        self.max_id = max(self.max_id, sid)
        versions[version] = SchemaVersion(subject, version, sid, stored, bool(v.get("deleted")))
        self.subjects[subject] = versions

    def _id_used(self, sid: int) -> bool:
        return any(sv.id == sid for vs in self.subjects.values() for sv in vs.values())


class Commands:
    """Registry operations over a :class:`RegistryState`: reads answer, writes return records.

    ``parse(schema_type, text, references)`` turns text into a :class:`ParsedSchema`
    (see :func:`eventml.schema.registry.parse_schema`); parsed schemas are cached by id.
    """

    def __init__(self, state: RegistryState, parse: Parse) -> None:
        self.state = state
        self._parse = parse
        self._parsed: dict[int, ParsedSchema] = {}

    # -- reads ---------------------------------------------------------------------------

    def subjects(self, deleted: bool = False, prefix: str = "") -> list[str]:
        return sorted(
            s
            for s, vs in self.state.subjects.items()
            if s.startswith(prefix) and any(deleted or not v.deleted for v in vs.values())
        )

    def versions(self, subject: str, deleted: bool = False) -> list[SchemaVersion]:
        """Versions of ``subject``, oldest first (soft-deleted ones only with ``deleted``)."""
        found = [
            v for _, v in sorted(self.state.subjects.get(subject, {}).items()) if deleted or not v.deleted
        ]
        if not found:
            raise SubjectNotFound(f"Subject '{subject}' not found.")
        return found

    def version(self, subject: str, version: object, deleted: bool = False) -> SchemaVersion:
        number = parse_version(version)
        versions = self.versions(subject, deleted=True)
        if number is None:
            live = [v for v in versions if deleted or not v.deleted]
            if not live:
                raise SubjectNotFound(f"Subject '{subject}' not found.")
            return live[-1]
        for v in versions:
            if v.version == number and (deleted or not v.deleted):
                return v
        raise VersionNotFound(f"Version {number} not found.")

    def schema(self, sid: int) -> StoredSchema:
        try:
            return self.state.by_id[sid]
        except KeyError:
            raise SchemaNotFound(f"Schema {sid} not found") from None

    def usages(self, sid: int, deleted: bool = False) -> list[SchemaVersion]:
        """Every (subject, version) registered with id ``sid``."""
        self.schema(sid)
        return sorted(
            (v for vs in self.state.subjects.values() for v in vs.values() if v.id == sid and (deleted or not v.deleted)),
            key=lambda v: (v.subject, v.version),
        )

    def parsed(self, sid: int) -> ParsedSchema:
        """The parsed schema of id ``sid`` (cached)."""
        hit = self._parsed.get(sid)
        if hit is None:
            stored = self.schema(sid)
            hit = self._parse(stored.schema_type, stored.schema, self.resolve(stored.references))
            self._parsed[sid] = hit
        return hit

    def resolve(self, references: Sequence[Reference]) -> dict[str, str]:
        """Name → schema text of every schema ``references`` reach, transitively."""
        out: dict[str, str] = {}
        pending = list(references)
        while pending:
            ref = pending.pop()
            if ref.name in out:
                continue
            try:
                target = self.version(ref.subject, ref.version, deleted=True).schema
            except (SubjectNotFound, VersionNotFound):
                raise InvalidSchema(
                    f"Invalid schema: reference {ref.name!r} points to {ref.subject} version "
                    f"{ref.version}, which is not registered"
                ) from None
            out[ref.name] = target.schema
            pending.extend(target.references)
        return out

    def lookup(self, subject: str, schema: StoredSchema, deleted: bool = False) -> SchemaVersion:
        """The version of ``subject`` holding ``schema`` (compared in canonical form)."""
        versions = self.versions(subject, deleted=deleted)
        wanted = self._canonical(schema)
        for v in reversed(versions):
            if self._same(v.schema, schema) and self.parsed(v.id).canonical == wanted:
                return v
        raise SchemaNotFound("Schema not found")

    def compatibility(self, subject: str | None, default_to_global: bool = True) -> compat.Level:
        if subject is not None and subject in self.state.configs:
            return self.state.configs[subject]
        if subject is not None and not default_to_global:
            raise CompatibilityNotConfigured(f"Subject '{subject}' does not have subject-level compatibility configured")
        return self.state.configs.get(None, compat.DEFAULT_LEVEL)

    def mode(self, subject: str | None, default_to_global: bool = True) -> Mode:
        if subject is not None and subject in self.state.modes:
            return self.state.modes[subject]
        if subject is not None and not default_to_global:
            raise ModeNotConfigured(f"Subject '{subject}' does not have subject-level mode configured")
        return self.state.modes.get(None, "READWRITE")

    def test(self, subject: str, schema: StoredSchema, version: object = "latest") -> list[str]:
        """Dry run: the reasons ``schema`` may not be registered under ``subject`` (empty: ok)."""
        parsed = self._parse_new(schema)
        level = self.compatibility(subject)
        if version in ("latest", -1, "-1"):
            try:
                previous = [self.parsed(v.id) for v in self.versions(subject)]
            except SubjectNotFound:
                previous = []
        else:
            previous = [self.parsed(self.version(subject, version).id)]
            level = cast(compat.Level, level.replace("_TRANSITIVE", ""))
        return [str(r) for r in compat.check(level, parsed, previous)]

    # -- writes: each returns (result, records to append) ---------------------------------

    def register(
        self, subject: str, schema: StoredSchema, *, sid: int | None = None, version: int | None = None
    ) -> tuple[SchemaVersion, list[Write]]:
        """Register ``schema`` under ``subject`` (idempotent); ``sid``/``version`` need IMPORT mode."""
        mode = self.mode(subject)
        if mode.startswith("READONLY"):
            raise OperationNotPermitted(f"Subject {subject} is in read-only mode")
        if (sid is not None or version is not None) and mode != "IMPORT":
            raise OperationNotPermitted(
                f"Subject {subject} is not in import mode: an id or version can be given only in IMPORT mode"
            )
        parsed = self._parse_new(schema)
        live = [v for v in self.state.subjects.get(subject, {}).values() if not v.deleted]
        live.sort(key=lambda v: v.version)
        for v in live:
            same = self._same(v.schema, schema) and self.parsed(v.id).canonical == parsed.canonical
            if same and sid in (None, v.id):
                return v, []
        if mode != "IMPORT":
            level = self.compatibility(subject)
            reasons = compat.check(level, parsed, [self.parsed(v.id) for v in live])
            if reasons:
                raise IncompatibleSchema(compat.describe(level, reasons), reasons)
        if sid is None:
            sid = self._existing_id(schema, parsed.canonical) or self.state.max_id + 1
        elif sid in self.state.by_id and self._canonical(self.state.by_id[sid]) != parsed.canonical:
            raise OperationNotPermitted(f"Schema id {sid} is already used by a different schema")
        taken = self.state.subjects.get(subject, {})
        if version is None:
            version = max(taken, default=0) + 1
        elif version in taken:
            raise OperationNotPermitted(f"Version {version} of subject {subject} already exists")
        registered = SchemaVersion(subject, version, sid, schema)
        return registered, [self._schema_record(registered)]  # parsed() caches it once applied

    def delete_subject(self, subject: str, permanent: bool = False) -> tuple[list[int], list[Write]]:
        self._writable(subject)
        versions = self.versions(subject, deleted=True)
        live = [v for v in versions if not v.deleted]
        if not permanent:
            if not live:
                raise SubjectSoftDeleted(
                    f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
                )
            for v in live:
                self._not_referenced(v)
            return [v.version for v in live], [self._schema_record(replace(v, deleted=True)) for v in live]
        if live:
            raise SubjectNotSoftDeleted(
                f"Subject '{subject}' was not deleted first before being permanently deleted"
            )
        writes: list[Write] = [(_key("SCHEMA", subject, v.version), None) for v in versions]
        for keytype, table in (("CONFIG", self.state.configs), ("MODE", self.state.modes)):
            if subject in table:
                writes.append((_key(keytype, subject), None))
        return [v.version for v in versions], writes

    def delete_version(self, subject: str, version: object, permanent: bool = False) -> tuple[int, list[Write]]:
        self._writable(subject)
        number = parse_version(version)
        target = self.version(subject, "latest" if number is None else number, deleted=permanent or number is not None)
        if target.deleted and not permanent:
            raise VersionSoftDeleted(
                f"Subject '{subject}' Version {target.version} was soft deleted. Set permanent=true to delete permanently"
            )
        self._not_referenced(target)
        if not permanent:
            return target.version, [self._schema_record(replace(target, deleted=True))]
        if not target.deleted:
            raise VersionNotSoftDeleted(
                f"Subject '{subject}' Version {target.version} was not deleted first before being permanently deleted"
            )
        return target.version, [(_key("SCHEMA", subject, target.version), None)]

    def set_compatibility(self, subject: str | None, level: object) -> tuple[compat.Level, list[Write]]:
        if subject is not None:
            self._writable(subject)
        parsed = compat.parse_level(level)
        return parsed, [(_key("CONFIG", subject), orjson.dumps({"compatibilityLevel": parsed}))]

    def delete_compatibility(self, subject: str) -> tuple[compat.Level, list[Write]]:
        level = self.compatibility(subject, default_to_global=False)
        return level, [(_key("CONFIG", subject), None)]

    def set_mode(self, subject: str | None, mode: object, force: bool = False) -> tuple[Mode, list[Write]]:
        parsed = parse_mode(mode)
        if parsed == "IMPORT" and not force:
            busy = self.subjects() if subject is None else ([subject] if subject in self.subjects() else [])
            if busy:
                raise OperationNotPermitted(
                    "Cannot import since found existing subjects; set force=true to switch to IMPORT anyway"
                )
        return parsed, [(_key("MODE", subject), orjson.dumps({"mode": parsed}))]

    def delete_mode(self, subject: str) -> tuple[Mode, list[Write]]:
        mode = self.mode(subject, default_to_global=False)
        return mode, [(_key("MODE", subject), None)]

    # -- helpers -------------------------------------------------------------------------

    def _parse_new(self, schema: StoredSchema) -> ParsedSchema:
        if schema.schema_type not in SCHEMA_TYPES:
            raise InvalidSchema(
                f"Invalid schema: schema type {schema.schema_type!r} is not supported; use AVRO or JSON"
            )
        return self._parse(schema.schema_type, schema.schema, self.resolve(schema.references))

    def _canonical(self, schema: StoredSchema) -> str:
        return self._parse_new(schema).canonical

    def _existing_id(self, schema: StoredSchema, canonical: str) -> int | None:
        for sid, stored in sorted(self.state.by_id.items()):
            if self._same(stored, schema) and self.parsed(sid).canonical == canonical:
                return sid
        return None

    @staticmethod
    def _same(a: StoredSchema, b: StoredSchema) -> bool:
        """Same type and references: worth comparing canonical forms."""
        return a.schema_type == b.schema_type and a.references == b.references

    def _writable(self, subject: str) -> None:
        if self.mode(subject).startswith("READONLY"):
            raise OperationNotPermitted(f"Subject {subject} is in read-only mode")

    def _not_referenced(self, target: SchemaVersion) -> None:
        for vs in self.state.subjects.values():
            for v in vs.values():
                if v.deleted:
                    continue
                for ref in v.schema.references:
                    if ref.subject == target.subject and ref.version == target.version:
                        raise ReferenceExists(
                            f"One or more references exist to the schema {{subject={target.subject}, "
                            f"version={target.version}}} (from {v.subject} version {v.version})"
                        )

    @staticmethod
    def _schema_record(v: SchemaVersion) -> Write:
        value = {
            "subject": v.subject,
            "version": v.version,
            "id": v.id,
            "schemaType": v.schema.schema_type,
            "schema": v.schema.schema,
            "references": [r.to_json() for r in v.schema.references],
            "deleted": v.deleted,
        }
        return _key("SCHEMA", v.subject, v.version), orjson.dumps(value)
