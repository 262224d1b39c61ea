"""The AVRO schema type: parsing and its errors, canonical form, references, encoding, validation."""

from __future__ import annotations

import contextlib
import doctest
import io
import json
import re
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventml.schema.avro
from eventml.schema.avro import AvroDecodeError, AvroEncodeError, AvroSchema, parse
from eventml.schema.errors import InvalidSchema
from eventml.schema.types import ParsedSchema

USER = json.dumps(
    {
        "type": "record",
        "name": "User",
        "namespace": "com.acme",
        "doc": "a person",
        "fields": [
            {"name": "id", "type": "int"},
            {"name": "name", "type": "string", "doc": "display name"},
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
            {"name": "nick", "type": ["null", "string"], "default": None},
            {
                "name": "color",
                "type": {"type": "enum", "name": "Color", "symbols": ["RED", "BLUE"]},
            },
            {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 2}},
            {"name": "scores", "type": {"type": "map", "values": "double"}},
        ],
    }
)
ALICE = {
    "id": 7,
    "name": "Alice",
    "tags": ["a", "b"],
    "nick": None,
    "color": "BLUE",
    "hash": b"\x00\xff",
    "scores": {"x": 1.5},
}
NODE = json.dumps(
    {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "value", "type": "int"}, {"name": "next", "type": ["null", "Node"]}],
    }
)


def record(
    name: str, *fields: tuple[str, Any] | tuple[str, Any, Any], namespace: str | None = None
) -> str:
    """A record schema; a field is (name, type) or (name, type, default)."""
    out: dict[str, Any] = {"type": "record", "name": name, "fields": []}
    if namespace is not None:
        out["namespace"] = namespace
    for name_, type_, *default in fields:
        out["fields"].append(
            {"name": name_, "type": type_, **({"default": default[0]} if default else {})}
        )
    return json.dumps(out)


def test_the_module_doctests_pass() -> None:
    assert doctest.testmod(eventml.schema.avro).failed == 0


def test_a_parsed_schema_has_the_protocol_fields() -> None:
    schema: ParsedSchema = parse(USER)
    assert isinstance(schema, AvroSchema)
    assert schema.schema_type == "AVRO" and schema.text == USER
    assert parse(USER).name == "com.acme.User"
    assert [
        parse(t).name for t in ('"string"', '["null", "int"]', '{"type": "map", "values": "int"}')
    ] == [
        None,
        None,
        None,
    ]
    assert parse('{"type": "enum", "name": "E", "symbols": ["A"]}').name == "E"
    assert parse(USER) == parse(USER) and parse(USER) != parse(USER.replace('"doc"', '"x-doc"'))


# --- parse errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "not JSON"),
        ('{"type": "record", "name": "A", "fields": [}', "not JSON"),
        ('{"type": "strin"}', "unknown type or undefined name"),
        ('"Address"', "unknown type or undefined name 'Address'"),
        (record("A", ("a", "B")), "undefined name 'B'"),
        (record("A", ("age", "int", "old")), "Default value <old> must match schema type: int"),
        (record("A", ("age", "int", 2**40)), "is not a valid int"),
        (record("A", ("nick", ["null", "string"], 5)), "must match a schema in union"),
        (
            record("A", ("xs", ["null", {"type": "array", "items": "int"}], ["x"])),
            "matches no branch",
        ),
        (
            record("A", ("xs", {"type": "array", "items": "int"}, [1, "x"])),
            "'x' is not a valid int",
        ),
        (record("A", ("a", "int"), ("a", "long")), "two fields named 'a'"),
        (
            record("A", ("a", {"type": "record", "name": "A", "fields": []})),
            "redefined named type: A",
        ),
        ('{"type": "enum", "name": "E", "symbols": ["X", "X"]}', "unique"),
        ('{"type": "enum", "name": "E", "symbols": ["X"], "default": "Y"}', "must be in symbols"),
        ('{"type": "fixed", "name": "F"}', "needs 'size'"),
        ('{"type": "fixed", "name": "F", "size": -1}', "non-negative"),
        ('{"type": "record", "name": "1User", "fields": []}', "'1User'"),
        ('{"type": "record", "name": "User"}', "needs 'fields'"),
        ('{"type": "array"}', "no 'items'"),
        ('["int", "int"]', "two branches of type 'int'"),
        ('["null", ["int"]]', "may not immediately contain another union"),
        ("42", "not a number"),
        ('{"type": {"type": "int"}}', "'type' must be a string"),
        (record("A", ("x", "double", float("nan"))), "NaN is not valid JSON"),
        ("[" * 10_000, "nested too deeply"),
    ],
)
def test_bad_schemas_raise_invalid_schema_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(InvalidSchema) as raised:
        parse(text)
    message = str(raised.value)
    assert message.startswith("Invalid Avro schema: ") and says in message
    assert "\n" not in message and len(message) <= 300
    assert raised.value.code == 42201


