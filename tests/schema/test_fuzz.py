"""Fuzzing the frame decoder, the contract's reader, the validators and the schema parsers.

Every input must end in a value or in the one error type its layer documents: no other
exception, no hang (hypothesis' deadline catches an input that takes seconds). CI runs
``EVENTML_FUZZ_EXAMPLES`` (default 1,000) inputs per target; the issue's full run:

    EVENTML_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/schema/test_fuzz.py   # 5 targets: 1e5
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventml.log.memory import MemoryLog
from eventml.schema import (
    BoundContract,
    ContractViolation,
    FrameError,
    InvalidSchema,
    SchemaRegistry,
    contract_of,
    decode_frame,
    encode_frame,
    parse_schema,
)

EXAMPLES = int(os.environ.get("EVENTML_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=2),
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "card": {"type": "string", "minLength": 1, "maxLength": 32, "pattern": "^c[0-9]+$"},
        "amount": {"type": "number", "minimum": 0, "exclusiveMaximum": 1e9},
        "currency": {"enum": ["EUR", "USD"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
        "geo": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]},
    },
    "required": ["id", "card", "amount"],
    "additionalProperties": False,
}
AVRO_SCHEMA = {
    "type": "record",
    "name": "Tx",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "card", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "extra", "type": {"type": "map", "values": "bytes"}},
    ],
}
GOOD_JSON = {"id": 1, "card": "c12", "amount": 9.5, "currency": "EUR", "tags": ["x"], "geo": {"lat": 1.0}}
GOOD_AVRO = {"id": 1, "card": "c1", "amount": 2.5, "tags": ["a"], "kind": "A", "note": None,
             "extra": {"k": b"v"}}

VALIDATORS: dict[str, Any] = {}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def contracts() -> dict[str, BoundContract]:
    registry = SchemaRegistry(MemoryLog())
    return {
        "json": contract_of(JSON_SCHEMA).bind(registry, "j"),
        "avro": contract_of(AVRO_SCHEMA).bind(registry, "a"),
    }


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for where, byte in edits:
        if out:
            out[where % len(out)] = byte
    return bytes(out)


@FUZZ
@given(st.binary(max_size=64))
def test_frame_decoder(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except FrameError:
        return
    assert encode_frame(frame.schema_id, frame.payload) == data


@FUZZ
@given(
    which=st.sampled_from(["json", "avro"]),
    raw=st.binary(max_size=80),
    edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
    mutate=st.booleans(),
    cut=st.integers(0, 120),
)
def test_contract_reader(
    contracts: dict[str, BoundContract], which: str, raw: bytes,
    edits: list[tuple[int, int]], mutate: bool, cut: int,
) -> None:
    """Random bytes, and valid frames with bytes flipped or cut short."""
    bound = contracts[which]
    if mutate:
        raw = _mutate(bound.encode(GOOD_JSON if which == "json" else GOOD_AVRO), edits)[:cut]
    with contextlib.suppress(ContractViolation):
        bound.decode(raw)


@FUZZ
@given(value=json_values, patch=st.dictionaries(st.sampled_from(sorted(JSON_SCHEMA["properties"])), json_values))
def test_json_validator(contracts: dict[str, BoundContract], value: Any, patch: dict[str, Any]) -> None:
    validate = VALIDATORS.setdefault("json", contracts["json"].schema.validator())
    for candidate in (value, {**GOOD_JSON, **patch}):
        errors = validate(candidate)
        assert isinstance(errors, list) and all(isinstance(x, str) for x in errors)


@FUZZ
@given(value=json_values, patch=st.dictionaries(st.sampled_from([f["name"] for f in AVRO_SCHEMA["fields"]]), json_values))
def test_avro_validator_and_writer(contracts: dict[str, BoundContract], value: Any, patch: dict[str, Any]) -> None:
    bound = contracts["avro"]
    for candidate in (value, {**GOOD_AVRO, **patch}):
        validate = VALIDATORS.setdefault("avro", bound.schema.validator())
        assert isinstance(validate(candidate), list)
        try:
            frame = bound.encode(candidate)
        except ContractViolation:
            continue
        assert bound.decode(frame) is not None


@FUZZ
@given(
    kind=st.sampled_from(["AVRO", "JSON"]),
    text=st.text(max_size=60),
    edits=st.lists(st.tuples(st.integers(0, 400), st.integers(32, 126)), max_size=3),
    use_text=st.booleans(),
)
def test_schema_parsers(kind: str, text: str, edits: list[tuple[int, int]], use_text: bool) -> None:
    """Random text, and real schemas with characters replaced: parsed, or InvalidSchema."""
    if not use_text:
        base = orjson.dumps(AVRO_SCHEMA if kind == "AVRO" else JSON_SCHEMA)
        text = _mutate(base, edits).decode("ascii", "replace")
    with contextlib.suppress(InvalidSchema):
        parse_schema(kind, text)
