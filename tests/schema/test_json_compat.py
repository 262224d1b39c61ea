"""JSON Schema compatibility: a conformance table, kept honest by documents.

Each case says whether a READER schema accepts every document its WRITER schema accepts,
which rule is reported when it does not, and why. Two checks keep the table (and the
checker) honest, both judged by jsonschema rather than by the code under test:

* every case lists sample documents valid under the writer; for a compatible case they
  must be valid under the reader too, and a fixed pool of a few hundred generated
  documents is run through every compatible case the same way;
* an incompatible case carries, where one exists, a witness: a document valid under the
  writer and invalid under the reader. The one case without a witness is a deliberate
  false alarm (two different but equivalent regular expressions).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator
from jsonschema.validators import validator_for

from eventml.schema.errors import InvalidSchema
from eventml.schema.json_schema import check, parse

NO_WITNESS = object()
D2020 = "https://json-schema.org/draft/2020-12/schema"
D4 = "http://json-schema.org/draft-04/schema#"


@dataclass(frozen=True)
class Case:
    id: str
    reader: Any
    writer: Any
    compatible: bool
    rule: str | None
    reason: str
    samples: tuple[Any, ...]  # documents valid under the writer
    witness: Any = NO_WITNESS  # valid under the writer, invalid under the reader


def obj(props: dict[str, Any], *, closed: bool = False, required: list[str] | None = None, **more: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if closed:
        schema["additionalProperties"] = False
    if required:
        schema["required"] = required
    return {**schema, **more}


STR, INT, NUM = {"type": "string"}, {"type": "integer"}, {"type": "number"}
TREE_INT = obj({"value": INT, "children": {"type": "array", "items": {"$ref": "#"}}})
TREE_NUM = obj({"value": NUM, "children": {"type": "array", "items": {"$ref": "#"}}})
CARD = obj({"kind": {"const": "card"}, "pan": STR}, required=["kind", "pan"])
BANK = obj({"kind": {"const": "bank"}, "iban": STR}, required=["kind", "iban"])
WALLET = obj({"kind": {"const": "wallet"}}, required=["kind"])
ITE = obj(
    {"unit": STR, "value": {}},
    **{
        "if": {"properties": {"unit": {"const": "count"}}},
        "then": {"properties": {"value": INT}},
        "else": {"properties": {"value": NUM}},
    },
)

CASES = [
    # -- content models -------------------------------------------------------------------
    Case("closed-reader-adds-optional-property", obj({"a": STR, "b": INT}, closed=True), obj({"a": STR}, closed=True), True, None,
         "a closed writer never writes 'b', so an optional 'b' in the reader never sees a value",
         ({"a": "x"}, {})),
    Case("closed-reader-adds-required-property", obj({"a": STR, "b": INT}, closed=True, required=["b"]), obj({"a": STR}, closed=True), False,
         "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", "no writer document has 'b', and the reader requires it",
         ({"a": "x"},), {"a": "x"}),
    Case("open-reader-adds-typed-property", obj({"a": STR, "b": INT}), obj({"a": STR}), False, "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
         "an open writer may already carry 'b' with any value, which the reader now types",
         ({"a": "x"}, {"a": "x", "b": 1}), {"a": "x", "b": "not a number"}),
    Case("open-reader-adds-untyped-property", obj({"a": STR, "b": {"description": "anything"}}), obj({"a": STR}), True, None,
         "the new property's schema accepts anything, so whatever an open writer put there passes",
         ({"a": "x", "b": [1]}, {})),
    Case("open-writer-typed-extras-fit-new-property", obj({"a": STR, "b": STR}, additionalProperties=STR), obj({"a": STR}, additionalProperties=STR), True, None,
         "the writer's undeclared properties are strings, and the reader's new 'b' is a string",
         ({"a": "x", "b": "y", "c": "z"},)),
    Case("optional-property-made-required", obj({"a": STR}, required=["a"]), obj({"a": STR}), False, "REQUIRED_ATTRIBUTE_ADDED",
         "the writer may omit 'a'", ({"a": "x"}, {}), {}),
    Case("required-property-made-optional", obj({"a": STR}), obj({"a": STR}, required=["a"]), True, None,
         "a document that has 'a' is still fine when 'a' is optional", ({"a": "x"},)),
    Case("closed-reader-removes-property", obj({"a": STR}, closed=True), obj({"a": STR, "b": STR}, closed=True), False,
         "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", "writer documents may carry 'b', which the closed reader rejects",
         ({"a": "x"},), {"a": "x", "b": "y"}),
    Case("open-reader-removes-property", obj({"a": STR}), obj({"a": STR, "b": STR}, closed=True), True, None,
         "an open reader accepts 'b' as an undeclared property", ({"a": "x", "b": "y"},)),
    Case("open-writer-closed-reader", obj({"a": STR}, closed=True), obj({"a": STR}), False, "ADDITIONAL_PROPERTIES_NARROWED",
         "the open writer allows any extra property, the closed reader none", ({"a": "x"},), {"a": "x", "zzz": 1}),
    Case("closed-writer-open-reader", obj({"a": STR}), obj({"a": STR}, closed=True), True, None,
         "opening the content model only accepts more", ({"a": "x"}, {})),
    Case("additional-properties-schema-narrowed", {"type": "object", "additionalProperties": INT}, {"type": "object", "additionalProperties": NUM}, False,
         "ADDITIONAL_PROPERTIES_NARROWED", "the writer's extra properties may be fractions", ({"k": 1},), {"k": 1.5}),
    Case("pattern-properties-added-to-open-model", obj({}, patternProperties={"^x_": STR}), obj({}), False, "ADDITIONAL_PROPERTIES_NARROWED",
         "an open writer may write x_1 with any value; the reader now wants a string", ({"x_1": "s"},), {"x_1": 5}),
    Case("nested-property-type-narrowed", obj({"customer": obj({"age": INT})}), obj({"customer": obj({"age": NUM})}), False, "TYPE_NARROWED",
         "the rule applies inside nested objects", ({"customer": {"age": 30}},), {"customer": {"age": 30.5}}),
    Case("nested-closed-object-adds-optional", obj({"customer": obj({"name": STR, "email": STR}, closed=True)}), obj({"customer": obj({"name": STR}, closed=True)}), True, None,
         "closed nested writer objects never carry 'email'", ({"customer": {"name": "n"}},)),
    # -- types --------------------------------------------------------------------------
    Case("integer-widened-to-number", NUM, INT, True, None, "every integer is a number", (1, -7, 10**12)),
    Case("number-narrowed-to-integer", INT, NUM, False, "TYPE_NARROWED", "the writer may write 1.5", (1, 2.5), 1.5),
    Case("string-changed-to-integer", INT, STR, False, "TYPE_CHANGED", "no writer value is an integer", ("x",), "x"),
    Case("null-added-to-type-list", {"type": ["string", "null"]}, STR, True, None, "the reader accepts more types", ("x",)),
    Case("null-removed-from-type-list", STR, {"type": ["string", "null"]}, False, "TYPE_NARROWED", "the writer may write null", ("x", None), None),
    Case("nullable-via-anyof-removed", STR, {"anyOf": [STR, {"type": "null"}]}, False, "TYPE_CHANGED",
         "the writer's null branch is checked on its own: null is no string at all", ("x", None), None),
    # -- numbers ------------------------------------------------------------------------
    Case("maximum-decreased", {"type": "integer", "maximum": 100}, {"type": "integer", "maximum": 1000}, False, "MAXIMUM_DECREASED",
         "writer values between 101 and 1000 fail the reader", (5, 1000), 500),
    Case("maximum-increased", {"type": "integer", "maximum": 1000}, {"type": "integer", "maximum": 100}, True, None,
         "a wider range accepts the narrower one", (100, -5)),
    Case("maximum-added", {"type": "number", "maximum": 10}, NUM, False, "MAXIMUM_ADDED", "the writer is unbounded", (1,), 11),
    Case("minimum-increased", {"type": "number", "minimum": 0}, {"type": "number", "minimum": -10}, False, "MINIMUM_INCREASED",
         "writer values below zero fail the reader", (0, 5), -1),
    Case("integer-exclusive-minimum-equals-minimum", {"type": "integer", "minimum": 1}, {"type": "integer", "exclusiveMinimum": 0}, True, None,
         "for integers, > 0 is >= 1", (1, 2)),
    Case("maximum-made-exclusive", {"type": "number", "exclusiveMaximum": 10}, {"type": "number", "maximum": 10}, False,
         "EXCLUSIVE_MAXIMUM_DECREASED", "the writer may write exactly 10", (9.5, 10), 10),
    Case("draft4-boolean-exclusive-maximum", {"$schema": D4, "type": "number", "maximum": 10, "exclusiveMaximum": True}, {"$schema": D4, "type": "number", "maximum": 10}, False,
         "EXCLUSIVE_MAXIMUM_DECREASED", "draft-04 spells exclusivity as a boolean beside maximum", (10,), 10),
    Case("multiple-of-divides", {"type": "number", "multipleOf": 0.5}, {"type": "number", "multipleOf": 1.5}, True, None,
         "every multiple of 1.5 is a multiple of 0.5", (3, 4.5)),
    Case("multiple-of-changed", {"type": "integer", "multipleOf": 2}, {"type": "integer", "multipleOf": 3}, False, "MULTIPLE_OF_CHANGED",
         "3 is a multiple of 3, not of 2", (6,), 3),
    # -- strings -------------------------------------------------------------------------
    Case("max-length-decreased", {"type": "string", "maxLength": 5}, {"type": "string", "maxLength": 10}, False, "MAX_LENGTH_DECREASED",
         "writer strings of 6 to 10 characters fail the reader", ("abc",), "abcdef"),
    Case("max-length-added", {"type": "string", "maxLength": 3}, STR, False, "MAX_LENGTH_ADDED", "the writer's strings are unbounded", ("a",), "abcd"),
    Case("min-length-increased", {"type": "string", "minLength": 2}, {"type": "string", "minLength": 1}, False, "MIN_LENGTH_INCREASED",
         "one-character writer strings fail the reader", ("ab",), "a"),
    Case("pattern-added", {"type": "string", "pattern": "^[A-Z]{3}$"}, STR, False, "PATTERN_ADDED", "the writer's strings are free-form", ("EUR",), "euro"),
    Case("pattern-unchanged", {"type": "string", "pattern": "^[A-Z]{3}$"}, {"type": "string", "pattern": "^[A-Z]{3}$"}, True, None,
         "identical patterns", ("EUR", "USD")),
    Case("pattern-rewritten-equivalently", {"type": "string", "pattern": "^a.*"}, {"type": "string", "pattern": "^a"}, False, "PATTERN_CHANGED",
         "a deliberate false alarm: both patterns mean 'starts with a', but regular expressions are only compared for equality",
         ("a", "abc")),
    # -- enums and constants ---------------------------------------------------------------
    Case("enum-value-removed", {"enum": ["a", "b"]}, {"enum": ["a", "b", "c"]}, False, "ENUM_ARRAY_NARROWED", "the writer may write 'c'",
         ("a", "c"), "c"),
    Case("enum-value-added", {"enum": ["a", "b", "c"]}, {"enum": ["a", "b"]}, True, None, "every writer value is still listed", ("a", "b")),
    Case("enum-added-to-string", {"type": "string", "enum": ["EUR", "USD"]}, STR, False, "ENUM_ARRAY_NARROWED", "the writer's strings are free-form",
         ("EUR",), "GBP"),
    Case("const-changed", {"const": "v2"}, {"const": "v1"}, False, "CONST_CHANGED", "the writer only writes 'v1'", ("v1",), "v1"),
    Case("finite-writer-checked-value-by-value", {"type": "string", "maxLength": 3}, {"enum": ["EUR", "USD"]}, True, None,
         "both writer values are short strings (an enum is checked value by value)", ("EUR", "USD")),
    Case("integer-range-fits-enum", {"enum": [1, 2, 3]}, {"type": "integer", "minimum": 1, "maximum": 3}, True, None,
         "the writer's integers 1..3 are all listed (a small range is checked value by value)", (1, 3)),
    # -- arrays --------------------------------------------------------------------------
    Case("items-widened", {"type": "array", "items": NUM}, {"type": "array", "items": INT}, True, None, "integers are numbers", ([1, 2], [])),
    Case("items-narrowed", {"type": "array", "items": INT}, {"type": "array", "items": NUM}, False, "TYPE_NARROWED",
         "item schemas are compared like any schema", ([1],), [1.5]),
    Case("max-items-decreased", {"type": "array", "maxItems": 2}, {"type": "array", "maxItems": 5}, False, "MAX_ITEMS_DECREASED",
         "writer arrays of 3 to 5 items fail the reader", ([1],), [1, 2, 3]),
    Case("min-items-added", {"type": "array", "minItems": 1}, {"type": "array"}, False, "MIN_ITEMS_ADDED", "the writer may write []", ([1],), []),
    Case("unique-items-added", {"type": "array", "uniqueItems": True}, {"type": "array"}, False, "UNIQUE_ITEMS_ADDED", "the writer may repeat items",
         ([1, 2],), [1, 1]),
    Case("closed-tuple-shortened", {"type": "array", "items": [STR, INT], "additionalItems": False},
         {"type": "array", "items": [STR, INT, STR], "additionalItems": False}, False, "ITEMS_CHANGED",
         "the writer's tuples may have a third item", (["a", 1],), ["a", 1, "b"]),
    Case("prefix-items-2020", {"$schema": D2020, "type": "array", "prefixItems": [STR, NUM], "items": False},
         {"$schema": D2020, "type": "array", "prefixItems": [STR, INT], "items": False}, True, None,
         "2020-12 tuples: the second position widens from integer to number", (["a", 1], ["a"])),
    # -- combinators ---------------------------------------------------------------------
    Case("anyof-branch-added", {"anyOf": [STR, INT, {"type": "null"}]}, {"anyOf": [STR, INT]}, True, None, "more branches accept more", ("x", 1)),
    Case("anyof-branch-removed", {"anyOf": [STR, INT]}, {"anyOf": [STR, INT, {"type": "null"}]}, False, "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
         "the writer's null branch is covered by no reader branch", ("x", None), None),
    Case("anyof-reader-covers-type-list", {"anyOf": [STR, {"type": "null"}]}, {"type": ["string", "null"]}, True, None,
         "a writer type list is split by type and each part finds its branch", ("x", None)),
    Case("anyof-reader-misses-a-type", {"anyOf": [STR, {"type": "null"}]}, {"type": ["string", "integer"]}, False,
         "COMBINED_TYPE_SUBSCHEMAS_CHANGED", "writer integers match no branch", ("x", 1), 1),
    Case("oneof-discriminated-branch-added", {"oneOf": [CARD, BANK, WALLET]}, {"oneOf": [CARD, BANK]}, True, None,
         "the 'kind' constants keep the branches apart, so each writer document matches exactly one",
         ({"kind": "card", "pan": "4242"}, {"kind": "bank", "iban": "DE00"})),
    Case("oneof-discriminated-branch-removed", {"oneOf": [CARD, BANK]}, {"oneOf": [CARD, BANK, WALLET]}, False,
         "COMBINED_TYPE_SUBSCHEMAS_CHANGED", "wallet documents match no reader branch", ({"kind": "wallet"},), {"kind": "wallet"}),
    Case("oneof-overlapping-branches", {"oneOf": [NUM, INT]}, INT, False, "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
         "an integer matches both branches, and oneOf wants exactly one", (1,), 1),
    Case("not-excludes-writer-type", {"not": STR}, INT, True, None, "no integer is a string", (1,)),
    Case("not-matches-writer-values", {"not": STR}, {"type": ["string", "integer"]}, False, "NOT_CHANGED",
         "writer strings match the reader's forbidden schema", (1, "x"), "x"),
    Case("writer-allof-merges", obj({"a": INT}, required=["a"]), {"allOf": [obj({"a": INT}), {"required": ["a"]}]}, True, None,
         "allOf branches are conjoined: together they require an integer 'a'", ({"a": 1},)),
    Case("if-then-else-unchanged", ITE, ITE, True, None, "identical conditionals",
         ({"unit": "count", "value": 3}, {"unit": "kg", "value": 1.5})),
    Case("if-then-narrowed", obj(ITE["properties"], **{"if": ITE["if"], "then": {"properties": {"value": {"type": "integer", "minimum": 0}}}, "else": ITE["else"]}),
         ITE, False, "CONDITIONAL_CHANGED", "counts may now be negative in the writer only", ({"unit": "count", "value": 1},),
         {"unit": "count", "value": -1}),
    # -- references and booleans ---------------------------------------------------------
    Case("ref-to-definition-narrowed", {"definitions": {"Age": INT}, "type": "object", "properties": {"age": {"$ref": "#/definitions/Age"}}},
         obj({"age": NUM}), False, "TYPE_NARROWED", "$ref is followed: the definition is an integer", ({"age": 1},), {"age": 1.5}),
    Case("recursive-schema-widened", TREE_NUM, TREE_INT, True, None, "recursion through $ref is compared pairwise, once",
         ({"value": 1, "children": [{"value": 2, "children": []}]},)),
    Case("recursive-schema-narrowed", TREE_INT, TREE_NUM, False, "TYPE_NARROWED", "a nested child may carry a fraction",
         ({"value": 1},), {"value": 1, "children": [{"value": 2.5}]}),
    Case("reader-true", True, obj({"a": STR}), True, None, "true accepts everything", ({"a": "x"}, {})),
    Case("reader-false", False, STR, False, "TYPE_NARROWED", "false accepts nothing", ("x",), "x"),
    Case("writer-false", STR, False, True, None, "a writer that accepts nothing writes nothing", ()),
    Case("dependency-added", obj({"a": STR, "b": STR}, dependencies={"a": ["b"]}), obj({"a": STR, "b": STR}), False, "DEPENDENCY_ARRAY_ADDED",
         "the writer may write 'a' without 'b'", ({"a": "x", "b": "y"},), {"a": "x"}),
]

BY_ID = {c.id: c for c in CASES}


def _parsed(schema: Any) -> Any:
    return parse(json.dumps(schema))


def _valid(schema: Any, doc: Any) -> bool:
    cls = validator_for(schema, default=Draft7Validator)
    return bool(cls(schema).is_valid(doc))


def test_the_table_is_large_and_covers_both_outcomes() -> None:
    assert len(CASES) >= 30 and len(BY_ID) == len(CASES)
    assert sum(c.compatible for c in CASES) >= 15 and sum(not c.compatible for c in CASES) >= 15
    assert all(c.reason for c in CASES)
    without = [c.id for c in CASES if not c.compatible and c.witness is NO_WITNESS]
    assert without == ["pattern-rewritten-equivalently"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_conformance(case: Case) -> None:
    found = check(_parsed(case.reader), _parsed(case.writer))
    assert (not found) == case.compatible, [str(f) for f in found]
    if case.rule is not None:
        assert case.rule in {f.rule for f in found}, [str(f) for f in found]
    for f in found:
        assert f.rule.isupper() and (f.path == "" or f.path.startswith("/"))
        assert f.rule in f.message and f.message.endswith(".")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_samples_are_writer_documents_and_compatible_readers_accept_them(case: Case) -> None:
    for doc in case.samples:
        assert _valid(case.writer, doc), f"sample {doc!r} is not valid under the writer"
        if case.compatible:
            assert _valid(case.reader, doc), f"compatible, yet the reader rejects {doc!r}"


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.witness is not NO_WITNESS], ids=lambda c: c.id
)
def test_witness_proves_the_incompatibility(case: Case) -> None:
    assert not case.compatible
    assert _valid(case.writer, case.witness), "the witness must be a writer document"
    assert not _valid(case.reader, case.witness), "the witness must fail the reader"


def _pool(size: int = 400) -> list[Any]:
    """Deterministic documents of every shape the table's schemas talk about."""
    rng = random.Random(20240611)
    scalars: list[Any] = [None, True, False, 0, 1, -1, 2, 3, 5, 6, 10, 11, 100, 500, 1000, 10**12,
                          0.5, 1.5, 2.5, -2.5, "", "a", "x", "ab", "abc", "abcd", "abcdef", "EUR",
                          "USD", "GBP", "euro", "c", "v1", "v2", "count", "kg", "card", "bank", "wallet"]
    keys = ["a", "b", "c", "k", "x_1", "zzz", "age", "name", "email", "kind", "pan", "iban",
            "unit", "value", "customer", "children"]

    def value(depth: int) -> Any:
        roll = rng.random()
        if depth > 2 or roll < 0.5:
            return rng.choice(scalars)
        if roll < 0.75:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(keys): value(depth + 1) for _ in range(rng.randint(0, 3))}

    return [value(0) for _ in range(size)]


