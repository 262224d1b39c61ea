"""Limits that keep fastavro's compiled reader, writer and validator safe on hostile input (pure).

fastavro's C code recurses once per nesting level without checking the stack, so a
few kilobytes of a recursive schema's data nested thousands of levels deep crash the
process; and it loops once per array item, so an array of zero-byte items (``null``,
an empty record) with a block count of 2**62 hangs. A schema's :class:`Shape` says
whether it is exposed; for those that are, :func:`scan_payload` walks the bytes first
(iteratively, without building values) and :func:`too_deep` measures a value.
Non-recursive schemas nest at most :data:`MAX_SCHEMA_DEPTH` levels, which is safe.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from eventml.schema._avro_lint import SchemaProblem, kind_of

MAX_SCHEMA_DEPTH = 100
"""Deepest nesting (records, arrays, maps, unions) a schema may have, references followed."""
MAX_DATA_DEPTH = 1000
"""Deepest nesting a value of a recursive schema may have (fastavro crashes near 10,000)."""
MAX_EMPTY_ITEMS = 1 << 20
"""Array items a payload may hold beyond one per byte (items of zero-byte types)."""

_WIDTHS = {"null": 0, "boolean": 1, "float": 4, "double": 8}
_VARINTS = frozenset({"int", "long"})
_SIZED = frozenset({"bytes", "string"})


class PayloadProblem(ValueError):
    """The payload is not a value of the schema, or exceeds a safety limit."""


@dataclass(frozen=True, slots=True)
class Shape:
    """What about a schema exposes fastavro: recursion, and arrays of zero-byte items."""

    depth: int
    recursive: bool
    empty_items: bool

    @property
    def needs_scan(self) -> bool:
        return self.recursive or self.empty_items


def shape(root: Any, named: Mapping[str, Any]) -> Shape:
    """The shape of parsed schema ``root``; raises SchemaProblem if it nests too deeply."""
    memo: dict[str, int] = {}
    active: set[str] = set()
    flags = {"recursive": False, "empty_items": False}

    def depth(node: Any, level: int) -> int:
        if level > MAX_SCHEMA_DEPTH:
            raise SchemaProblem(f"schema nests more than {MAX_SCHEMA_DEPTH} levels deep")
        kind, definition = kind_of(node, named)
        name = definition.get("name") if isinstance(definition, dict) else None
        if name is not None and name in active:
            flags["recursive"] = True
            return 0
        if name is not None and name in memo:
            if level + memo[name] > MAX_SCHEMA_DEPTH:
                raise SchemaProblem(f"schema nests more than {MAX_SCHEMA_DEPTH} levels deep")
            return memo[name]
        if kind == "array" and zero_width(definition["items"], named):
            flags["empty_items"] = True
        children = _children(kind, definition)
        if name is not None:
            active.add(name)
        deepest = max((depth(child, level + 1) for child in children), default=-1) + 1
        if name is not None:
            active.discard(name)
            memo[name] = deepest
        return deepest

    found = depth(root, 0)
    return Shape(found, flags["recursive"], flags["empty_items"])


def _children(kind: str, definition: Any) -> list[Any]:
    if kind == "union":
        return list(definition)
    if kind == "record":
        return [field["type"] for field in definition["fields"]]
    if kind == "array":
        return [definition["items"]]
    if kind == "map":
        return [definition["values"]]
    return []


def zero_width(node: Any, named: Mapping[str, Any], active: frozenset[str] = frozenset()) -> bool:
    """Whether every value of ``node`` encodes to zero bytes (null, fixed(0), records of such)."""
    kind, definition = kind_of(node, named)
    if kind == "null":
        return True
    if kind == "fixed":
        return bool(definition["size"] == 0)
    if kind != "record" or definition["name"] in active:
        return False
    inner = active | {definition["name"]}
    return all(zero_width(field["type"], named, inner) for field in definition["fields"])


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def skip(self, count: int) -> None:
        if count < 0 or self.pos + count > len(self.data):
            raise PayloadProblem(
                f"needs {count} byte(s) at offset {self.pos}, payload has {len(self.data)}"
            )
        self.pos += count

    def long(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.data):
                raise PayloadProblem(f"truncated varint at offset {self.pos}")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
            if shift > 63:
                raise PayloadProblem(f"varint longer than 10 bytes at offset {self.pos}")


def scan_payload(data: bytes, root: Any, named: Mapping[str, Any]) -> None:
    """Check that ``data`` holds one value of ``root`` within the limits; raises PayloadProblem."""
    reader = _Bytes(data)
    budget = [len(data) + MAX_EMPTY_ITEMS]
    stack: list[Iterator[Any]] = [iter((root,))]
    while stack:
        node = next(stack[-1], _DONE)
        if node is _DONE:
            stack.pop()
            continue
        kind, definition = kind_of(node, named)
        children = _scan_one(reader, kind, definition, named, budget)
        if children is not None:
            if len(stack) > MAX_DATA_DEPTH:
                raise PayloadProblem(f"value nests more than {MAX_DATA_DEPTH} levels deep")
            stack.append(children)


_DONE = object()


def _scan_one(
    reader: _Bytes, kind: str, definition: Any, named: Mapping[str, Any], budget: list[int]
) -> Iterator[Any] | None:
    if kind in _WIDTHS:
        reader.skip(_WIDTHS[kind])
    elif kind in _VARINTS:
        reader.long()
    elif kind in _SIZED:
        reader.skip(reader.long())
    elif kind == "fixed":
        reader.skip(definition["size"])
    elif kind == "enum":
        _index(reader, len(definition["symbols"]), "enum symbol")
    elif kind == "union":
        return iter((definition[_index(reader, len(definition), "union branch")],))
    elif kind == "record":
        return iter([field["type"] for field in definition["fields"]])
    elif kind == "array":
        return _blocks(reader, [definition["items"]], named, budget)
    elif kind == "map":
        return _blocks(reader, ["string", definition["values"]], named, budget)
    return None


def _index(reader: _Bytes, size: int, what: str) -> int:
    index = reader.long()
    if not 0 <= index < size:
        raise PayloadProblem(f"{what} index {index} out of range 0..{size - 1}")
    return index


def _blocks(
    reader: _Bytes, item: list[Any], named: Mapping[str, Any], budget: list[int]
) -> Iterator[Any]:
    empty = all(zero_width(part, named) for part in item)
    while count := reader.long():
        if count < 0:
            count = -count
            reader.long()  # the block's size in bytes
        budget[0] -= count
        if budget[0] < 0:
            raise PayloadProblem(
                f"more array or map items than the limit of {MAX_EMPTY_ITEMS} + 1 per byte"
            )
        if not empty:
            for _ in range(count):
                yield from item


def too_deep(value: Any, limit: int = MAX_DATA_DEPTH) -> bool:
    """Whether containers (dicts, lists, tuples) nest more than ``limit`` levels in ``value``."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, level = stack.pop()
        if level > limit:
            return True
        if isinstance(current, dict):
            stack.extend((v, level + 1) for v in current.values())
        elif isinstance(current, list | tuple):
            stack.extend((v, level + 1) for v in current)
    return False
