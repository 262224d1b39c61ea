"""The JSON Schema type of the registry: parse, canonical form, compatibility, validation.

>>> writer = parse('{"type": "object", "properties": {"amount": {"type": "number"}}, '
...                '"additionalProperties": false}')
>>> reader = parse('{"type": "object", "properties": {"amount": {"type": "number"}, '
...                '"currency": {"type": "string", "default": "EUR"}}, "additionalProperties": false}')
>>> reader.incompatibilities(writer)  # a closed writer never carries "currency"
[]
>>> [i.rule for i in writer.incompatibilities(reader)]  # but the reader's documents may
['PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL']
>>> reader.validator()({"amount": "12"})
["/amount: '12' is not of type 'number'"]
>>> reader.fill_defaults({"amount": 12})
{'amount': 12, 'currency': 'EUR'}

Drafts 4, 6, 7 (the default without ``$schema``), 2019-09 and 2020-12 are accepted.
``references`` maps each ``$ref`` URI the schema uses to the referenced schema's text
(Confluent's schema references); nothing is ever fetched from the network.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import orjson
from jsonschema.exceptions import best_match

from eventml.schema._json_compat import check as _check
from eventml.schema._json_compat_containers import shape
from eventml.schema._json_compat_model import At
from eventml.schema._json_validate import compile_validator
from eventml.schema._json_walk import (
    DRAFT7,
    MAX_DEPTH,
    Bundle,
    Dialect,
    SchemaProblem,
    bundle,
    depth,
    dialect_for,
    pointer,
    recoverable,
)
from eventml.schema.errors import Incompatibility, InvalidSchema
from eventml.schema.types import Parser, SchemaType

__all__ = ["JsonSchema", "check", "parse", "schema_for"]

_NO_REFERENCES: Mapping[str, str] = MappingProxyType({})
_MAX_MESSAGE = 300


class JsonSchema:
    """A parsed, valid JSON Schema with the documents it references."""

    schema_type: SchemaType = "JSON"
    __slots__ = ("_bundle", "_canonical", "_validator", "document", "text")

    def __init__(self, text: str, parsed: Bundle) -> None:
        self.text = text
        self.document: Any = parsed.document  # the decoded schema: a dict or a bool
        self._bundle = parsed
        self._canonical: str | None = None
        self._validator: Callable[[Any], list[str]] | None = None

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"JsonSchema({text!r})"

    @property
    def dialect(self) -> str:
        """The draft the schema is read as, e.g. ``"draft7"``."""
        return self._bundle.dialect.name

    @property
    def canonical(self) -> str:
        """The schema as compact JSON with sorted keys (whitespace and key order do not count)."""
        if self._canonical is None:
            self._canonical = orjson.dumps(self.document, option=orjson.OPT_SORT_KEYS).decode()
        return self._canonical

    def incompatibilities(self, writer: JsonSchema) -> list[Incompatibility]:
        """Why documents valid under ``writer`` may fail this schema (empty: they cannot)."""
        if not isinstance(writer, JsonSchema):
            raise TypeError(
                f"a JSON schema is compared with a JSON schema, not {type(writer).__name__}"
            )
        return _check(self._bundle, writer._bundle)

    def validator(self) -> Callable[[Any], list[str]]:
        """A compiled check of a decoded value: ``[]`` when valid, else ``"<pointer>: <error>"``s."""
        if self._validator is None:
            self._validator = compile_validator(self._bundle)
        return self._validator

    def fill_defaults(self, value: Any) -> Any:
        """A copy of ``value`` with each missing property that has a ``default`` filled in,
        in nested objects and array items too (following ``$ref`` and ``allOf``)."""
        result = copy.deepcopy(value)
        _fill(At(self.document, self._bundle.resolver, self._bundle), result, 0)
        return result


def parse(text: str, references: Mapping[str, str] = _NO_REFERENCES) -> JsonSchema:
    """Parse and check a JSON Schema; raise :class:`InvalidSchema` with the reason if it is not one.

    ``references`` maps a ``$ref`` URI the schema uses to the referenced schema's text.
    """
    try:
        return _parse(text, references)
    except InvalidSchema:
        raise
    except SchemaProblem as exc:
        raise InvalidSchema(f"Invalid JSON schema: {_short(str(exc))}") from None
    except RecursionError:
        raise InvalidSchema("Invalid JSON schema: nested too deeply") from None
    except BaseException as exc:  # whatever the input, the caller sees InvalidSchema
        if not recoverable(exc):
            raise
        raise InvalidSchema(
            f"Invalid JSON schema: {_short(f'{type(exc).__name__}: {exc}')}"
        ) from None


def check(reader: JsonSchema, writer: JsonSchema) -> list[Incompatibility]:
    """``reader.incompatibilities(writer)``: why the reader may reject the writer's documents."""
    return reader.incompatibilities(writer)