POOL = _pool()


def test_pool_documents_of_compatible_writers_pass_their_readers() -> None:
    checked = 0
    for case in CASES:
        if not case.compatible:
            continue
        writer = validator_for(case.writer, default=Draft7Validator)(case.writer)
        reader = validator_for(case.reader, default=Draft7Validator)(case.reader)
        for doc in POOL:
            if writer.is_valid(doc):
                checked += 1
                assert reader.is_valid(doc), f"{case.id}: reader rejects writer document {doc!r}"
    assert checked > 300  # the pool reaches most compatible writers


def test_findings_locate_the_property() -> None:
    (finding,) = check(_parsed(BY_ID["nested-property-type-narrowed"].reader), _parsed(BY_ID["nested-property-type-narrowed"].writer))
    assert finding.path == "/properties/customer/properties/age"
    assert finding.field == "age"
    assert "'customer.age'" in finding.message and "TYPE_NARROWED" in finding.message
    removed = check(_parsed(BY_ID["closed-reader-removes-property"].reader), _parsed(BY_ID["closed-reader-removes-property"].writer))
    assert [(f.rule, f.path, f.field) for f in removed] == [("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", "/additionalProperties", "b")]


def test_every_schema_is_compatible_with_itself() -> None:
    for case in CASES:
        for schema in (case.reader, case.writer):
            assert check(_parsed(schema), _parsed(schema)) == [], case.id


