"""The AVRO schema type: parse, canonical form, compatibility, validation, binary encoding.

>>> user = parse('{"type": "record", "name": "User", "fields": [{"name": "age", "type": "int"}]}')
>>> user.name, user.decode(user.encode({"age": 42}))
('User', {'age': 42})
>>> older = parse('{"type": "record", "name": "User", "fields": []}')
>>> [i.rule for i in user.incompatibilities(older)]
['READER_FIELD_MISSING_DEFAULT_VALUE']

Parsing and encoding are fastavro's; on top of it this module checks what fastavro lets
through (:mod:`eventml.schema._avro_lint`), keeps its compiled code away from inputs that
would crash or hang it (:mod:`eventml.schema._avro_guard`), and decides compatibility by
the specification's resolution rules (:mod:`eventml.schema._avro_compat`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from typing import Any

import fastavro
from fastavro.validation import ValidationError
from fastavro.validation import validate as _fastavro_validate

from eventml.schema._avro_compat import incompatibilities as _incompatibilities
from eventml.schema._avro_guard import PayloadProblem, Shape, scan_payload, shape, too_deep
from eventml.schema._avro_lint import NAMED_KINDS, PRIMITIVES, SchemaProblem, lint_json, lint_parsed
from eventml.schema.errors import Incompatibility, InvalidSchema
from eventml.schema.types import SchemaType

__all__ = ["AvroDecodeError", "AvroEncodeError", "AvroSchema", "check", "parse"]

_MESSAGE_LIMIT = 300


class AvroDecodeError(ValueError):
    """The bytes are not a value of the writer schema (or cannot be resolved to the reader's)."""


class AvroEncodeError(ValueError):
    """The value cannot be written with the schema; validate it first for every reason."""


class AvroSchema:
    """A parsed, valid Avro schema (build it with :func:`parse`).

    ``parsed`` is fastavro's parsed form with referenced types inlined, usable on its own
    with fastavro; ``name`` is the full name of a named top-level type, else None.
    Equality is by text and references.
    """

    schema_type: SchemaType = "AVRO"
    __slots__ = ("_canonical", "_named", "_shape", "_tree", "name", "parsed", "references", "text")

    def __init__(
        self,
        text: str,
        references: Mapping[str, str],
        tree: Any,
        named: Mapping[str, Any],
        canonical: str,
    ) -> None:
        self.text = text
        self.references: tuple[tuple[str, str], ...] = tuple(sorted(references.items()))
        self._tree, self._named, self._canonical = tree, named, canonical
        self._shape: Shape = shape(tree, named)
        self.parsed: Any = fastavro.parse_schema(_inline(tree, named, set()), named_schemas={})
        self.name: str | None = None
        if isinstance(tree, dict) and tree["type"] in NAMED_KINDS:
            self.name = str(tree["name"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AvroSchema):
            return NotImplemented
        return (self.text, self.references) == (other.text, other.references)

    def __hash__(self) -> int:
        return hash((self.text, self.references))

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"AvroSchema({text!r})"

    @property
    def canonical(self) -> str:
        """The schema JSON with sorted keys, no whitespace, no ``doc``; ``{"type": "int"}`` is ``"int"``."""
        return self._canonical

    def incompatibilities(self, writer: AvroSchema) -> list[Incompatibility]:
        """Why this schema, as the reader, cannot read all data written with ``writer``."""
        if not isinstance(writer, AvroSchema):
            raise TypeError(
                f"an Avro reader needs an Avro writer schema, not {type(writer).__name__}"
            )
        return _incompatibilities(self._tree, self._named, writer._tree, writer._named)

    def validator(self) -> Callable[[Any], list[str]]:
        """A check of a Python value against this schema: the errors found (fastavro stops at the first)."""
        parsed, recursive = self.parsed, self._shape.recursive

        def errors(value: Any) -> list[str]:
            if recursive and too_deep(value):
                return ["value nests too deeply to validate"]
            try:
                _fastavro_validate(value, parsed, raise_errors=True)
            except ValidationError as exc:
                return _validation_messages(exc.errors)
            except Exception as exc:  # fastavro raises assorted errors on odd values
                return [_one_line(f"value cannot be validated: {exc}")]
            return []

        return errors

    def encode(self, value: Any) -> bytes:
        """``value`` in Avro binary (schemaless: no header, no container)."""
        if self._shape.recursive and too_deep(value):
            raise AvroEncodeError("value nests too deeply to encode")
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, self.parsed, value)
        except Exception as exc:
            raise AvroEncodeError(
                _one_line(f"cannot encode value as {self._label()}: {_explain(exc)}")
            ) from exc
        return buffer.getvalue()

    def decode(self, payload: bytes, reader: AvroSchema | None = None) -> Any:
        """The value in ``payload``, written with this schema, read as ``reader`` if given.

        Raises :class:`AvroDecodeError` if the bytes are not exactly one value of this schema.
        """
        data = bytes(payload)
        try:
            if self._shape.needs_scan:
                scan_payload(data, self._tree, self._named)
            buffer = io.BytesIO(data)
            target = None if reader is None or reader is self else reader.parsed
            value = fastavro.schemaless_reader(buffer, self.parsed, target)
        except Exception as exc:
            message = _one_line(
                f"cannot decode {len(data)} byte(s) as {self._label()}: {_explain(exc)}"
            )
            raise AvroDecodeError(message) from exc
        if buffer.tell() != len(data):
            raise AvroDecodeError(
                f"{len(data) - buffer.tell()} byte(s) left over after a {self._label()} value:"
                " the payload was written with another schema"
            )
        return value

    def _label(self) -> str:
        return f"'{self.name}'" if self.name else self.canonical[:60]


def parse(text: str, references: Mapping[str, str] = {}) -> AvroSchema:
    """Parse Avro schema ``text``; ``references`` maps referenced full names to their schema text.

    Raises :class:`InvalidSchema` ("Invalid Avro schema: ...") for any problem.
    """
    try:
        return _parse(text, references)
    except InvalidSchema:
        raise
    except Exception as exc:
        raise InvalidSchema(_one_line(f"Invalid Avro schema: {_explain(exc)}")) from exc


def check(reader: AvroSchema, writer: AvroSchema) -> list[Incompatibility]:
    """Why ``reader`` cannot read all data written with ``writer`` (same as ``reader.incompatibilities``)."""
    return reader.incompatibilities(writer)


def _parse(text: str, references: Mapping[str, str]) -> AvroSchema:
    if not isinstance(text, str):
        raise SchemaProblem(f"schema text must be a string, not {type(text).__name__}")
    named = _parse_references(references)
    document = _load(text)
    lint_json(document)
    tree = fastavro.parse_schema(document, named_schemas=named, _write_hint=False)
    tree = _strip_private(tree)
    lint_parsed(tree, named)
    return AvroSchema(text, references, tree, dict(named), _canonicalize(document))


def _parse_references(references: Mapping[str, str]) -> dict[str, Any]:
    """The named types the references define; a reference may use those of other references."""
    named: dict[str, Any] = {}
    pending = dict(references)
    while pending:
        failures: dict[str, Exception] = {}
        for ref_name, ref_text in pending.items():
            attempt = dict(named)
            try:
                document = _load(ref_text)
                lint_json(document)
                tree = _strip_private(
                    fastavro.parse_schema(document, named_schemas=attempt, _write_hint=False)
                )
                lint_parsed(tree, attempt)
            except fastavro.schema.UnknownType as exc:
                failures[ref_name] = exc
                continue
            except Exception as exc:
                raise SchemaProblem(f"reference '{ref_name}': {_explain(exc)}") from exc
            if ref_name not in attempt:
                raise SchemaProblem(
                    f"reference '{ref_name}' does not define a type named '{ref_name}'"
                )
            named = attempt
        if len(failures) == len(pending):  # no progress: a name nothing defines
            first, failure = next(iter(failures.items()))
            raise SchemaProblem(f"reference '{first}': {_explain(failure)}")
        pending = {n: pending[n] for n in failures}
    return named


def _load(text: str) -> Any:
    def reject(constant: str) -> Any:
        raise SchemaProblem(f"{constant} is not valid JSON")

    try:
        return json.loads(text, parse_constant=reject)
    except json.JSONDecodeError as exc:
        raise SchemaProblem(f"not JSON: {exc}") from exc


def _strip_private(tree: Any) -> Any:
    """fastavro's parsed form without its bookkeeping keys (``__fastavro_parsed``, ...)."""
    if isinstance(tree, dict):
        return {k: v for k, v in tree.items() if not k.startswith("__")}
    return tree


def _inline(node: Any, named: Mapping[str, Any], defined: set[str]) -> Any:
    """``node`` as standalone JSON: each named type defined where first used, in fastavro's order."""
    if isinstance(node, list):
        return [_inline(branch, named, defined) for branch in node]
    if isinstance(node, str):
        if node in PRIMITIVES or node in defined:
            return node
        node = named[node]
    if isinstance(node, dict) and node["type"] in NAMED_KINDS and node["name"] in defined:
        return node["name"]  # defined again inside a referenced type used earlier
    out = dict(node)
    if out["type"] in NAMED_KINDS:
        defined.add(out["name"])
        if "." not in out["name"]:
            out["namespace"] = ""  # keep it out of an enclosing namespace when re-parsed
    if "fields" in out and out["type"] in ("record", "error"):
        out["fields"] = [{**f, "type": _inline(f["type"], named, defined)} for f in out["fields"]]
    for key in ("items", "values"):
        if key in out and out["type"] in ("array", "map"):
            out[key] = _inline(out[key], named, defined)
    return out


def _canonicalize(document: Any) -> str:
    return json.dumps(_normal(document), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _normal(node: Any) -> Any:
    """Schema JSON without ``doc`` and with bare primitives, leaving defaults and other values alone."""
    if isinstance(node, list):
        return [_normal(branch) for branch in node]
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if k != "doc"}
    if out.keys() == {"type"} and out["type"] in PRIMITIVES:
        return out["type"]
    if isinstance(out.get("fields"), list):
        out["fields"] = [
            {**{k: v for k, v in f.items() if k != "doc"}, "type": _normal(f["type"])}
            for f in out["fields"]
        ]
    for key in ("items", "values"):
        if key in out:
            out[key] = _normal(out[key])
    return out


def _explain(exc: BaseException) -> str:
    if isinstance(exc, SchemaProblem | PayloadProblem):
        return str(exc)
    if isinstance(exc, fastavro.schema.UnknownType):
        return f"unknown type or undefined name {getattr(exc, 'name', exc)!r}"
    if isinstance(exc, RecursionError):
        return "schema nested too deeply"
    if isinstance(exc, KeyError):
        return f"missing attribute {exc}"
    if isinstance(exc, EOFError):
        return f"the data ends too soon {exc}".strip()
    if isinstance(exc, ValueError | fastavro.schema.SchemaParseException) and str(exc):
        return str(exc)
    return f"{exc} ({type(exc).__name__})" if str(exc) else type(exc).__name__


def _validation_messages(errors: Any) -> list[str]:
    """One message per place: fastavro reports a value no union branch takes once per branch."""
    expected: dict[tuple[str, str], list[str]] = {}
    for error in errors:
        datum = repr(error.datum)
        if len(datum) > 60:
            datum = datum[:57] + "..."
        expected.setdefault((error.field or "value", datum), []).append(_schema_label(error.schema))
    return [
        _one_line(f"{where}: {datum} is not a valid {' or '.join(labels)}")
        for (where, datum), labels in expected.items()
    ]


def _schema_label(schema: Any) -> str:
    if isinstance(schema, list):
        return "union [" + ", ".join(_schema_label(s) for s in schema) + "]"
    if isinstance(schema, dict):
        kind = str(schema.get("type"))
        if "name" in schema:
            return f"{kind} '{schema['name']}'"
        if "logicalType" in schema:
            return f"{kind} ({schema['logicalType']})"
        if kind in ("array", "map"):
            return kind
        return kind
    return str(schema)


def _one_line(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= _MESSAGE_LIMIT else line[: _MESSAGE_LIMIT - 3] + "..."
