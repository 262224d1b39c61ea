"""Topic data contracts in the engine: validate on write and read, dead-letter violations with
their errors, upcast older schema versions, on every backend."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from eventml.deadletter import parse_dead_letter
from eventml.engine import Worker
from eventml.log import Message
from eventml.schema import (
    IncompatibleSchema,
    SchemaRegistry,
    contract_of,
    decode_frame,
    encode_frame,
)

from .conftest import Backend

TX_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "card": {"type": "string", "minLength": 1},
        "amount": {"type": "number", "minimum": 0},
        "currency": {"enum": ["EUR", "USD", "GBP"]},
    },
    "required": ["id", "card", "amount", "currency"],
    "additionalProperties": False,
}
OUT_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "cents": {"type": "integer", "minimum": 0}},
    "required": ["id", "cents"],
    "additionalProperties": False,
}


def _event(i: int) -> dict[str, Any]:
    return {"id": i, "card": f"c{i % 7}", "amount": round(i * 1.25, 2), "currency": "EUR"}


def _broken(i: int, unknown_id: int) -> tuple[bytes, str]:
    """One invalid value of several kinds, and a word its dead letter's error must contain."""
    kinds: list[tuple[bytes, str]] = [
        (orjson.dumps({**_event(i), "amount": -5}), "amount"),  # below the minimum
        (orjson.dumps({**_event(i), "currency": "XXX"}), "currency"),  # not in the enum
        (orjson.dumps({k: v for k, v in _event(i).items() if k != "card"}), "card"),  # missing
        (orjson.dumps({**_event(i), "extra": 1}), "extra"),  # closed content model
        (b'{"id": ' + str(i).encode() + b", \xff", "JSON"),  # not JSON at all
        (b"\x00\x00\x01", "expected more than 5"),  # a frame too short for a schema id
        (encode_frame(unknown_id, orjson.dumps(_event(i))), "unknown schema id"),
    ]
    return kinds[i % len(kinds)]


