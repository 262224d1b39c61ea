"""Compiled JSON Schema validation: fastjsonschema on the hot path, jsonschema for messages.

:func:`compile_validator` returns ``check(value) -> list[str]``. A valid value costs one call
of a fastjsonschema-generated function (drafts 4, 6 and 7, and 2019-09/2020-12 schemas that
use nothing beyond draft 7); an invalid one is explained by jsonschema, which lists every
error with its JSON pointer. Schemas fastjsonschema cannot compile are checked by jsonschema
alone. Both sides agree on semantics:

* ``format`` and the ``content*`` keywords are annotations, not assertions (jsonschema's
  default and the 2019-09+ specifications' default);
* ``$`` in ``pattern`` means end of string or before a final newline (Python's and Java's
  reading, and jsonschema's), not fastjsonschema's strict end of string;
* references resolve only to the schema's own documents, never through the network.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import fastjsonschema

from eventml.schema._json_walk import (
    DRAFT4,
    DRAFT6,
    DRAFT7,
    Bundle,
    Dialect,
    pointer,
    recoverable,
    subschemas,
)

Check = Callable[[Any], list[str]]
MAX_ERRORS = 50
MAX_MESSAGE = 300

_ANNOTATIONS = ("format", "contentEncoding", "contentMediaType", "contentSchema")
_FAST_DIALECTS = {DRAFT4, DRAFT6, DRAFT7}
#: 2019-09/2020-12 keywords whose meaning fastjsonschema's draft-7 code does not have
_BEYOND_DRAFT7 = frozenset(
    {
        "$anchor",
        "$dynamicAnchor",
        "$dynamicRef",
        "$recursiveAnchor",
        "$recursiveRef",
        "$vocabulary",
        "additionalItems",
        "dependencies",
        "dependentRequired",
        "dependentSchemas",
        "maxContains",
        "minContains",
        "prefixItems",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)


def compile_validator(bundle: Bundle) -> Check:
    slow = bundle.dialect.validator_class(bundle.document, registry=bundle.registry)
    fast = _fast(bundle)

    def explain(value: Any) -> list[str]:
        try:
            errors = sorted(
                slow.iter_errors(value), key=lambda e: (pointer(e.absolute_path), e.message)
            )
            return [f"{_where(e.absolute_path)}: {_short(e.message)}" for e in errors[:MAX_ERRORS]]
        except BaseException as exc:  # a value too deep for the recursion limit, say
            if not recoverable(exc):
                raise
            return [f"(root): could not be validated ({type(exc).__name__})"]

    if fast is None:

        def check_slow(value: Any) -> list[str]:
            try:
                if slow.is_valid(value):
                    return []
            except BaseException as exc:
                if not recoverable(exc):
                    raise
            return explain(value)

        return check_slow

    def check(value: Any) -> list[str]:
        try:
            fast(value)
        except fastjsonschema.JsonSchemaValueException as exc:
            return explain(value) or [f"{_where(exc.path[1:])}: {_short(exc.message)}"]
        except BaseException as exc:  # RecursionError on a very deep value, say
            if not recoverable(exc):
                raise
            return explain(value) or ["(root): could not be validated"]
        return []

    return check


def _fast(bundle: Bundle) -> Callable[[Any], Any] | None:
    """A fastjsonschema function for the bundle, or ``None`` when it would not agree."""
    dialects = bundle.dialects
    if len(dialects) != 1:
        return None
    (dialect,) = dialects
    documents = [bundle.document, *(doc for doc, _ in bundle.references.values())]
    if dialect not in _FAST_DIALECTS and not all(_draft7_alike(d, dialect) for d in documents):
        return None
    remote = {uri: _prepared(doc) for uri, doc in bundle.remote.items()}

    def fetch(uri: str) -> Any:
        found = remote.get(uri, remote.get(urlsplit(uri).geturl()))
        if found is None:
            raise LookupError(f"unknown reference {uri!r}")
        return copy.deepcopy(found)  # fastjsonschema rewrites $ref values in place

    try:
        return fastjsonschema.compile(
            _prepared(bundle.document),
            handlers=_AnyScheme(fetch),
            use_default=False,
            use_formats=False,
        )
    except Exception:  # a construct fastjsonschema cannot compile: jsonschema alone
        return None


class _AnyScheme(Mapping[str, Callable[[str], Any]]):
    """fastjsonschema's handlers by URI scheme: ours for every scheme, so nothing is fetched."""

    def __init__(self, fetch: Callable[[str], Any]) -> None:
        self._fetch = fetch

    def __getitem__(self, scheme: str) -> Callable[[str], Any]:
        return self._fetch

    def __contains__(self, scheme: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for _, child in subschemas(node):
            yield from _nodes(child)


def _draft7_alike(document: Any, dialect: Dialect) -> bool:
    """A 2019-09/2020-12 document that means the same when read as draft 7."""
    for node in _nodes(document):
        if node.keys() & _BEYOND_DRAFT7:
            return False
        if "$ref" in node and (node.keys() - {"$ref"}) & dialect.keywords:
            return False  # 2019-09+ apply $ref's siblings, draft 7 ignores them
        if dialect.prefix_items and isinstance(node.get("items"), list):
            return False
    return True


def _prepared(document: Any) -> Any:
    """A copy for fastjsonschema: annotations removed, patterns' ``$`` made explicit."""
    prepared = copy.deepcopy(document)
    for node in _nodes(prepared):
        for keyword in _ANNOTATIONS:
            node.pop(keyword, None)
        if isinstance(node.get("pattern"), str):
            node["pattern"] = python_dollar(node["pattern"])
    return prepared


def python_dollar(pattern: str) -> str:
    """``pattern`` with each anchor ``$`` written as ``(?=\\n?\\Z)`` and each ``$`` inside a
    character class escaped: fastjsonschema turns bare ``$`` into ``\\Z``; this keeps the
    meaning Python's ``re`` (and jsonschema, and Java) give ``$``."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            elif c == "$":
                c = "\\$"
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            for literal in ("^", "]"):  # "[^...]" and a leading "]" are part of the class
                if pattern[i : i + 1] == literal:
                    out.append(literal)
                    i += 1
            continue
        elif c == "$":
            c = "(?=\\n?\\Z)"
        out.append(c)
        i += 1
    return "".join(out)


def _where(path: Any) -> str:
    return pointer(list(path)) or "(root)"


def _short(message: str) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
