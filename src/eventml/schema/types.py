"""What the registry needs from a schema type: parse, canonical form, compatibility, validation.

Each schema type (``AVRO`` in :mod:`eventml.schema.avro`, ``JSON`` in
:mod:`eventml.schema.json_schema`) provides a ``parse(text, references)`` function
returning an object that satisfies :class:`ParsedSchema`. The registry core only
talks to this protocol, so adding a type is adding a module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from eventml.schema.errors import Incompatibility

SchemaType = Literal["AVRO", "JSON"]
SCHEMA_TYPES: tuple[SchemaType, ...] = ("AVRO", "JSON")


@dataclass(frozen=True, slots=True)
class Reference:
    """A named reference to another registered schema (Confluent's ``references`` entries).

    Avro: ``name`` is the full name of the named type the referencing schema uses.
    JSON Schema: ``name`` is the ``$ref`` URI the referencing schema uses.
    """

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


class ParsedSchema(Protocol):
    """A parsed, valid schema of one type."""

    schema_type: SchemaType
    text: str  # the text as registered

    @property
    def canonical(self) -> str:
        """A normalized string: two schemas with equal canonical forms are the same schema."""
        ...

    def incompatibilities(self, writer: Any) -> list[Incompatibility]:
        """Why this schema, as a reader, cannot read all data written with ``writer``.

        ``writer`` is a parsed schema of the same type; an empty list means compatible.
        """
        ...

    def validator(self) -> Callable[[Any], list[str]]:
        """A compiled check of a decoded value: the list of errors (empty when valid)."""
        ...


Parser = Callable[[str, Mapping[str, str]], ParsedSchema]