def test_compatibility_is_not_symmetric() -> None:
    case = BY_ID["closed-reader-adds-optional-property"]
    assert check(_parsed(case.reader), _parsed(case.writer)) == []
    reverse = check(_parsed(case.writer), _parsed(case.reader))
    assert [f.rule for f in reverse] == ["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"]


def test_references_are_compared_through() -> None:
    v1 = json.dumps(obj({"name": STR}, required=["name"]))
    v2 = json.dumps(obj({"name": STR, "age": INT}, required=["name", "age"]))
    order = json.dumps(obj({"customer": {"$ref": "customer.json"}}))
    old, new = parse(order, {"customer.json": v1}), parse(order, {"customer.json": v2})
    assert check(old, new) == []
    assert {f.rule for f in check(new, old)} >= {"REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"}
    for finding in check(new, old):  # located in the referenced document, named from the root
        assert finding.path == "customer.json#/properties/age" and finding.field == "age"
        assert "'customer.age'" in finding.message


def test_findings_behind_a_ref_point_at_the_definition() -> None:
    case = BY_ID["ref-to-definition-narrowed"]
    (finding,) = check(_parsed(case.reader), _parsed(case.writer))
    assert (finding.path, finding.field) == ("/definitions/Age", "age")
    assert finding.message.startswith("Property 'age' (TYPE_NARROWED)")


