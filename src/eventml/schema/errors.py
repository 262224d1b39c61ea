"""Registry errors, each carrying the HTTP status and error code Confluent Schema Registry uses.

The REST layer turns any :class:`SchemaError` into ``{"error_code": code, "message": str(e)}``
with ``status``; the library raises the same classes, so both speak one vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class SchemaError(Exception):
    """Base of every registry error."""

    status: int = 500
    code: int = 50001


class InvalidSchema(SchemaError):
    """The schema text does not parse (the message is the parser's)."""

    status, code = 422, 42201


class InvalidVersion(SchemaError):
    status, code = 422, 42202


class InvalidCompatibilityLevel(SchemaError):
    status, code = 422, 42203


class InvalidMode(SchemaError):
    status, code = 422, 42204


class OperationNotPermitted(SchemaError):
    """The registry or subject mode forbids this write (e.g. READONLY)."""

    status, code = 422, 42205


class ReferenceExists(SchemaError):
    """The version is referenced by another schema and cannot be deleted."""

    status, code = 422, 42206


class SubjectNotFound(SchemaError):
    status, code = 404, 40401


class VersionNotFound(SchemaError):
    status, code = 404, 40402


class SchemaNotFound(SchemaError):
    status, code = 404, 40403


class SubjectSoftDeleted(SchemaError):
    status, code = 404, 40404


class SubjectNotSoftDeleted(SchemaError):
    status, code = 404, 40405


class VersionSoftDeleted(SchemaError):
    status, code = 404, 40406


class VersionNotSoftDeleted(SchemaError):
    status, code = 404, 40407


class CompatibilityNotConfigured(SchemaError):
    status, code = 404, 40408


class ModeNotConfigured(SchemaError):
    status, code = 404, 40409


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One reason two schemas are incompatible: the rule broken, where, and a readable message.

    ``rule`` is an upper-case identifier such as ``READER_FIELD_MISSING_DEFAULT_VALUE`` (Avro)
    or ``REQUIRED_PROPERTY_ADDED`` (JSON Schema); ``path`` is a JSON pointer into the reader
    schema (Avro) or the schema being checked (JSON Schema); ``field`` names the field or
    property concerned when there is one.
    """

    rule: str
    path: str
    message: str
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.rule} at {self.path or '/'}: {self.message}"


class IncompatibleSchema(SchemaError):
    """The schema breaks the subject's compatibility level; ``reasons`` say how."""

    status, code = 409, 409

    def __init__(self, message: str, reasons: Sequence[Incompatibility] = ()) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons)