def test_a_schema_nested_too_deeply_through_named_types_is_rejected() -> None:
    # flat JSON, but each record holds the previous one: values would nest 200 levels deep
    fields = [{"name": "f0", "type": {"type": "record", "name": "R0", "fields": []}}]
    for i in range(1, 200):
        inner = [{"name": "x", "type": f"R{i - 1}"}]
        fields.append(
            {"name": f"f{i}", "type": {"type": "record", "name": f"R{i}", "fields": inner}}
        )
    with pytest.raises(InvalidSchema, match="nests more than 100 levels"):
        parse(json.dumps({"type": "record", "name": "Top", "fields": fields}))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
schema_words = st.sampled_from(
    ["record", "enum", "fixed", "array", "map", "int", "string", "null", "A", "B", "x", "a.b"]
)
schema_like = st.recursive(
    schema_words,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.fixed_dictionaries(
            {"type": schema_words},
            optional={
                "name": schema_words,
                "fields": st.lists(
                    st.fixed_dictionaries({"name": schema_words, "type": inner}), max_size=3
                ),
                "symbols": st.lists(schema_words, max_size=3),
                "items": inner,
                "values": inner,
                "size": st.integers(-2, 4),
                "default": json_values,
            },
        )
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=40), json_values.map(json.dumps), schema_like.map(json.dumps)))
def test_parse_raises_only_invalid_schema(text: str) -> None:
    try:
        schema = parse(text)
    except InvalidSchema as exc:
        assert str(exc).startswith("Invalid Avro schema: ")
    else:
        assert schema.incompatibilities(schema) == []


# --- canonical form -------------------------------------------------------------------


def test_canonical_ignores_whitespace_key_order_and_docs() -> None:
    compact = json.loads(USER)
    reordered = json.dumps(dict(reversed(list(compact.items()))), indent=4)
    undocumented = USER.replace('"doc": "a person", ', "").replace(', "doc": "display name"', "")
    assert parse(reordered).canonical == parse(USER).canonical == parse(undocumented).canonical
    assert " " not in parse(USER).canonical.replace("a person", "")
    assert parse('{"type": "int"}').canonical == parse('"int"').canonical == '"int"'


def test_canonical_keeps_what_changes_meaning() -> None:
    base = parse(record("A", ("x", "int", 1)))
    assert base.canonical != parse(record("A", ("x", "int", 2))).canonical  # defaults
    assert base.canonical != parse(record("A", ("x", "long", 1))).canonical
    aliased = json.loads(base.text)
    aliased["fields"][0]["aliases"] = ["y"]
    assert base.canonical != parse(json.dumps(aliased)).canonical
    # a record default holding a key named "doc" is data, not documentation
    inner = {"type": "record", "name": "I", "fields": [{"name": "doc", "type": "string"}]}
    with_doc_value = record("A", ("i", inner, {"doc": "kept"}))
    assert '"doc":"kept"' in parse(with_doc_value).canonical


# --- references -----------------------------------------------------------------------

ADDRESS = record("Address", ("street", "string"), ("country", "Country"), namespace="com.acme")
COUNTRY = '{"type": "enum", "name": "Country", "namespace": "com.acme", "symbols": ["FR", "US"]}'
CUSTOMER = record(
    "Customer", ("home", "Address"), ("work", ["null", "Address"], None), namespace="com.acme"
)


