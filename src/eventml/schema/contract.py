"""Topic data contracts: a schema bound to a topic, checked when values are written and read.

>>> from eventml.log.memory import MemoryLog
>>> from eventml.schema import SchemaRegistry
>>> schema = {"type": "object", "properties": {"amount": {"type": "number"}},
...           "required": ["amount"]}
>>> bound = contract_of(schema).bind(SchemaRegistry(MemoryLog()), "payments")
>>> frame = bound.encode({"amount": 12.5})
>>> frame[:5], bound.decode(frame)
(b'\\x00\\x00\\x00\\x00\\x01', {'amount': 12.5})
>>> bound.decode(b'{"amount": "twelve"}')
Traceback (most recent call last):
...
eventml.schema.contract.ContractViolation: payments: the value breaks schema 1 of payments-value: ...

A :class:`Contract` is configuration (what schema, which subject, framed or not);
:meth:`Contract.bind` registers it (or looks it up) and returns a
:class:`BoundContract` whose ``encode``/``decode`` do the work:

* **encode** validates the value against the topic's schema and writes a Confluent
  frame (magic byte 0, schema id, payload: Avro binary or UTF-8 JSON), or bare JSON
  when ``framed=False``.
* **decode** reads a frame with the writer's schema, found by id in the registry,
  and *upcasts* it to the topic's schema (the reader): Avro by schema resolution,
  JSON by filling defaults, then validates. A JSON contract also accepts bare JSON
  (no frame), validated against the topic's schema.

Every failure raises :class:`ContractViolation` (a ``ValueError``) carrying the
validation errors, which the engine dead-letters with the record's provenance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from eventml.schema.errors import SchemaError
from eventml.schema.types import ParsedSchema, SchemaType
from eventml.schema.wire import FrameError, decode_frame, frame_header

_MAX_ERRORS = 5
_AVRO_NAMED = ("record", "enum", "fixed")


class ContractViolation(ValueError):
    """A value does not meet its topic's contract; ``errors`` lists why."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


@dataclass(frozen=True, slots=True)
class Contract:
    """A schema for a topic's values.

    ``subject`` defaults to ``TOPIC-value`` (Confluent's TopicNameStrategy).
    ``auto_register`` registers the schema when the contract is bound (like
    Confluent's serializers); with ``False`` it must already be registered.
    ``framed=False`` (JSON only) writes bare JSON instead of Confluent frames.
    """

    schema_type: SchemaType
    text: str
    subject: str | None = None
    auto_register: bool = True
    framed: bool = True

    def __post_init__(self) -> None:
        if self.schema_type == "AVRO" and not self.framed:
            raise ValueError("an Avro contract must be framed: readers need the writer's schema id")

    def bind(self, registry: Any, topic: str) -> BoundContract:
        """Register (or look up) the schema in ``registry`` for ``topic``; ready to encode/decode."""
        subject = self.subject or f"{topic}-value"
        if self.auto_register:
            version = registry.register(subject, self.text, self.schema_type)
        else:
            version = registry.lookup(subject, self.text, self.schema_type)
        return BoundContract(self, topic, subject, version.id, registry)


def contract_of(
    schema: Any,
    *,
    schema_type: SchemaType | None = None,
    subject: str | None = None,
    auto_register: bool = True,
    framed: bool = True,
) -> Contract:
    """A :class:`Contract` from what users have at hand.

    ``schema`` may be a :class:`Contract` (returned as is), a JSON Schema or Avro
    schema as a dict or JSON text, a pydantic model, a dataclass or a TypedDict (a
    JSON Schema is derived). Avro is recognized by a named type (``record``, ``enum``,
    ``fixed``) with a ``name``, or forced with ``schema_type="AVRO"``.
    """
    if isinstance(schema, Contract):
        return schema
    text: str
    if isinstance(schema, str):
        text = schema
        try:
            document = orjson.loads(schema)
        except orjson.JSONDecodeError as e:
            raise ValueError(f"the schema is not JSON: {e}") from None
    elif isinstance(schema, dict):
        document, text = schema, orjson.dumps(schema).decode()
    else:
        from eventml.schema.json_schema import schema_for

        document = schema_for(schema)
        text = orjson.dumps(document).decode()
        schema_type = schema_type or "JSON"
    if schema_type is None:
        named = isinstance(document, dict) and document.get("type") in _AVRO_NAMED and "name" in document
        schema_type = "AVRO" if named or isinstance(document, list) else "JSON"
    return Contract(schema_type, text, subject, auto_register, framed)


