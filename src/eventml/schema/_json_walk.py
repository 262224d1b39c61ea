"""JSON Schema plumbing shared by parsing, validation and the compatibility check.

* :class:`Dialect`: the drafts we accept (4, 6, 7, 2019-09, 2020-12) and what differs between them;
* :func:`subschemas`: the schema-valued children of a schema node, keyword by keyword;
* :class:`Bundle`: a schema document, the documents it references by URI (Confluent
  references) and a ``referencing`` resolver over all of them, built once at parse time,
  with every ``$ref`` checked to resolve (so nothing is ever fetched from the network).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag, urljoin

import referencing
import referencing.jsonschema
from jsonschema import validators
from jsonschema_specifications import REGISTRY  # type: ignore[import-untyped]
from referencing._core import Resolver

#: deeper JSON (objects and arrays nested) is refused at parse time, so no walk can overflow the stack
MAX_DEPTH = 100

_SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "$defs", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_ONE = (
    "additionalItems",
    "additionalProperties",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
)
META_SCHEMAS: referencing.Registry[Any] = REGISTRY  # the drafts' meta-schemas, by URI
REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


@dataclass(frozen=True, slots=True, eq=False)
class Dialect:
    """One JSON Schema draft: its jsonschema validator class and the keywords it honours."""

    name: str
    validator_class: Any
    specification: referencing.Specification[Any]
    keywords: frozenset[str]  # keywords that constrain instances (annotations excluded)
    legacy_ref: bool  # drafts 4-7: "$ref" makes its sibling keywords ignored
    prefix_items: bool  # 2020-12: tuples are "prefixItems", "items" is the rest

    def has(self, node: Any, keyword: str) -> bool:
        """``node`` is a dict carrying ``keyword`` and this dialect honours it."""
        return isinstance(node, dict) and keyword in node and keyword in self.keywords


def _dialect(name: str, cls: Any, spec: referencing.Specification[Any], *extra: str) -> Dialect:
    keywords = (frozenset(cls.VALIDATORS) | frozenset(extra)) - {"format"}
    draft = name.removeprefix("draft")
    return Dialect(
        name=name,
        validator_class=cls,
        specification=spec,
        keywords=keywords,
        legacy_ref=draft in ("4", "6", "7"),
        prefix_items=draft == "2020-12",
    )


DRAFT4 = _dialect("draft4", validators.Draft4Validator, referencing.jsonschema.DRAFT4)
DRAFT6 = _dialect("draft6", validators.Draft6Validator, referencing.jsonschema.DRAFT6)
DRAFT7 = _dialect(
    "draft7", validators.Draft7Validator, referencing.jsonschema.DRAFT7, "then", "else"
)
DRAFT2019 = _dialect(
    "draft2019-09",
    validators.Draft201909Validator,
    referencing.jsonschema.DRAFT201909,
    "then",
    "else",
    "minContains",
    "maxContains",
)
DRAFT2020 = _dialect(
    "draft2020-12",
    validators.Draft202012Validator,
    referencing.jsonschema.DRAFT202012,
    "then",
    "else",
    "minContains",
    "maxContains",
)
_BY_CLASS = {d.validator_class: d for d in (DRAFT4, DRAFT6, DRAFT7, DRAFT2019, DRAFT2020)}
SUPPORTED = "draft-04, draft-06, draft-07, 2019-09 and 2020-12"


class SchemaProblem(Exception):
    """Why a document is not a schema we accept (the parser turns it into ``InvalidSchema``)."""


def dialect_for(document: Any, default: Dialect) -> Dialect:
    """The dialect a document's ``$schema`` names, ``default`` without one."""
    if not isinstance(document, dict) or "$schema" not in document:
        return default
    uri = document["$schema"]
    if not isinstance(uri, str):
        raise SchemaProblem(f"$schema must be a string, got {type(uri).__name__}")
    try:
        cls = validators.validator_for(document, default=None)
    except ValueError as exc:  # a malformed URI
        raise SchemaProblem(f"$schema {uri!r} is not a URI: {exc}") from None
    dialect = _BY_CLASS.get(cls)
    if dialect is None:
        raise SchemaProblem(f"unsupported $schema {uri!r} (supported: {SUPPORTED})")
    return dialect