def test_references_resolve_in_any_order_and_encode_standalone() -> None:
    references = {"com.acme.Address": ADDRESS, "com.acme.Country": COUNTRY}  # Address needs Country
    customer = parse(CUSTOMER, references)
    value = {"home": {"street": "1 Main St", "country": "FR"}, "work": None}
    assert customer.name == "com.acme.Customer"
    assert customer.decode(customer.encode(value)) == value
    # the parsed form stands alone: fastavro needs no named types to use it
    standalone = {k: v for k, v in customer.parsed.items() if not k.startswith("__")}
    reparsed = fastavro.parse_schema(json.loads(json.dumps(standalone)))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, reparsed, value)
    assert buffer.getvalue() == customer.encode(value)


def test_a_type_used_by_a_reference_and_directly_is_defined_once() -> None:
    uses_both = record("Pair", ("c", "com.acme.Country"), ("a", "com.acme.Address"), namespace="x")
    pair = parse(uses_both, {"com.acme.Address": ADDRESS, "com.acme.Country": COUNTRY})
    value = {"c": "US", "a": {"street": "s", "country": "FR"}}
    assert pair.decode(pair.encode(value)) == value


@pytest.mark.parametrize(
    ("references", "says"),
    [
        ({}, "undefined name 'com.acme.Address'"),
        (
            {"com.acme.Address": ADDRESS},
            "reference 'com.acme.Address': unknown type or undefined name",
        ),
        (
            {"com.acme.Address": COUNTRY, "com.acme.Country": COUNTRY},
            "does not define a type named",
        ),
        ({"com.acme.Address": "{nope", "com.acme.Country": COUNTRY}, "not JSON"),
    ],
)
def test_bad_references_raise_invalid_schema(references: dict[str, str], says: str) -> None:
    with pytest.raises(InvalidSchema, match="Invalid Avro schema: .*" + says):
        parse(CUSTOMER, references)


# --- encoding and decoding ------------------------------------------------------------


def test_round_trip() -> None:
    user = parse(USER)
    payload = user.encode(ALICE)
    assert payload[0] == 14  # zigzag varint of 7: the id comes first
    assert user.decode(payload) == ALICE
    assert parse('"string"').decode(parse('"string"').encode("é")) == "é"


def test_recursive_round_trip() -> None:
    node = parse(NODE)
    value: Any = None
    for i in range(300):
        value = {"value": i, "next": value}
    assert node.decode(node.encode(value)) == value


def test_decode_with_a_reader_schema_upcasts() -> None:
    writer = parse(record("Reading", ("count", "int"), ("ratio", "float")))
    reader = parse(
        record("Reading", ("count", "long"), ("ratio", "double"), ("unit", "string", "celsius"))
    )
    assert reader.incompatibilities(writer) == []
    value = writer.decode(writer.encode({"count": 3, "ratio": 0.5}), reader)
    assert value == {"count": 3, "ratio": 0.5, "unit": "celsius"}
    assert isinstance(value["ratio"], float)


def test_decode_reads_an_unknown_enum_symbol_as_the_reader_default() -> None:
    writer = parse('{"type": "enum", "name": "E", "symbols": ["A", "B", "NEW"]}')
    reader = parse(
        '{"type": "enum", "name": "E", "symbols": ["A", "B", "OTHER"], "default": "OTHER"}'
    )
    assert writer.decode(writer.encode("NEW"), reader) == "OTHER"


def test_decode_with_an_incompatible_reader_raises() -> None:
    writer, reader = parse('"string"'), parse('"int"')
    with pytest.raises(AvroDecodeError):
        writer.decode(writer.encode("x"), reader)