def test_recursive_definitions_are_compared_once() -> None:
    """20 definitions referring to each other three times each: 3**20 routes, one comparison each."""
    defs = {
        f"D{i}": obj({f"p{j}": {"$ref": f"#/$defs/D{(i + 1) % 20}"} if j % 3 == 2 else INT for j in range(9)})
        for i in range(20)
    }
    reader = {"$defs": defs, **obj({f"f{k}": {"$ref": f"#/$defs/D{k}"} for k in range(20)})}
    writer = json.loads(json.dumps(reader))
    writer["$defs"]["D5"]["properties"]["p0"] = NUM
    assert check(_parsed(writer), _parsed(reader)) == []
    (finding,) = check(_parsed(reader), _parsed(writer))
    assert (finding.rule, finding.path) == ("TYPE_NARROWED", "/$defs/D5/properties/p0")


def test_transitive_example_from_the_reference() -> None:
    """v0 {age}; v1 adds first_name with a default; v2 requires first_name, adds last_name."""
    v0 = obj({"age": INT}, closed=True)
    v1 = obj({"age": INT, "first_name": {"type": "string", "default": "John"}}, closed=True)
    v2 = obj({"age": INT, "first_name": STR, "last_name": {"type": "string", "default": "Doe"}}, closed=True, required=["first_name"])
    assert check(_parsed(v1), _parsed(v0)) == []  # adding an optional property to a closed model
    assert [f.rule for f in check(_parsed(v2), _parsed(v0))] == ["REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"]
    # JSON documents carry no default: v1 writers may omit first_name, so v2 cannot read them
    assert [f.rule for f in check(_parsed(v2), _parsed(v1))] == ["REQUIRED_ATTRIBUTE_ADDED"]