class BoundContract:
    """A contract registered for one topic: its schema id and the checks built from it."""

    def __init__(self, contract: Contract, topic: str, subject: str, schema_id: int, registry: Any) -> None:
        self.contract = contract
        self.topic = topic
        self.subject = subject
        self.schema_id = schema_id
        self.registry = registry
        self.schema: ParsedSchema = registry.parsed_by_id(schema_id)
        self._prefix = frame_header(schema_id)
        self._validate = self.schema.validator()
        self._readers: dict[int, Callable[[bytes], Any]] = {}
        self.encode: Callable[[Any], bytes] = (
            self._encode_avro if contract.schema_type == "AVRO" else self._encode_json
        )

    # -- writing -----------------------------------------------------------------------

    def _encode_json(self, value: Any) -> bytes:
        errors = self._validate(value)
        if errors:
            raise self._violation(errors)
        try:
            payload = orjson.dumps(value)
        except TypeError as e:
            raise ContractViolation(f"{self.topic}: the value cannot be written as JSON: {e}") from None
        return self._prefix + payload if self.contract.framed else payload

    def _encode_avro(self, value: Any) -> bytes:
        errors = self._validate(value)
        if errors:
            raise self._violation(errors)
        try:
            payload: bytes = self.schema.encode(value)  # type: ignore[attr-defined]
            return self._prefix + payload
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise self._violation([f"{type(e).__name__}: {e}"]) from None

    # -- reading -----------------------------------------------------------------------

    def decode(self, raw: bytes) -> Any:
        """The value of one record, upcast to this topic's schema and validated."""
        if raw[:1] != b"\x00":
            if self.contract.schema_type == "AVRO":
                raise ContractViolation(
                    f"{self.topic}: not a schema registry frame (first byte {raw[:1]!r}, expected 0x00)"
                )
            return self._checked(_loads(self.topic, raw), self.schema_id)
        try:
            frame = decode_frame(raw)
        except FrameError as e:
            raise ContractViolation(f"{self.topic}: {e}") from None
        reader = self._readers.get(frame.schema_id)
        if reader is None:
            reader = self._readers[frame.schema_id] = self._reader_for(frame.schema_id)
        return reader(frame.payload)

    def _reader_for(self, writer_id: int) -> Callable[[bytes], Any]:
        try:
            writer = self.registry.parsed_by_id(writer_id)
        except SchemaError as e:
            message = f"{self.topic}: unknown schema id {writer_id} ({e})"

            def unknown(payload: bytes) -> Any:
                raise ContractViolation(message)

            return unknown
        if writer.schema_type != self.schema.schema_type:
            mismatch = (
                f"{self.topic}: the frame's schema {writer_id} is {writer.schema_type}, "
                f"the topic's is {self.schema.schema_type}"
            )

            def wrong_type(payload: bytes) -> Any:
                raise ContractViolation(mismatch)

            return wrong_type
        if self.schema.schema_type == "AVRO":
            return self._avro_reader(writer, writer_id)
        if writer_id == self.schema_id:
            return lambda payload: self._checked(_loads(self.topic, payload), writer_id)
        fill = self.schema.fill_defaults  # type: ignore[attr-defined]
        return lambda payload: self._checked(fill(_loads(self.topic, payload)), writer_id)

    def _avro_reader(self, writer: Any, writer_id: int) -> Callable[[bytes], Any]:
        reader = None if writer_id == self.schema_id else self.schema

        def read(payload: bytes) -> Any:
            try:
                return writer.decode(payload, reader)
            except ValueError as e:
                raise ContractViolation(
                    f"{self.topic}: cannot read the Avro payload with schema {writer_id}: {e}",
                    [str(e)],
                ) from None

        return read

    def _checked(self, value: Any, writer_id: int) -> Any:
        errors = self._validate(value)
        if errors:
            raise self._violation(errors, writer_id)
        return value

    def _violation(self, errors: list[str], writer_id: int | None = None) -> ContractViolation:
        shown = "; ".join(errors[:_MAX_ERRORS])
        more = f" (and {len(errors) - _MAX_ERRORS} more)" if len(errors) > _MAX_ERRORS else ""
        via = "" if writer_id in (None, self.schema_id) else f" (written with schema {writer_id})"
        return ContractViolation(
            f"{self.topic}: the value breaks schema {self.schema_id} of {self.subject}{via}: {shown}{more}",
            errors,
        )


def _loads(topic: str, payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise ContractViolation(f"{topic}: the value is not JSON: {e}", [str(e)]) from None
