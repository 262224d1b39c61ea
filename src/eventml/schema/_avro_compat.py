"""Can a reader schema read all data written with a writer schema? (pure)

The Avro specification's schema resolution rules, checked statically as Java Avro's
``SchemaCompatibility`` does, with its rule names. Schemas are fastavro's parsed form
(full names; a named type used again appears as its name) plus the table of named types.

- Same kind: primitives match; arrays and maps compare items / values; fixed types need
  matching names and sizes; enums matching names, and every writer symbol in the reader
  unless the reader enum has a default; records matching names, and every reader field
  either in the writer (by name, or by one of the reader field's aliases) with a readable
  type, or with a default. Writer fields the reader lacks are skipped.
- Names match when their unqualified parts are equal (the specification says
  "(unqualified) name"), or when one of the reader's aliases, qualified with the reader's
  namespace, is the writer's full name.
- A writer union: every branch must be readable. A reader union: some branch must read
  the writer (each writer branch, when both are unions).
- Promotions: int to long, float, double; long to float, double; float to double;
  string to bytes and bytes to string.
- Recursion: a pair of records already being compared is assumed compatible (the
  answer for the outer comparison covers it), so recursive schemas terminate.

Each finding's path points into the reader schema (``/fields/1/type``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from eventml.schema._avro_lint import PRIMITIVES, kind_of
from eventml.schema.errors import Incompatibility

_PROMOTIONS = {
    "long": frozenset({"int"}),
    "float": frozenset({"int", "long"}),
    "double": frozenset({"int", "long", "float"}),
    "bytes": frozenset({"string"}),
    "string": frozenset({"bytes"}),
}


def incompatibilities(
    reader: Any, reader_named: Mapping[str, Any], writer: Any, writer_named: Mapping[str, Any]
) -> list[Incompatibility]:
    """Why ``reader`` cannot read all data written with ``writer``; empty when it can."""
    checker = _Checker(reader_named, writer_named)
    try:
        found = checker.check(reader, writer)
    except RecursionError:  # only contrived mutually recursive schemas get here
        message = "the schemas nest too deeply to compare; treating them as incompatible"
        return [Incompatibility("NESTING_TOO_DEEP", "/", message)]
    return [replace(i, path=i.path or "/") for i in found]


class _Checker:
    def __init__(self, reader_named: Mapping[str, Any], writer_named: Mapping[str, Any]) -> None:
        self.reader_named, self.writer_named = reader_named, writer_named
        self.records: dict[tuple[str, str], list[Incompatibility] | None] = {}

    def check(self, reader: Any, writer: Any) -> list[Incompatibility]:
        """Findings for one reader/writer pair, with paths relative to the reader node."""
        r_kind, r_def = kind_of(reader, self.reader_named)
        w_kind, w_def = kind_of(writer, self.writer_named)
        if r_kind == w_kind:
            return self._same_kind(r_kind, r_def, w_def)
        if w_kind == "union":
            return [i for branch in w_def for i in self.check(reader, branch)]
        if r_kind == "union":
            if any(not self.check(branch, writer) for branch in r_def):
                return []
            return [_missing_branch(r_def, writer)]
        if w_kind in _PROMOTIONS.get(r_kind, ()):
            return []
        return [_type_mismatch(r_kind, r_def, w_kind, w_def)]

    def _same_kind(self, kind: str, reader: Any, writer: Any) -> list[Incompatibility]:
        if kind in PRIMITIVES:
            return []
        if kind == "array":
            return _under("/items", self.check(reader["items"], writer["items"]))
        if kind == "map":
            return _under("/values", self.check(reader["values"], writer["values"]))
        if kind == "union":
            return [
                _missing_branch(reader, branch, index)
                for index, branch in enumerate(writer)
                if self.check(reader, branch)
            ]
        found = _name_mismatch(kind, reader, writer)
        if kind == "fixed" and reader["size"] != writer["size"]:
            message = (
                f"reader fixed '{reader['name']}' has size {reader['size']}"
                f" but the writer's has size {writer['size']}"
            )
            found.append(Incompatibility("FIXED_SIZE_MISMATCH", "/size", message))
        elif kind == "enum":
            found += _enum_symbols(reader, writer)
        elif kind == "record":
            found += self._record(reader, writer)
        return found

    def _record(self, reader: Any, writer: Any) -> list[Incompatibility]:
        key = (reader["name"], writer["name"])
        if key in self.records:
            return self.records[key] or []  # None: in progress further up, assume compatible
        self.records[key] = None
        by_name = {field["name"]: field for field in writer["fields"]}
        found: list[Incompatibility] = []
        for index, field in enumerate(reader["fields"]):
            names = [field["name"], *field.get("aliases", [])]
            written = next((by_name[n] for n in names if n in by_name), None)
            where = f"/fields/{index}"
            if written is not None:
                inner = _under(f"{where}/type", self.check(field["type"], written["type"]))
                found += [_in_field(i, field["name"], reader["name"]) for i in inner]
            elif "default" not in field:
                message = (
                    f"field '{field['name']}' of record '{reader['name']}' has no default"
                    " in the reader and is missing from the writer"
                )
                found.append(
                    Incompatibility(
                        "READER_FIELD_MISSING_DEFAULT_VALUE", where, message, field["name"]
                    )
                )
        self.records[key] = found
        return found


def _names_match(reader: Any, writer: Any) -> bool:
    reader_name, writer_name = str(reader["name"]), str(writer["name"])
    if reader_name.rpartition(".")[2] == writer_name.rpartition(".")[2]:
        return True
    namespace = reader_name.rpartition(".")[0]
    for alias in reader.get("aliases", []):
        full = alias if "." in alias or not namespace else f"{namespace}.{alias}"
        if full == writer_name:
            return True
    return False


def _name_mismatch(kind: str, reader: Any, writer: Any) -> list[Incompatibility]:
    if _names_match(reader, writer):
        return []
    message = (
        f"reader {kind} '{reader['name']}' cannot read writer {kind} '{writer['name']}':"
        " the names differ and no reader alias names the writer's"
    )
    return [Incompatibility("NAME_MISMATCH", "/name", message)]


def _enum_symbols(reader: Any, writer: Any) -> list[Incompatibility]:
    missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
    if not missing or reader.get("default") in reader["symbols"]:
        return []
    message = (
        f"reader enum '{reader['name']}' lacks writer symbol(s) {', '.join(missing)}"
        " and has no default symbol to read them as"
    )
    return [Incompatibility("MISSING_ENUM_SYMBOLS", "/symbols", message)]


def _type_mismatch(r_kind: str, reader: Any, w_kind: str, writer: Any) -> Incompatibility:
    message = f"reader type {_describe(r_kind, reader)} cannot read writer type {_describe(w_kind, writer)}"
    return Incompatibility("TYPE_MISMATCH", "", message)


def _missing_branch(
    reader_union: list[Any], writer: Any, index: int | None = None
) -> Incompatibility:
    written = _label(writer) if index is None else f"{_label(writer)} (writer union branch {index})"
    message = (
        f"reader union [{', '.join(map(_label, reader_union))}] has no branch that reads {written}"
    )
    return Incompatibility("MISSING_UNION_BRANCH", "", message)


def _under(prefix: str, found: list[Incompatibility]) -> list[Incompatibility]:
    return [replace(i, path=prefix + i.path) for i in found]


def _in_field(found: Incompatibility, field: str, record: str) -> Incompatibility:
    """Attribute a finding inside a field's type to that field (the innermost field wins)."""
    if found.field is not None:
        return found
    return replace(
        found, field=field, message=f"field '{field}' of record '{record}': {found.message}"
    )


def _describe(kind: str, definition: Any) -> str:
    if isinstance(definition, dict) and "name" in definition:
        return f"{kind} '{definition['name']}'"
    return f"'{kind}'"


def _label(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "union"
    return str(node.get("name", node["type"]))