def test_one_percent_invalid_events_go_to_the_dead_letter_topic_with_their_errors(
    backend: Backend,
) -> None:
    app = backend.app()
    src = app.topic(app.name + "-tx", partitions=2, schema=TX_SCHEMA)
    out = app.topic(app.name + "-cents", partitions=2, schema=OUT_SCHEMA)
    app.stream(src).map(lambda v: {"id": v["id"], "cents": round(v["amount"] * 100)}).to(out)
    Worker(app).close()  # registers both contracts and creates the topics
    registry = SchemaRegistry(backend.log)
    bound = src.schema.bind(registry, src.name)  # type: ignore[union-attr]

    n = 2_000
    bad: dict[int, str] = {}
    messages = []
    for i in range(n):
        if i % 100 == 42:
            value, word = _broken(i // 100, unknown_id=9_999)
            bad[i] = word
        elif i % 2:
            value = bound.encode(_event(i))  # a Confluent frame
        else:
            value = orjson.dumps(_event(i))  # bare JSON is accepted for a JSON contract
        messages.append(Message(value, f"c{i % 7}".encode(), (("ce_id", f"e{i}".encode()),), 1_000 + i))
    metas = backend.log.append(src.name, messages)
    worker = backend.run(app)
    assert worker.stats.records == n

    good = sorted(v["id"] for v in _decoded(backend, out.name, registry))
    assert good == sorted(set(range(n)) - set(bad))  # the rest flowed
    dlq = backend.read_all(src.name + ".dlq")
    assert len(dlq) == len(bad) == n // 100 == worker.stats.dead_letters
    where = {(m.partition, m.offset): i for i, m in enumerate(metas)}
    for record in dlq:
        dead = parse_dead_letter(record)
        i = where[(int(dead.source["partition"]), int(dead.source["offset"]))]
        assert dead.value == messages[i].value and dead.headers == messages[i].headers
        assert dead.source["operator"] == f"decode:{src.name}"
        assert bad[i].lower() in dead.error_message.lower(), (bad[i], dead.error_message)


def test_a_value_that_breaks_the_output_contract_is_dead_lettered_not_written(
    backend: Backend,
) -> None:
    app = backend.app()
    src = app.topic(app.name + "-in")
    out = app.topic(app.name + "-out", schema=OUT_SCHEMA)
    # every 10th output has negative cents: the producer side must refuse it
    app.stream(src).map(lambda v: {"id": v["i"], "cents": -1 if v["i"] % 10 == 0 else v["i"]}).to(out)
    Worker(app).close()
    backend.append_json(src.name, [(None, {"i": i}, 1_000 + i) for i in range(200)])
    worker = backend.run(app)
    registry = SchemaRegistry(backend.log)
    assert sorted(v["id"] for v in _decoded(backend, out.name, registry)) == [
        i for i in range(200) if i % 10
    ]
    dlq = [parse_dead_letter(r) for r in backend.read_all(src.name + ".dlq")]
    assert len(dlq) == 20 == worker.stats.dead_letters
    assert all(d.source["operator"].startswith("to-") and "cents" in d.error_message for d in dlq)


def test_json_events_of_an_older_version_are_upcast_with_defaults(backend: Backend) -> None:
    v1 = {"type": "object", "additionalProperties": False, "required": ["id"],
          "properties": {"id": {"type": "integer"}}}
    v2 = {"type": "object", "additionalProperties": False, "required": ["id"],
          "properties": {"id": {"type": "integer"},
                         "channel": {"type": "string", "default": "web"}}}
    app = backend.app()
    src = app.topic(app.name + "-orders", schema=v2)
    seen: list[Any] = []
    app.stream(src).sink(lambda items: seen.extend(it.value for it in items))
    registry = SchemaRegistry(backend.log)
    old = registry.register(src.name + "-value", orjson.dumps(v1).decode(), "JSON")
    Worker(app).close()  # registers v2 as version 2: compatible (closed v1 cannot carry channel)
    registry.refresh()  # this instance reads the log again only when its view is 0.5 s old
    assert registry.version(src.name + "-value").version == 2
    backend.log.append(src.name, [
        Message(encode_frame(old.id, orjson.dumps({"id": 1}))),
        Message(orjson.dumps({"id": 2, "channel": "app"})),
    ])
    backend.run(app)
    assert sorted(seen, key=lambda v: v["id"]) == [{"id": 1, "channel": "web"}, {"id": 2, "channel": "app"}]


def test_avro_events_are_read_with_schema_resolution(backend: Backend) -> None:
    v1 = {"type": "record", "name": "Payment", "fields": [
        {"name": "id", "type": "int"}, {"name": "amount", "type": "int"}]}
    v2 = {"type": "record", "name": "Payment", "fields": [
        {"name": "id", "type": "int"}, {"name": "amount", "type": "long"},
        {"name": "channel", "type": "string", "default": "web"}]}
    app = backend.app()
    src = app.topic(app.name + "-payments", schema=v2)
    seen: list[Any] = []
    app.stream(src).sink(lambda items: seen.extend(it.value for it in items))
    registry = SchemaRegistry(backend.log)
    old = registry.register(src.name + "-value", orjson.dumps(v1).decode())
    Worker(app).close()
    registry.refresh()
    old_schema = registry.parsed_by_id(old.id)
    new = registry.version(src.name + "-value")
    backend.log.append(src.name, [
        Message(encode_frame(old.id, old_schema.encode({"id": 1, "amount": 10}))),  # type: ignore[attr-defined]
        Message(encode_frame(new.id, registry.parsed_by_id(new.id).encode(  # type: ignore[attr-defined]
            {"id": 2, "amount": 2**40, "channel": "pos"}))),
        Message(orjson.dumps({"id": 3, "amount": 1})),  # not a frame: an Avro topic refuses it
    ])
    worker = backend.run(app)
    assert sorted(seen, key=lambda v: v["id"]) == [
        {"id": 1, "amount": 10, "channel": "web"},
        {"id": 2, "amount": 2**40, "channel": "pos"},
    ]
    assert worker.stats.dead_letters == 1
    dead = parse_dead_letter(backend.read_all(src.name + ".dlq")[0])
    assert "frame" in dead.error_message


def test_an_incompatible_contract_stops_the_worker_at_start_with_the_rule(backend: Backend) -> None:
    app = backend.app()
    name = app.name + "-users"
    registry = SchemaRegistry(backend.log)
    registry.register(name + "-value", orjson.dumps(
        {"type": "object", "properties": {"age": {"type": "integer"}}}).decode(), "JSON")
    narrowed = {"type": "object", "properties": {"age": {"type": "integer"}},
                "required": ["age", "email"]}
    app.stream(app.topic(name, schema=narrowed)).sink(lambda items: None)
    with pytest.raises(IncompatibleSchema, match="email"):
        Worker(app)


def test_contracts_from_python_types() -> None:
    @dataclasses.dataclass
    class Reading:
        sensor: str
        value: float

    contract = contract_of(Reading)
    assert contract.schema_type == "JSON"
    doc = orjson.loads(contract.text)
    assert set(doc["required"]) == {"sensor", "value"}
    avro = contract_of({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})
    assert avro.schema_type == "AVRO"
    with pytest.raises(ValueError, match="framed"):
        contract_of(avro.text, schema_type="AVRO", framed=False)


def _decoded(backend: Backend, topic: str, registry: SchemaRegistry) -> list[Any]:
    out = []
    for r in backend.read_all(topic):
        assert r.value is not None
        frame = decode_frame(r.value)
        registry.schema_by_id(frame.schema_id)  # written with a registered id
        out.append(orjson.loads(frame.payload))
    return out