def _varint(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@pytest.mark.parametrize(
    ("schema", "payload", "says"),
    [
        (USER, b"", "cannot decode 0 byte(s) as 'com.acme.User': the data ends too soon"),
        (USER, b"\x0e\x0aAl", "cannot decode"),  # the name is cut short
        ('"string"', _varint(2) + b"\xff\xfe", "utf-8"),
        ('"string"', _varint(2**62) + b"ab", "cannot decode"),  # a huge length prefix
        ('"bytes"', _varint(-5), "cannot decode"),
        ('["null", "int"]', _varint(5), "cannot decode"),  # no union branch 5
        ('{"type": "enum", "name": "E", "symbols": ["A"]}', _varint(3), "cannot decode"),
        ('"int"', b"\x02\x00", "1 byte(s) left over"),
        ('"long"', b"\xff" * 12, "cannot decode"),
        ('{"type": "array", "items": "null"}', _varint(2**62) + b"\x00", "more array or map items"),
        (NODE, b"\x02\x02" * 5000 + b"\x02\x00", "nests more than 1000 levels"),
        (NODE, b"\x02\x02\x02", "cannot decode"),
    ],
)
def test_garbage_raises_avro_decode_error(schema: str, payload: bytes, says: str) -> None:
    with pytest.raises(AvroDecodeError, match=re.escape(says)):
        parse(schema).decode(payload)
    assert issubclass(AvroDecodeError, ValueError)


FUZZED = [
    parse(USER),
    parse(NODE),
    parse('{"type": "array", "items": {"type": "record", "name": "Empty", "fields": []}}'),
    parse('{"type": "map", "values": ["null", "double", {"type": "array", "items": "long"}]}'),
    parse('["null", "boolean", "int", "long", "float", "double", "bytes", "string"]'),
]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(range(len(FUZZED))), st.binary(max_size=64))
def test_random_bytes_decode_or_raise_avro_decode_error(index: int, payload: bytes) -> None:
    with contextlib.suppress(AvroDecodeError):
        FUZZED[index].decode(payload)


def test_encode_errors_are_value_errors() -> None:
    with pytest.raises(AvroEncodeError, match=re.escape("'com.acme.User'")):
        parse(USER).encode({"id": "seven"})
    deep: Any = None
    for _ in range(2000):
        deep = {"value": 1, "next": deep}
    with pytest.raises(AvroEncodeError, match="too deeply"):
        parse(NODE).encode(deep)


# --- validation -----------------------------------------------------------------------


def test_validator_accepts_valid_values() -> None:
    assert parse(USER).validator()(ALICE) == []
    assert parse('["null", "int"]').validator()(None) == []


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"id": "seven"}, "com.acme.User.id: 'seven' is not a valid int"),
        ({"id": 2**40}, "is not a valid int"),
        ({"color": "GREEN"}, "com.acme.User.color: 'GREEN' is not a valid enum 'com.acme.Color'"),
        ({"hash": b"\x00"}, "fixed 'com.acme.Hash'"),
        ({"tags": [1]}, "com.acme.User.tags"),
        ({"scores": {"x": "high"}}, "com.acme.User.scores"),
        ({"nick": 5}, "com.acme.User.nick: 5 is not a valid null or string"),
    ],
)
def test_validator_reports_the_field_and_expected_type(change: dict[str, Any], says: str) -> None:
    errors = parse(USER).validator()({**ALICE, **change})
    assert len(errors) == 1 and says in errors[0], errors


def test_validator_reports_non_records_and_missing_fields() -> None:
    validate = parse(USER).validator()
    assert validate(5) == ["value: 5 is not a valid record 'com.acme.User'"]
    assert validate({k: v for k, v in ALICE.items() if k != "name"})
    assert parse(NODE).validator()({"value": 1, "next": {"value": "x", "next": None}})


def test_validator_refuses_values_too_deep_for_fastavro() -> None:
    deep: Any = None
    for _ in range(2000):
        deep = {"value": 1, "next": deep}
    assert parse(NODE).validator()(deep) == ["value nests too deeply to validate"]


def test_validator_is_fast() -> None:
    import time

    validate = parse(USER).validator()
    start = time.perf_counter()
    for _ in range(2000):
        validate(ALICE)
    assert time.perf_counter() - start < 1.0
