"""The JSON Schema type: parsing (and refusing), canonical form, references, the compiled
validator (checked against jsonschema), filling defaults and deriving schemas from classes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
from typing import Any

import orjson
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator, Draft202012Validator
from typing_extensions import TypedDict

from eventml.schema._json_validate import _fast
from eventml.schema.errors import InvalidSchema
from eventml.schema.json_schema import JsonSchema, check, parse, schema_for
from eventml.schema.types import ParsedSchema

# -- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not valid JSON"),
        ('{"type": "string"', "not valid JSON"),
        ('{"type": NaN}', "not valid JSON"),
        ("[1, 2]", "a JSON object or a boolean, not array"),
        ('"string"', "a JSON object or a boolean, not str"),
        ('{"type": "strin"}', "'strin' is not valid under any of the given schemas at /type"),
        (
            '{"properties": {"a": {"type": "strin"}}}',
            "'strin' is not valid under any of the given schemas at /properties/a/type",
        ),
        ('{"minimum": "1"}', "'1' is not of type 'number' at /minimum"),
        ('{"required": "a"}', "'a' is not of type 'array' at /required"),
        ('{"pattern": "("}', "'(' is not a 'regex' at /pattern"),
        ('{"$ref": "#/definitions/missing"}', "cannot resolve $ref '#/definitions/missing'"),
        ('{"$ref": "https://example.com/x.json"}', "cannot resolve $ref"),
        ('{"$schema": "http://json-schema.org/draft-03/schema#"}', "unsupported $schema"),
        ('{"$schema": 7}', "$schema must be a string"),
        ('{"a":' * 150 + "1" + "}" * 150, "nested deeper than 100 levels"),
    ],
)
def test_malformed_schemas_raise_invalid_schema(text: str, message: str) -> None:
    with pytest.raises(InvalidSchema) as info:
        parse(text)
    assert str(info.value).startswith("Invalid JSON schema: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert (info.value.status, info.value.code) == (422, 42201)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_text_parses_or_raises_invalid_schema(text: str) -> None:
    with contextlib.suppress(InvalidSchema):
        parse(text)


_KEYS = st.sampled_from(
    ["type", "properties", "items", "$ref", "required", "enum", "anyOf", "not", "if", "then",
     "additionalProperties", "definitions", "minimum", "pattern", "prefixItems", "$schema", "$id", "a"]
)
_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["string", "object", "#", "#/definitions/a", "a.json", "(", "^a$",
                       "https://json-schema.org/draft/2020-12/schema"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_JSONISH)
def test_any_json_parses_or_raises_invalid_schema(value: Any) -> None:
    try:
        schema = parse(json.dumps(value))
    except InvalidSchema:
        return
    assert check(schema, schema) == []
    schema.validator()(value)


@pytest.mark.parametrize(("text", "accepts"), [("true", True), ("{}", True), ("false", False)])
def test_booleans_and_the_empty_schema_are_schemas(text: str, accepts: bool) -> None:
    check_value = parse(text).validator()
    for value in ({"anything": 1}, None, 3, "x"):
        assert (check_value(value) == []) is accepts


def test_dialects() -> None:
    assert parse('{"type": "string"}').dialect == "draft7"
    for uri, name in [
        ("http://json-schema.org/draft-04/schema#", "draft4"),
        ("http://json-schema.org/draft-06/schema#", "draft6"),
        ("http://json-schema.org/draft-07/schema", "draft7"),
        ("https://json-schema.org/draft/2019-09/schema", "draft2019-09"),
        ("https://json-schema.org/draft/2020-12/schema", "draft2020-12"),
    ]:
        assert parse(json.dumps({"$schema": uri, "type": "string"})).dialect == name


def test_satisfies_the_registry_protocol() -> None:
    schema: ParsedSchema = parse('{"type": "string"}')
    assert schema.schema_type == "JSON" and schema.text == '{"type": "string"}'
    assert parse("{}").document == {} and parse("true").document is True


def test_canonical_ignores_whitespace_and_key_order() -> None:
    a = parse('{"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "integer"}}}')
    b = parse('{"properties":{"a":{"type":"integer"},"b":{"type":"string"}},\n  "type":"object"}')
    assert a.canonical == b.canonical
    assert a.canonical == '{"properties":{"a":{"type":"integer"},"b":{"type":"string"}},"type":"object"}'
    assert parse('{"type": "string"}').canonical != parse('{"type": "integer"}').canonical
    assert orjson.loads(a.canonical) == a.document


# -- references ----------------------------------------------------------------------------

CUSTOMER = json.dumps(
    {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
)
ORDER = json.dumps(
    {
        "type": "object",
        "properties": {"id": {"type": "string"}, "customer": {"$ref": "customer.json"}},
        "required": ["id", "customer"],
    }
)


def test_ref_to_a_referenced_schema() -> None:
    order = parse(ORDER, {"customer.json": CUSTOMER})
    check_order = order.validator()
    assert check_order({"id": "o1", "customer": {"name": "Ada"}}) == []
    assert check_order({"id": "o1", "customer": {}}) == ["/customer: 'name' is a required property"]
    assert _fast(order._bundle) is not None  # the reference did not stop compilation


def test_references_resolve_against_the_schema_id() -> None:
    order = json.loads(ORDER)
    order["$id"] = "https://schemas.example.com/order.json"
    schema = parse(json.dumps(order), {"customer.json": CUSTOMER})
    assert schema.validator()({"id": "o1", "customer": {"name": 3}}) == [
        "/customer/name: 3 is not of type 'string'"
    ]


def test_references_are_checked() -> None:
    with pytest.raises(InvalidSchema, match=r"cannot resolve \$ref 'customer\.json'"):
        parse(ORDER)
    with pytest.raises(InvalidSchema, match=r"reference 'customer\.json': not valid JSON"):
        parse(ORDER, {"customer.json": "{"})
    with pytest.raises(InvalidSchema, match=r"reference 'customer\.json': 'strin' is not valid"):
        parse(ORDER, {"customer.json": '{"type": "strin"}'})
    nested = json.dumps({"$ref": "address.json"})
    with pytest.raises(InvalidSchema, match=r"cannot resolve \$ref 'address\.json' at reference 'customer\.json'"):
        parse(ORDER, {"customer.json": nested})
    assert parse(ORDER, {"customer.json": nested, "address.json": '{"type": "object"}'})


def test_local_definitions() -> None:
    schema = parse(json.dumps({
        "definitions": {"Amount": {"type": "number", "minimum": 0}},
        "type": "object",
        "properties": {"amount": {"$ref": "#/definitions/Amount"}},
    }))
    assert schema.validator()({"amount": -1}) == ["/amount: -1 is less than the minimum of 0"]


# -- the validator ---------------------------------------------------------------------------

EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 12},
        "card": {"type": "string", "pattern": "^[0-9]{4}$"},
        "amount": {"type": "number", "minimum": 0, "exclusiveMaximum": 10000},
        "currency": {"enum": ["EUR", "USD", "GBP"]},
        "qty": {"type": "integer", "minimum": 1, "multipleOf": 1},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3, "uniqueItems": True},
        "flags": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "note": {"type": ["string", "null"]},
        "kind": {"const": 1},
    },
    "required": ["id", "amount", "currency"],
    "additionalProperties": False,
}
_FIELD = {
    "id": st.text(max_size=14),
    "card": st.from_regex(r"^[0-9]{3,5}\n?$") | st.text(max_size=5),
    "amount": st.integers(-5, 20000) | st.floats(-1, 20000, allow_nan=False) | st.text(max_size=2),
    "currency": st.sampled_from(["EUR", "USD", "GBP", "JPY", 1, None, True]),
    "qty": st.integers(-1, 5) | st.sampled_from([1.0, 2.5, True, "1"]),
    "tags": st.lists(st.sampled_from(["a", "b", "c", 1]), max_size=4),
    "flags": st.dictionaries(st.sampled_from(["x", "y"]), st.booleans() | st.integers(0, 1)),
    "note": st.none() | st.text(max_size=3) | st.integers(0, 1),
    "kind": st.sampled_from([1, 1.0, True, 2, "1"]),
    "extra": st.integers(),
}


@st.composite
def _events(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.none() | st.lists(st.integers(), max_size=2) | st.text(max_size=3))
    wanted = draw(st.sets(st.sampled_from(sorted(_FIELD)), max_size=len(_FIELD)))
    event = {"id": "e1", "amount": 1.5, "currency": "EUR"} if draw(st.booleans()) else {}
    for name in sorted(wanted):
        event[name] = draw(_FIELD[name])
    return event


_COMPILED = parse(json.dumps(EVENT_SCHEMA))
_REFERENCE = Draft7Validator(EVENT_SCHEMA)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_events())
def test_validator_agrees_with_jsonschema(event: Any) -> None:
    errors = _COMPILED.validator()(event)
    assert (errors == []) == _REFERENCE.is_valid(event), (event, errors)
    assert all(": " in e and (e.startswith("/") or e.startswith("(root)")) for e in errors)


def test_validator_agrees_on_valid_and_invalid_events() -> None:
    """The same comparison on seeded events, counting both outcomes."""
    rng = random.Random(7)
    pools: dict[str, list[Any]] = {
        "id": ["e1", "", "x" * 13, 5], "card": ["4242", "4242\n", "42a2", 4242],
        "amount": [0, 12.5, 9999.99, 10000, -0.5, "1"], "currency": ["EUR", "GBP", "JPY", None],
        "qty": [1, 3, 0, 2.5, 1.0, True], "tags": [[], ["a", "b"], ["a", "a"], ["a", "b", "c", "a"], [1]],
        "flags": [{}, {"x": True}, {"y": 1}], "note": [None, "n", 3], "kind": [1, 1.0, True, 2],
        "extra": [1],
    }
    outcomes = {True: 0, False: 0}
    for _ in range(300):
        event = {"id": "e1", "amount": 1, "currency": "EUR"}
        for name in rng.sample(sorted(pools), rng.randint(0, 3)):
            event[name] = rng.choice(pools[name])
        if rng.random() < 0.1:
            del event[rng.choice(["id", "amount", "currency"])]
        valid = _REFERENCE.is_valid(event)
        assert (_COMPILED.validator()(event) == []) == valid, event
        outcomes[valid] += 1
    assert outcomes[True] >= 50 and outcomes[False] >= 50


def test_validator_is_compiled_with_fastjsonschema() -> None:
    assert _fast(_COMPILED._bundle) is not None
    check_event = _COMPILED.validator()
    assert _COMPILED.validator() is check_event  # compiled once
    good = {"id": "e1", "amount": 12.5, "currency": "EUR", "card": "4242"}
    assert check_event(good) == []
    bad = {"id": "", "amount": -1, "currency": "JPY", "zz": 1}
    assert check_event(bad) == [
        "(root): Additional properties are not allowed ('zz' was unexpected)",
        "/amount: -1 is less than the minimum of 0",
        "/currency: 'JPY' is not one of ['EUR', 'USD', 'GBP']",
        "/id: '' should be non-empty",
    ]


def test_validator_semantics_match_jsonschema_on_edge_cases() -> None:
    check_event = _COMPILED.validator()
    base = {"id": "e1", "amount": 1, "currency": "EUR"}
    assert check_event({**base, "card": "4242\n"}) == []  # "$" allows a final newline, as in Python and Java
    assert check_event({**base, "kind": True}) != []  # true is not 1
    assert check_event({**base, "kind": 1.0}) == []  # but 1.0 is
    email = parse('{"type": "string", "format": "email"}')
    assert email.validator()("not an email") == []  # format is an annotation


def test_2020_12_keywords_fall_back_to_jsonschema() -> None:
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "allOf": [{"properties": {"a": {"type": "integer"}}}],
        "unevaluatedProperties": False,
    }
    schema = parse(json.dumps(document))
    assert _fast(schema._bundle) is None
    reference = Draft202012Validator(document)
    for value in ({"a": 1}, {"a": 1, "b": 2}, {"a": "x"}, {}):
        assert (schema.validator()(value) == []) == reference.is_valid(value)
    plain = parse(json.dumps({"$schema": document["$schema"], "type": "object", "properties": {"a": {"type": "integer"}}}))
    assert _fast(plain._bundle) is not None  # nothing beyond draft 7: still compiled


# -- defaults ------------------------------------------------------------------------------


def test_fill_defaults() -> None:
    schema = parse(json.dumps({
        "definitions": {"Money": {"type": "object", "properties": {
            "currency": {"type": "string", "default": "EUR"}, "amount": {"type": "number"}}}},
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "channel": {"type": "string", "default": "pos"},
            "price": {"$ref": "#/definitions/Money"},
            "meta": {"type": "object", "default": {}, "properties": {"version": {"default": 1}}},
            "lines": {"type": "array", "items": {"type": "object", "properties": {"qty": {"default": 1}}}},
            "present": {"type": "string", "default": "unused"},
        },
    }))
    event = {"id": "e1", "price": {"amount": 3}, "lines": [{}, {"qty": 2}], "present": "kept"}
    filled = schema.fill_defaults(event)
    assert filled == {
        "id": "e1",
        "channel": "pos",
        "price": {"amount": 3, "currency": "EUR"},
        "meta": {"version": 1},
        "lines": [{"qty": 1}, {"qty": 2}],
        "present": "kept",
    }
    assert event == {"id": "e1", "price": {"amount": 3}, "lines": [{}, {"qty": 2}], "present": "kept"}
    filled["meta"]["version"] = 2
    assert schema.fill_defaults({})["meta"] == {"version": 1}  # defaults are copied, not shared
    assert schema.fill_defaults("not an object") == "not an object"


# -- schema_for -------------------------------------------------------------------------------


class Payment(pydantic.BaseModel):
    id: str
    amount: float
    currency: str = "EUR"


@dataclasses.dataclass
class Refund:
    id: str
    amount: float


class Transfer(TypedDict):
    id: str
    iban: str


def test_schema_for_pydantic_model() -> None:
    document = schema_for(Payment)
    assert document["required"] == ["id", "amount"]
    assert {k: v for k, v in document.items() if k != "$schema"} == Payment.model_json_schema()
    schema = parse(json.dumps(document))
    assert schema.dialect == "draft2020-12" and _fast(schema._bundle) is not None
    assert schema.validator()({"id": "p1", "amount": 1.0}) == []
    assert schema.validator()({"id": "p1"}) == ["(root): 'amount' is a required property"]
    assert schema.fill_defaults({"id": "p1", "amount": 1.0})["currency"] == "EUR"


def test_schema_for_dataclass_and_typeddict() -> None:
    for cls, good in ((Refund, {"id": "r", "amount": 2}), (Transfer, {"id": "t", "iban": "DE00"})):
        schema = parse(json.dumps(schema_for(cls)))
        assert schema.dialect == "draft2020-12"
        assert schema.validator()(good) == []
        assert schema.validator()({}) != []


def test_schema_for_dict_is_returned_as_is() -> None:
    document = {"type": "string"}
    assert schema_for(document) is document


@pytest.mark.parametrize(
    ("obj", "message"),
    [(42, "got int"), (Refund("r", 1.0), "pass the class Refund, not an instance"), (int, "got the class 'int'")],
)
def test_schema_for_rejects_other_things(obj: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        schema_for(obj)


def test_comparing_with_another_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse("{}").incompatibilities(object())  # type: ignore[arg-type]
    assert isinstance(parse("{}"), JsonSchema)