def test_patterns_the_checker_cannot_compare_are_reported() -> None:
    reader = obj({}, patternProperties={"^x": INT})
    writer = obj({}, patternProperties={"^x_": NUM}, additionalProperties=False)
    assert [f.rule for f in check(_parsed(reader), _parsed(writer))] == ["PATTERN_PROPERTIES_CHANGED"]
    same = obj({}, patternProperties={"^x_": INT}, additionalProperties=False)
    assert check(_parsed(same), _parsed(obj({}, patternProperties={"^x_": INT}, additionalProperties=False))) == []


# -- random pairs: whenever the checker says "compatible", writer documents pass the reader ----

_NAMES = st.sampled_from(["a", "b", "x_1"])
_LEAVES = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["string", "integer", "number", "boolean", "null"])},
        optional={
            "minimum": st.integers(-3, 3),
            "exclusiveMaximum": st.integers(-3, 3),
            "maxLength": st.integers(0, 3),
            "multipleOf": st.sampled_from([1, 2, 0.5]),
            "pattern": st.sampled_from(["^a", "b$"]),
        },
    ),
    st.fixed_dictionaries({"enum": st.lists(st.sampled_from([0, 1, "a", "b", None, True, 1.5]), min_size=1, max_size=3)}),
    st.just({}),
    st.just(False),
    st.just({"$ref": "#"}),
    st.just({"$ref": "#/definitions/A"}),
)


