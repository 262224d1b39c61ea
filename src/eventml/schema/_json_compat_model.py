"""The compatibility checker's vocabulary: schema nodes with their context, writer conjunctions.

* :class:`At`: a schema node together with the resolver for its base URI and its side
  (the reader's or the writer's document and dialect);
* :class:`Alt`: one alternative of the writer, a conjunction of schema nodes (``allOf``
  flattened, ``$ref`` followed, ``anyOf``/``oneOf`` distributed into separate alternatives);
* :class:`Loc`: where in the reader a finding is (JSON pointer, readable name, property).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urldefrag

from referencing._core import Resolver

from eventml.schema._json_walk import Bundle, Dialect, escape
from eventml.schema.errors import Incompatibility

#: JSON value kinds; "fraction" is a number that is not an integer
ATOMS: frozenset[str] = frozenset(
    {"null", "boolean", "object", "array", "string", "integer", "fraction"}
)
NUMERIC = frozenset({"integer", "fraction"})
_TYPE_ATOMS = {
    "null": {"null"},
    "boolean": {"boolean"},
    "object": {"object"},
    "array": {"array"},
    "string": {"string"},
    "integer": {"integer"},
    "number": {"integer", "fraction"},
}


@dataclass(frozen=True, slots=True, eq=False)
class At:
    """A schema node of one side, with the resolver its ``$ref`` values resolve against."""

    node: Any
    resolver: Resolver[Any]
    side: Bundle

    @property
    def dialect(self) -> Dialect:
        return self.side.dialect

    def has(self, keyword: str) -> bool:
        return self.dialect.has(self.node, keyword)

    def get(self, keyword: str) -> Any:
        """The keyword's value, or ``None`` if absent or not honoured by this dialect."""
        return self.node[keyword] if self.has(keyword) else None

    def child(self, node: Any) -> At:
        """A subschema of this node (entering its ``$id`` scope if it has one)."""
        if isinstance(node, dict):
            resource = self.dialect.specification.create_resource(node)
            if resource.id() is not None:
                return At(node, self.resolver.in_subresource(resource), self.side)
        return At(node, self.resolver, self.side)

    def ref_uri(self) -> str | None:
        """This node's ``$ref`` (or ``$dynamicRef``/``$recursiveRef``, read statically)."""
        for keyword in ("$ref", "$dynamicRef", "$recursiveRef"):
            ref = self.get(keyword)
            if isinstance(ref, str):
                return ref
        return None

    def ref(self) -> At | None:
        """The target of this node's ``$ref``."""
        ref = self.ref_uri()
        if ref is None:
            return None
        resolved = self.resolver.lookup(ref)
        return At(resolved.contents, resolved.resolver, self.side)

    def number(self, keyword: str) -> int | float | None:
        value = self.get(keyword)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        return None

    def schemas(self, keyword: str) -> list[At]:
        value = self.get(keyword)
        return [self.child(s) for s in value] if isinstance(value, list) else []

    def schema_map(self, keyword: str) -> dict[str, At]:
        value = self.get(keyword)
        if not isinstance(value, dict):
            return {}
        return {k: self.child(v) for k, v in value.items() if isinstance(v, dict | bool)}

    def atoms(self) -> frozenset[str]:
        """The kinds of value the node's ``type`` admits (all without ``type``)."""
        declared = self.get("type")
        if declared is None:
            return ATOMS
        names = [declared] if isinstance(declared, str) else declared
        out: set[str] = set()
        for name in names:
            if isinstance(name, str):
                out |= _TYPE_ATOMS.get(name, set())
        return frozenset(out)

    def accepts_all(self, hops: int = 0) -> bool:
        """Whether the node obviously accepts any value (true, or only annotations)."""
        node = self.node
        if node is True:
            return True
        if not isinstance(node, dict):
            return False
        keys = node.keys() & self.dialect.keywords
        if not keys:
            return True
        if hops < 8 and keys <= {"$ref", "$dynamicRef", "$recursiveRef"}:
            target = self.ref()
            return target is not None and target.accepts_all(hops + 1)
        return False


@dataclass(frozen=True, slots=True)
class Alt:
    """A conjunction of writer nodes: a value the writer produces satisfies all of them."""

    parts: tuple[At, ...] = ()
    nots: tuple[At, ...] = ()  # the "not" subschemas among the parts
    conds: tuple[At, ...] = ()  # the parts carrying "if"
    atoms: frozenset[str] = ATOMS  # a further restriction of the value's kind
    choices: tuple[tuple[At, int], ...] = ()  # (a writer node with oneOf, the branch taken)

    def types(self) -> frozenset[str]:
        out = self.atoms
        for part in self.parts:
            out &= part.atoms()
        return out

    def restrict(self, atoms: frozenset[str]) -> Alt:
        return replace(self, atoms=self.atoms & atoms)

    def values(self, keyword: str) -> list[Any]:
        return [p.get(keyword) for p in self.parts if p.get(keyword) is not None]

    def numbers(self, keyword: str) -> list[int | float]:
        return [n for p in self.parts if (n := p.number(keyword)) is not None]


@dataclass(frozen=True, slots=True)
class Loc:
    """Where a finding is: a JSON pointer in the reader, a readable name, the property.

    The pointer is where the reader node really is: after a ``$ref`` it continues from the
    reference's target (``/definitions/Money/properties/amount``), prefixed with the
    referenced document's URI when the target is in another document
    (``customer.json#/properties/age``). The label keeps the route from the root
    (``price.amount``), so the message names the property as documents see it.
    """

    path: str = ""
    label: str = ""
    field: str | None = None
    document: str = ""  # the referenced document's URI, "" for the schema itself

    @property
    def where(self) -> str:
        return f"{self.document}#{self.path}" if self.document else self.path

    def at(self, *parts: str) -> Loc:
        return replace(self, path=self.path + "".join("/" + escape(p) for p in parts))

    def prop(self, name: str, keyword: str = "properties") -> Loc:
        return self.named(name, keyword, name)

    def named(self, name: str, *parts: str) -> Loc:
        """A finding about property ``name`` at ``parts`` below this node."""
        label = f"{self.label}.{name}" if self.label else name
        return replace(self.at(*parts), label=label, field=name)

    def pattern(self, pattern: str) -> Loc:
        label = f"{self.label}./{pattern}/" if self.label else f"/{pattern}/"
        return replace(self.at("patternProperties", pattern), label=label, field=None)

    def item(self, *parts: str) -> Loc:
        return replace(self.at(*parts), label=f"{self.label or 'value'}[]")

    def follow(self, ref: str) -> Loc:
        """The location of a ``$ref`` target."""
        url, fragment = urldefrag(ref)
        return replace(self, path=unquote(fragment), document=url or self.document)

    def incompatible(self, rule: str, text: str) -> Incompatibility:
        subject = f"Property {self.label!r}" if self.label else "The value"
        return Incompatibility(rule, self.where, f"{subject} ({rule}): {text}.", self.field)


def kind_of(value: Any) -> str:
    """The atom a decoded JSON value belongs to."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if math.isfinite(value) and value.is_integer() else "fraction"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def type_names(atoms: frozenset[str]) -> str:
    names = set(atoms)
    if names >= NUMERIC:
        names = (names - NUMERIC) | {"number"}
    elif "fraction" in names:
        names = (names - {"fraction"}) | {"non-integer number"}
    return "/".join(sorted(names)) or "nothing"


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return None


def matches(pattern: str, name: str) -> bool | None:
    """Whether a property name matches a patternProperties regex (``None``: cannot tell)."""
    compiled = _compiled(pattern)
    return None if compiled is None else compiled.search(name) is not None