def _parse(text: str, references: Mapping[str, str]) -> JsonSchema:
    document = _load(text, "")
    dialect = dialect_for(document, DRAFT7)
    _check_meta(document, dialect, "")
    referenced: dict[str, tuple[Any, Dialect]] = {}
    for name, ref_text in references.items():
        if not isinstance(name, str) or not name:
            raise SchemaProblem(f"a reference name must be a non-empty string, got {name!r}")
        where = f"reference {name!r}: "
        doc = _load(ref_text, where)
        try:
            doc_dialect = dialect_for(doc, dialect)
        except SchemaProblem as exc:
            raise SchemaProblem(where + str(exc)) from None
        _check_meta(doc, doc_dialect, where)
        referenced[name] = (doc, doc_dialect)
    return JsonSchema(text, bundle(document, dialect, referenced))


def _load(text: Any, where: str) -> Any:
    if not isinstance(text, str | bytes):
        raise SchemaProblem(f"{where}schema text must be a string, got {type(text).__name__}")
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SchemaProblem(f"{where}not valid JSON: {exc}") from None
    if not isinstance(document, dict | bool):
        kind = "array" if isinstance(document, list) else type(document).__name__
        raise SchemaProblem(f"{where}a schema is a JSON object or a boolean, not {kind}")
    if depth(document) > MAX_DEPTH:
        raise SchemaProblem(f"{where}nested deeper than {MAX_DEPTH} levels")
    return document


def _check_meta(document: Any, dialect: Dialect, where: str) -> None:
    """The document against its draft's meta-schema (``format: regex`` included)."""
    cls = dialect.validator_class
    meta = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)
    with warnings.catch_warnings():  # re.compile's FutureWarnings on odd user patterns
        warnings.simplefilter("ignore", FutureWarning)
        error = best_match(meta.iter_errors(document))
    if error is not None:
        at = pointer(list(error.absolute_path)) or "/"
        raise SchemaProblem(f"{where}{_short(error.message)} at {at}")


def _short(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _fill(at: At, value: Any, level: int) -> None:
    if level > MAX_DEPTH or not isinstance(at.node, dict):
        return
    target = at.ref()
    if target is not None:
        _fill(target, value, level + 1)
        if at.dialect.legacy_ref:
            return
    for sub in at.schemas("allOf"):
        _fill(sub, value, level + 1)
    if isinstance(value, dict):
        for name, schema in at.schema_map("properties").items():
            if name not in value:
                found, default = _default(schema)
                if not found:
                    continue
                value[name] = copy.deepcopy(default)
            _fill(schema, value[name], level + 1)
    elif isinstance(value, list):
        prefix, rest, _, _ = shape(at)
        for i, item in enumerate(value):
            item_schema = prefix[i] if i < len(prefix) else rest
            if item_schema is not None:
                _fill(item_schema, item, level + 1)


def _default(at: At, hops: int = 0) -> tuple[bool, Any]:
    """A property schema's ``default`` (its own, else its ``$ref`` target's)."""
    if isinstance(at.node, dict) and "default" in at.node:
        return True, at.node["default"]
    target = at.ref() if hops < 8 else None
    if target is None:
        return False, None
    return _default(target, hops + 1)


def schema_for(obj: object) -> dict[str, Any]:
    """A JSON Schema dict for ``obj``: a dict (returned as is), a pydantic model class, or
    a dataclass or TypedDict class (through ``pydantic.TypeAdapter``). pydantic's schemas
    get the ``$schema`` of the dialect pydantic writes (2020-12)."""
    if isinstance(obj, dict):
        return obj
    is_class = isinstance(obj, type)
    if not (is_class or typing.is_typeddict(obj)):
        hint = (
            f" (pass the class {type(obj).__name__}, not an instance)"
            if dataclasses.is_dataclass(obj) or hasattr(type(obj), "model_json_schema")
            else ""
        )
        raise TypeError(
            f"schema_for takes a dict, a pydantic model class, a dataclass or a TypedDict, got {type(obj).__name__}{hint}"
        )
    try:
        import pydantic
        from typing_extensions import is_typeddict
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "schema_for needs pydantic for classes: pip install pydantic"
        ) from None
    try:
        if isinstance(obj, type) and issubclass(obj, pydantic.BaseModel):
            return _dialected(obj.model_json_schema())
        if dataclasses.is_dataclass(obj) or is_typeddict(obj):
            adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(obj)  # type: ignore[arg-type]
            return _dialected(adapter.json_schema())
    except pydantic.PydanticUserError as exc:
        raise TypeError(
            f"schema_for cannot describe {getattr(obj, '__name__', obj)!r}: {exc}"
        ) from exc
    raise TypeError(
        f"schema_for takes a dict, a pydantic model class, a dataclass or a TypedDict, got the class {getattr(obj, '__name__', obj)!r}"
    )


def _dialected(document: dict[str, Any]) -> dict[str, Any]:
    """pydantic writes 2020-12 schemas (``prefixItems``, ``$ref`` beside other keywords) but
    does not say so; say it, so they are not read as draft 7."""
    from pydantic.json_schema import GenerateJsonSchema

    return {"$schema": GenerateJsonSchema.schema_dialect, **document}


_PARSER: Parser = parse  # JsonSchema satisfies ParsedSchema: checked by mypy
