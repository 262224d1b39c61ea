"""What the Avro specification requires of a schema that fastavro's parser does not check (pure).

:func:`lint_json` runs on the schema JSON before fastavro sees it, so malformed input
gets a precise message instead of a ``KeyError`` from deep inside the parser: required
attributes and their JSON types, names, duplicate field names, fixed sizes.
:func:`lint_parsed` runs on fastavro's parsed form, where every name is a full name:
duplicate union branches, nested unions, and default values checked deeply against
their field's type. Both raise :class:`SchemaProblem` with a one-line message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ORDERS = frozenset({"ascending", "descending", "ignore"})
_MAX_JSON_DEPTH = 400  # schema JSON nesting; the data-depth limit is enforced separately
_INT_RANGE = {"int": 1 << 31, "long": 1 << 63}


class SchemaProblem(ValueError):
    """The schema breaks a rule of the Avro specification; the message says which."""


def kind_of(node: Any, named: Mapping[str, Any]) -> tuple[str, Any]:
    """The kind of a parsed schema node (a primitive, ``record``, ``union``, ...) and its definition."""
    if isinstance(node, list):
        return "union", node
    if isinstance(node, str):
        if node in PRIMITIVES:
            return node, node
        node = named[node]
    kind = node["type"]
    return ("record" if kind == "error" else kind), node


# --- before fastavro: the JSON's shape ------------------------------------------------------


def lint_json(node: Any, depth: int = 0) -> None:
    """Check the structure of schema JSON ``node``; raises :class:`SchemaProblem`."""
    if depth > _MAX_JSON_DEPTH:
        raise SchemaProblem(f"schema nested more than {_MAX_JSON_DEPTH} levels deep")
    if isinstance(node, str):
        return
    if isinstance(node, list):
        for branch in node:
            if isinstance(branch, list):
                raise SchemaProblem("a union may not immediately contain another union")
            lint_json(branch, depth + 1)
        return
    if not isinstance(node, dict):
        raise SchemaProblem(f"a schema is a JSON string, object or array, not {_json_type(node)}")
    if "type" not in node:
        raise SchemaProblem(f"schema object has no 'type': {_short(node)}")
    kind = node["type"]
    if not isinstance(kind, str):
        raise SchemaProblem(f"'type' must be a string, got {_json_type(kind)}: {_short(node)}")
    if kind in NAMED_KINDS:
        _lint_name(node, kind)
    if kind in ("record", "error"):
        _lint_fields(node, depth)
    elif kind == "enum":
        symbols = node.get("symbols")
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise SchemaProblem(f"enum '{node['name']}' needs 'symbols', a list of strings")
        if "default" in node and not isinstance(node["default"], str):
            raise SchemaProblem(f"enum '{node['name']}' default must be one of its symbols")
    elif kind == "fixed":
        size = node.get("size")
        if type(size) is not int or size < 0:
            raise SchemaProblem(f"fixed '{node['name']}' needs 'size', a non-negative integer")
    elif kind in ("array", "map"):
        key = "items" if kind == "array" else "values"
        if key not in node:
            raise SchemaProblem(f"{kind} schema has no '{key}': {_short(node)}")
        lint_json(node[key], depth + 1)


def _lint_name(node: dict[str, Any], kind: str) -> None:
    name, namespace = node.get("name"), node.get("namespace")
    if not isinstance(name, str) or not _is_full_name(name):
        raise SchemaProblem(
            f"{kind} needs a 'name' made of [A-Za-z_][A-Za-z0-9_]* parts, got {name!r}"
        )
    if name.rpartition(".")[2] in PRIMITIVES:
        raise SchemaProblem(f"{kind} may not be named after the primitive type {name!r}")
    if namespace is not None and not (
        isinstance(namespace, str) and (namespace == "" or _is_full_name(namespace))
    ):
        raise SchemaProblem(f"{kind} '{name}' has an invalid namespace {namespace!r}")
    _lint_aliases(node, f"{kind} '{name}'")


def _lint_fields(node: dict[str, Any], depth: int) -> None:
    record = node["name"]
    fields = node.get("fields")
    if not isinstance(fields, list):
        raise SchemaProblem(f"record '{record}' needs 'fields', a list")
    seen: set[str] = set()
    for field in fields:
        if not isinstance(field, dict):
            raise SchemaProblem(
                f"record '{record}' has a field that is not an object: {_short(field)}"
            )
        name = field.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SchemaProblem(f"record '{record}' has a field with an invalid name {name!r}")
        if name in seen:
            raise SchemaProblem(f"record '{record}' has two fields named '{name}'")
        seen.add(name)
        if "type" not in field:
            raise SchemaProblem(f"field '{name}' of record '{record}' has no 'type'")
        order = field.get("order", "ascending")
        if order not in _ORDERS:
            raise SchemaProblem(
                f"field '{name}' of record '{record}' has an invalid order {order!r}"
            )
        _lint_aliases(field, f"field '{name}' of record '{record}'")
        lint_json(field["type"], depth + 1)


def _lint_aliases(node: dict[str, Any], what: str) -> None:
    aliases = node.get("aliases", [])
    if not isinstance(aliases, list) or not all(
        isinstance(a, str) and _is_full_name(a) for a in aliases
    ):
        raise SchemaProblem(f"{what} has invalid 'aliases': expected a list of names")


def _is_full_name(name: str) -> bool:
    return all(_NAME.fullmatch(part) for part in name.split("."))


# --- after fastavro: unions and defaults, with names resolved --------------------------------


def lint_parsed(node: Any, named: Mapping[str, Any]) -> None:
    """Check unions and field defaults in fastavro's parsed form of a schema."""
    if isinstance(node, list):
        seen: set[str] = set()
        for branch in node:
            key = _branch_key(branch, named)
            if key in seen:
                raise SchemaProblem(f"a union may not hold two branches of type '{key}'")
            seen.add(key)
            lint_parsed(branch, named)
    elif isinstance(node, dict):
        kind = node["type"]
        if kind in ("record", "error"):
            for field in node["fields"]:
                lint_parsed(field["type"], named)
                if "default" in field:
                    reason = default_error(field["type"], field["default"], named)
                    if reason is not None:
                        raise SchemaProblem(
                            f"default value {_short(field['default'])} of field '{field['name']}'"
                            f" of record '{node['name']}' is invalid: {reason}"
                        )
        elif kind == "array":
            lint_parsed(node["items"], named)
        elif kind == "map":
            lint_parsed(node["values"], named)