def _compound(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("object"), "properties": st.dictionaries(_NAMES, inner, max_size=3)},
            optional={
                "required": st.lists(_NAMES, max_size=2, unique=True),
                "additionalProperties": st.one_of(st.booleans(), inner),
                "patternProperties": st.dictionaries(st.sampled_from(["^x_", "^b"]), inner, max_size=1),
            },
        ),
        st.fixed_dictionaries(
            {"type": st.just("array"), "items": st.one_of(inner, st.lists(inner, max_size=2))},
            optional={"maxItems": st.integers(0, 3), "uniqueItems": st.booleans(), "additionalItems": inner},
        ),
        st.fixed_dictionaries({"anyOf": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"oneOf": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"allOf": st.lists(inner, min_size=1, max_size=2)}),
        st.fixed_dictionaries({"not": inner}),
        st.fixed_dictionaries({"if": inner, "then": inner, "else": inner}),
    )


_SCHEMAS = st.recursive(_LEAVES, _compound, max_leaves=5)
_DOCUMENTS = st.builds(
    lambda a, s: {"definitions": {"A": a}, **s} if isinstance(s, dict) else {"definitions": {"A": a}, "allOf": [s]},
    _SCHEMAS,
    _SCHEMAS,
)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-4, 4) | st.sampled_from([0.5, 1.5, "", "a", "b", "ab", "x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_NAMES, inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(_DOCUMENTS, _DOCUMENTS, st.lists(_VALUES, min_size=20, max_size=20))
def test_random_pairs_the_checker_calls_compatible_are(reader: Any, writer: Any, values: list[Any]) -> None:
    try:
        r, w = _parsed(reader), _parsed(writer)
    except InvalidSchema:
        return  # e.g. a $ref loop that never descends into the value
    assert check(r, r) == []
    if check(r, w):
        return
    read, written = Draft7Validator(reader), Draft7Validator(writer)
    for value in values:
        try:
            if written.is_valid(value):
                assert read.is_valid(value), value
        except (TypeError, RecursionError):  # jsonschema's own limits ("items": true beside additionalItems)
            return