def subschemas(node: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Each schema-valued child of ``node`` with its path below ``node`` (keyword, name or index)."""
    for key, value in node.items():
        if key in _SCHEMA_ONE:
            if isinstance(value, dict | bool):
                yield (key,), value
        elif key in _SCHEMA_MAPS or key == "dependencies":
            if isinstance(value, dict):
                for name, child in value.items():
                    if isinstance(child, dict | bool):
                        yield (key, name), child
        elif key in _SCHEMA_LISTS or key == "items":
            if isinstance(value, list):
                for i, child in enumerate(value):
                    if isinstance(child, dict | bool):
                        yield (key, str(i)), child
            elif key == "items" and isinstance(value, dict | bool):
                yield (key,), value


def escape(part: str) -> str:
    """One JSON pointer reference token."""
    return part.replace("~", "~0").replace("/", "~1")


def pointer(parts: Iterator[Any] | list[Any] | tuple[Any, ...]) -> str:
    return "".join("/" + escape(str(p)) for p in parts)


def depth(document: Any) -> int:
    """How deeply objects and arrays nest in a decoded JSON value (iteratively)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        stack.extend((child, level + 1) for child in children)
    return deepest


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema's ``enum``/``const`` see it: ``1 == 1.0`` but ``true != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


@dataclass(frozen=True, slots=True, eq=False)
class Bundle:
    """A parsed schema with the documents it references, ready to resolve any ``$ref``."""

    document: Any
    dialect: Dialect
    references: Mapping[str, tuple[Any, Dialect]]  # reference name -> (document, dialect)
    registry: referencing.Registry[Any]  # the referenced documents only (for jsonschema)
    resolver: Resolver[Any]  # rooted at the document, meta-schemas included
    remote: Mapping[str, Any]  # every URI a referenced document answers to -> that document

    @property
    def dialects(self) -> set[Dialect]:
        return {self.dialect} | {d for _, d in self.references.values()}


def bundle(
    document: Any, dialect: Dialect, references: Mapping[str, tuple[Any, Dialect]]
) -> Bundle:
    """Register the referenced documents and check that every ``$ref`` resolves.

    A referenced document answers to its reference name, to that name resolved against
    the root's ``$id`` (so ``"$ref": "customer.json"`` inside ``https://x/order.json`` finds
    it) and to its own ``$id``.
    """
    base = dialect.specification.id_of(document) if isinstance(document, dict) else None
    remote: dict[str, Any] = {}
    pairs: list[tuple[str, referencing.Resource[Any]]] = []
    for name, (doc, doc_dialect) in references.items():
        resource = doc_dialect.specification.create_resource(doc)
        uris = {name, urljoin(base, name) if base else name}
        own = resource.id()
        if own:
            uris.add(urljoin(name, own))
        for uri in uris:
            uri = urldefrag(uri).url
            remote[uri] = doc
            pairs.append((uri, resource))
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(pairs)
    root = dialect.specification.create_resource(document)
    resolver = META_SCHEMAS.combine(registry).resolver_with_root(root)
    result = Bundle(document, dialect, dict(references), registry, resolver, remote)
    _check_refs(document, resolver, dialect, ())
    for name, (doc, doc_dialect) in references.items():
        _check_refs(doc, resolver.lookup(urldefrag(name).url).resolver, doc_dialect, (), name)
    _check_loops(document, resolver, dialect)
    for name, (doc, doc_dialect) in references.items():
        _check_loops(doc, resolver.lookup(urldefrag(name).url).resolver, doc_dialect)
    return result


def recoverable(exc: BaseException) -> bool:
    """An error a check may absorb: any ``Exception``, and the ``PanicException`` that the
    Rust maps inside ``referencing`` raise when Python's recursion limit strikes in them."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def _enter(node: Any, resolver: Resolver[Any], dialect: Dialect) -> Resolver[Any]:
    if isinstance(node, dict):
        resource = dialect.specification.create_resource(node)
        if resource.id() is not None:
            return resolver.in_subresource(resource)
    return resolver


def _same_value(
    node: Any, resolver: Resolver[Any], dialect: Dialect
) -> Iterator[tuple[Any, Resolver[Any]]]:
    """The subschemas that apply to the same value as ``node`` (not to a part of it)."""
    if not isinstance(node, dict):
        return
    for keyword in REF_KEYWORDS:
        ref = node.get(keyword)
        if keyword in dialect.keywords and isinstance(ref, str):
            resolved = resolver.lookup(ref)
            yield resolved.contents, resolved.resolver
            if dialect.legacy_ref and keyword == "$ref":
                return  # drafts 4-7 ignore the siblings of $ref
    children: list[Any] = []
    for keyword in ("allOf", "anyOf", "oneOf"):
        if keyword in dialect.keywords and isinstance(node.get(keyword), list):
            children += node[keyword]
    children += [
        node[k] for k in ("not", "if", "then", "else") if k in dialect.keywords and k in node
    ]
    for keyword in ("dependentSchemas", "dependencies"):
        if keyword in dialect.keywords and isinstance(node.get(keyword), dict):
            children += node[keyword].values()
    for child in children:
        if isinstance(child, dict):
            yield child, _enter(child, resolver, dialect)


def _check_loops(document: Any, resolver: Resolver[Any], dialect: Dialect) -> None:
    """Refuse a cycle of ``$ref``/``allOf``/``anyOf``/``oneOf``/``not``/``if`` that returns to
    a schema without descending into the value: validating anything would never end."""
    done: set[int] = set()
    everywhere: list[tuple[Any, Resolver[Any], tuple[str, ...]]] = [(document, resolver, ())]
    while everywhere:
        node, scope, path = everywhere.pop()
        if not isinstance(node, dict):
            continue
        scope = _enter(node, scope, dialect) if path else scope
        _dfs(node, scope, dialect, path, done)
        everywhere.extend((child, scope, path + parts) for parts, child in subschemas(node))


def _dfs(
    start: Any, scope: Resolver[Any], dialect: Dialect, path: tuple[str, ...], done: set[int]
) -> None:
    if id(start) in done:
        return
    open_ = {id(start)}
    stack = [(start, _same_value(start, scope, dialect))]
    while stack:
        node, children = stack[-1]
        for child, child_scope in children:
            if id(child) in open_:
                raise SchemaProblem(
                    f"a $ref/allOf/anyOf/oneOf/not/if loop at {pointer(path) or '/'} returns to"
                    " a schema without descending into the value (validation would not end)"
                )
            if id(child) not in done:
                open_.add(id(child))
                stack.append((child, _same_value(child, child_scope, dialect)))
                break
        else:
            stack.pop()
            open_.discard(id(node))
            done.add(id(node))


def _check_refs(
    node: Any,
    resolver: Resolver[Any],
    dialect: Dialect,
    path: tuple[str, ...],
    document: str = "",
) -> None:
    if not isinstance(node, dict):
        return
    if path:  # the root's own $id is already the resolver's base
        resource = dialect.specification.create_resource(node)
        if resource.id() is not None:
            resolver = resolver.in_subresource(resource)
    for keyword in REF_KEYWORDS:
        ref = node.get(keyword)
        if keyword in dialect.keywords and isinstance(ref, str):
            try:
                resolver.lookup(ref)
            except Exception:  # referencing's Unresolvable and its kin
                where = f"reference {document!r} " if document else ""
                raise SchemaProblem(
                    f"cannot resolve {keyword} {ref!r} at {where}{pointer(path) or '/'}"
                    " (a URI must be one of the schema's references)"
                ) from None
    for parts, child in subschemas(node):
        _check_refs(child, resolver, dialect, path + parts, document)