def _branch_key(branch: Any, named: Mapping[str, Any]) -> str:
    if isinstance(branch, list):
        raise SchemaProblem("a union may not immediately contain another union")
    kind, definition = kind_of(branch, named)
    return str(definition["name"]) if kind in NAMED_KINDS else kind


def default_error(schema: Any, value: Any, named: Mapping[str, Any]) -> str | None:
    """Why JSON ``value`` is not a valid default for ``schema``, or None when it is.

    A union's default may match any branch (Avro 1.12, AVRO-3649; earlier specs said the first).
    """
    kind, definition = kind_of(schema, named)
    if kind == "union":
        if any(default_error(branch, value, named) is None for branch in definition):
            return None
        return f"{_short(value)} matches no branch of the union"
    if kind in PRIMITIVES:
        return None if _primitive_ok(kind, value) else f"{_short(value)} is not a valid {kind}"
    if kind == "enum":
        ok = isinstance(value, str) and value in definition["symbols"]
        return None if ok else f"{_short(value)} is not a symbol of enum '{definition['name']}'"
    if kind == "fixed":
        ok = isinstance(value, str) and len(value) == definition["size"] and _latin1(value)
        return (
            None
            if ok
            else f"{_short(value)} is not {definition['size']} bytes for fixed '{definition['name']}'"
        )
    if kind == "array":
        if not isinstance(value, list):
            return f"{_short(value)} is not an array"
        return next(
            filter(None, (default_error(definition["items"], v, named) for v in value)), None
        )
    if kind == "map":
        if not isinstance(value, dict):
            return f"{_short(value)} is not a map"
        values = (default_error(definition["values"], v, named) for v in value.values())
        return next(filter(None, values), None)
    if not isinstance(value, dict):  # record
        return f"{_short(value)} is not a record '{definition['name']}'"
    for field in definition["fields"]:
        if field["name"] in value:
            reason = default_error(field["type"], value[field["name"]], named)
            if reason is not None:
                return f"field '{field['name']}': {reason}"
        elif "default" not in field:
            return f"field '{field['name']}' of record '{definition['name']}' is missing"
    return None


def _primitive_ok(kind: str, value: Any) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in _INT_RANGE:
        bound = _INT_RANGE[kind]
        return type(value) is int and -bound <= value < bound
    if kind in ("float", "double"):
        return type(value) in (int, float)
    if kind == "bytes":
        return isinstance(value, str) and _latin1(value)
    return isinstance(value, str)  # string


def _latin1(text: str) -> bool:
    return all(ord(c) < 256 for c in text)


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
