"""confluent-kafka's own registry client and serializers against a real eventml registry server.

The server is ``create_app`` under uvicorn in a thread, on an embedded log; a second
``SchemaRegistry`` on the same log plays the producer/consumer application that
registers and decodes without HTTP. Property tests then check, both ways, that frames
written by one side decode on the other to equal values.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import uvicorn
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventml.log import Log, open_log
from eventml.schema import avro, wire
from eventml.schema.api import create_app
from eventml.schema.json_schema import JsonSchema
from eventml.schema.registry import SchemaRegistry


@dataclass
class Server:
    url: str
    registry: SchemaRegistry  # the server's
    peer: SchemaRegistry  # another process's view of the same log (an application's)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("registry")
    logs: list[Log] = [open_log(f"embedded://{path}"), open_log(f"embedded://{path}")]
    registry = SchemaRegistry(logs[0])
    # IPPROTO_TCP: asyncio then sets TCP_NODELAY (else each response waits for a delayed ACK)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(registry), log_level="warning", log_config=None)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, name="registry", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the registry server did not start"
        time.sleep(0.01)
    host, port = sock.getsockname()
    try:
        # the peer re-reads the log on every read: the server's writes are visible at once
        yield Server(f"http://{host}:{port}", registry, SchemaRegistry(logs[1], stale_after_s=0))
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        sock.close()
        for log in logs:
            log.close()
    assert not thread.is_alive(), "the registry server did not stop"


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[SchemaRegistryClient]:
    with SchemaRegistryClient({"url": server.url}) as c:
        yield c


def fresh(prefix: str = "t") -> str:
    """A topic name of its own, so subjects never meet."""
    return f"{prefix}{uuid.uuid4().hex}"


def value_ctx(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def record(*fields: dict[str, Any], name: str = "User") -> str:
    return orjson.dumps({"type": "record", "name": name, "namespace": "com.example",
                         "fields": list(fields)}).decode()


AGE = {"name": "age", "type": "int"}
V0 = record(AGE)
V1 = record(AGE, {"name": "first_name", "type": "string", "default": "John"})
V2 = record(AGE, {"name": "first_name", "type": "string"},
            {"name": "last_name", "type": "string", "default": "Doe"})
PERSON_JSON = orjson.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name"],
}).decode()


# -- the client's calls ------------------------------------------------------------------


def test_client_registers_reads_and_looks_up(server: Server, client: SchemaRegistryClient) -> None:
    subject = fresh("users-") + "-value"
    sid = client.register_schema(subject, Schema(V0, "AVRO"))
    assert sid == server.peer.version(subject, 1).id
    assert client.register_schema(subject, Schema(V0, "AVRO")) == sid
    full = client.register_schema_full_response(subject, Schema(V1, "AVRO"))
    assert (full.subject, full.version) == (subject, 2) and full.schema_id != sid

    latest = client.get_latest_version(subject)
    assert (latest.subject, latest.version, latest.schema_id) == (subject, 2, full.schema_id)
    assert (latest.schema.schema_str, latest.schema.schema_type) == (V1, "AVRO")
    first = client.get_version(subject, 1)
    assert (first.version, first.schema_id, first.schema.schema_str) == (1, sid, V0)

    assert client.get_schema(sid).schema_str == V0
    assert client.get_schema(sid, subject_name=subject).schema_str == V0
    spaced = V0.replace(",", ", ")
    found = client.lookup_schema(subject, Schema(spaced, "AVRO"))
    assert (found.schema_id, found.version, found.subject) == (sid, 1, subject)

    assert subject in client.get_subjects()
    assert client.get_subjects(subject_prefix=subject) == [subject]
    assert client.get_versions(subject) == [1, 2]
    assert sorted(client.get_schema_types()) == ["AVRO", "JSON"]
    assert [(v.subject, v.version) for v in client.get_schema_versions(sid)] == [(subject, 1)]
    assert client.get_subjects_by_schema_id(sid) == [subject]
    assert client.get_referenced_by(subject, 1) == []


def test_client_json_schemas(server: Server, client: SchemaRegistryClient) -> None:
    subject = fresh("people-")
    sid = client.register_schema(subject, Schema(PERSON_JSON, "JSON"))
    got = client.get_schema(sid)
    assert (got.schema_str, got.schema_type) == (PERSON_JSON, "JSON")
    assert client.get_latest_version(subject).schema.schema_type == "JSON"
    assert client.lookup_schema(subject, Schema(PERSON_JSON, "JSON")).schema_id == sid


def test_client_compatibility(client: SchemaRegistryClient) -> None:
    subject = fresh("compat-")
    client.register_schema(subject, Schema(V0, "AVRO"))
    client.register_schema(subject, Schema(V1, "AVRO"))
    assert client.get_compatibility() == "BACKWARD"
    assert client.test_compatibility(subject, Schema(V2, "AVRO")) is True
    assert client.test_compatibility_all_versions(subject, Schema(V2, "AVRO")) is True
    answer: Any = client.set_compatibility(subject, "BACKWARD_TRANSITIVE")  # typed str, is the body
    assert answer == {"compatibility": "BACKWARD_TRANSITIVE"}
    assert client.get_compatibility(subject) == "BACKWARD_TRANSITIVE"
    assert client.get_config(subject).compatibility_level == "BACKWARD_TRANSITIVE"
    assert client.test_compatibility_all_versions(subject, Schema(V2, "AVRO"), verbose=True) is False
    assert client.test_compatibility(subject, Schema(V2, "AVRO"), version=1) is False
    assert client.test_compatibility(subject, Schema(V2, "AVRO"), version=2) is True
    with pytest.raises(SchemaRegistryError) as caught:
        client.register_schema(subject, Schema(V2, "AVRO"))
    assert (caught.value.http_status_code, caught.value.error_code) == (409, 409)
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in caught.value.error_message
    assert client.delete_config(subject).compatibility_level == "BACKWARD_TRANSITIVE"
    assert client.get_version(subject, "latest").version == 2
    assert client.register_schema_full_response(subject, Schema(V2, "AVRO")).version == 3


def test_client_errors_carry_confluents_codes(client: SchemaRegistryClient) -> None:
    subject = fresh("errors-")
    client.register_schema(subject, Schema(V0, "AVRO"))

    def code(call: Any, *args: Any, **kwargs: Any) -> tuple[int, int]:
        with pytest.raises(SchemaRegistryError) as caught:
            call(*args, **kwargs)
        return caught.value.http_status_code, caught.value.error_code

    assert code(client.get_version, fresh(), 1) == (404, 40401)
    assert code(client.get_version, subject, 9) == (404, 40402)
    assert code(client.lookup_schema, subject, Schema(V1, "AVRO")) == (404, 40403)
    assert code(client.lookup_schema, fresh(), Schema(V1, "AVRO")) == (404, 40401)
    assert code(client.get_schema, 2**31 - 1) == (404, 40403)
    assert code(client.register_schema, subject, Schema("{broken", "AVRO")) == (422, 42201)
    assert code(client.register_schema, subject, Schema("message M {}", "PROTOBUF")) == (422, 42201)
    assert code(client.set_compatibility, subject, "SOMETIMES") == (422, 42203)
    assert code(client.get_compatibility, subject) == (404, 40408)
    assert code(client.get_mode, subject) == (404, 40409)


def test_client_modes_and_deletes(client: SchemaRegistryClient) -> None:
    subject = fresh("modes-")
    client.register_schema(subject, Schema(V0, "AVRO"))
    client.register_schema(subject, Schema(V1, "AVRO"))
    assert client.get_global_mode() == "READWRITE"
    assert client.update_mode(subject, "READONLY") == "READONLY"
    assert client.get_mode(subject) == "READONLY"
    with pytest.raises(SchemaRegistryError) as caught:
        client.register_schema(subject, Schema(V2, "AVRO"))
    assert caught.value.error_code == 42205
    assert client.delete_mode(subject) == "READONLY"

    assert client.delete_version(subject, 1) == 1
    assert client.get_versions(subject) == [2]
    assert client.get_versions(subject, deleted=True) == [1, 2]
    assert client.delete_version(subject, 1, permanent=True) == 1
    assert client.delete_subject(subject) == [2]
    assert subject not in client.get_subjects()
    assert subject in client.get_subjects(deleted=True)
    assert client.delete_subject(subject, permanent=True) == [2]
    assert subject not in client.get_subjects(deleted=True)


# -- the serializers ---------------------------------------------------------------------


def test_avro_serializer_auto_registers_and_round_trips(server: Server, client: SchemaRegistryClient) -> None:
    topic = fresh()
    value = {"age": 42, "first_name": "Ada"}
    frame = AvroSerializer(client, V1, conf={"auto.register.schemas": True})(value, value_ctx(topic))
    assert frame is not None
    header = wire.decode_frame(frame)
    assert header.schema_id == server.peer.version(f"{topic}-value", "latest").id
    assert AvroDeserializer(client)(frame, value_ctx(topic)) == value
    assert avro.parse(server.peer.schema_by_id(header.schema_id).schema).decode(header.payload) == value


def test_avro_serializer_without_auto_registration(server: Server, client: SchemaRegistryClient) -> None:
    topic = fresh()
    subject = f"{topic}-value"
    lookup_only = AvroSerializer(client, V0, conf={"auto.register.schemas": False})
    with pytest.raises(SchemaRegistryError) as caught:
        lookup_only({"age": 1}, value_ctx(topic))
    assert caught.value.error_code == 40401  # not registered: producers must not guess

    v0 = server.peer.register(subject, V0)  # from CI or an admin, through the log: the
    # server has not read it yet, and refreshes when the lookup finds nothing
    frame = AvroSerializer(client, V0.replace(",", ", "), conf={"auto.register.schemas": False})(
        {"age": 1}, value_ctx(topic))
    assert frame is not None and wire.decode_frame(frame).schema_id == v0.id

    # through the server this time: its reads may lag another process's writes by up to
    # stale_after_s, and "latest" is a hit, not a miss it would refresh on
    v1_id = client.register_schema(subject, Schema(V1, "AVRO"))
    latest = AvroSerializer(client, V0, conf={"auto.register.schemas": False, "use.latest.version": True})
    frame = latest({"age": 2, "first_name": "Grace"}, value_ctx(topic))
    assert frame is not None and wire.decode_frame(frame).schema_id == v1_id

    # a consumer reading with the latest version upgrades old records (v1 adds a default)
    old = wire.encode_frame(v0.id, avro.parse(V0).encode({"age": 3}))
    upgrading = AvroDeserializer(client, conf={"use.latest.version": True})
    assert upgrading(old, value_ctx(topic)) == {"age": 3, "first_name": "John"}


def test_json_serializers_round_trip(server: Server, client: SchemaRegistryClient) -> None:
    topic = fresh()
    value = {"name": "Ada", "age": 36}
    frame = JSONSerializer(PERSON_JSON, client, conf={"auto.register.schemas": True})(value, value_ctx(topic))
    assert frame is not None
    header = wire.decode_frame(frame)
    assert server.peer.version(f"{topic}-value", 1).id == header.schema_id
    assert JSONDeserializer(None, schema_registry_client=client)(frame, value_ctx(topic)) == value
    assert orjson.loads(header.payload) == value

    other = fresh()
    registered = server.peer.register(f"{other}-value", PERSON_JSON, "JSON")
    lookup = JSONSerializer(PERSON_JSON, client, conf={"auto.register.schemas": False})
    frame = lookup(value, value_ctx(other))
    assert frame is not None and wire.decode_frame(frame).schema_id == registered.id
    ours = wire.encode_frame(registered.id, orjson.dumps(value))
    assert JSONDeserializer(PERSON_JSON, schema_registry_client=client)(ours, value_ctx(other)) == value


# -- property tests: frames cross both ways ----------------------------------------------

# 4 tests x 275 examples = 1,100 cases
CASES = 275
PROPERTY = settings(
    max_examples=CASES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,6}", fullmatch=True)
PRIMITIVES = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
NON_EMPTY = PRIMITIVES[1:]  # each encodes to at least one byte
PRIMITIVE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "bytes": st.binary(max_size=16),
    "string": st.text(max_size=12),
}

Shape = Any  # a primitive name or (kind, parts): enum, array, map, optional, record


def _optional_ok(t: Shape) -> bool:
    return t != "null" and not (isinstance(t, tuple) and t[0] == "optional")


def _fields(inner: st.SearchStrategy[Shape]) -> st.SearchStrategy[list[tuple[str, Shape]]]:
    return st.lists(st.tuples(NAME, inner), max_size=4, unique_by=lambda f: f[0])


avro_shapes: st.SearchStrategy[Shape] = st.recursive(
    st.sampled_from(PRIMITIVES)
    | st.lists(NAME, min_size=1, max_size=4, unique=True).map(lambda s: ("enum", s)),
    lambda inner: st.one_of(
        inner.map(lambda t: ("array", t)),
        inner.map(lambda t: ("map", t)),
        inner.filter(_optional_ok).map(lambda t: ("optional", t)),
        _fields(inner).map(lambda fs: ("record", fs)),
    ),
    max_leaves=8,
)


def render(shape: Shape, names: Iterator[int]) -> Any:
    """The Avro schema of ``shape``; named types get unique names from ``names``."""
    if isinstance(shape, str):
        return shape
    kind, part = shape
    if kind == "enum":
        return {"type": "enum", "name": f"E{next(names)}", "symbols": part}
    if kind == "array":
        return {"type": "array", "items": render(part, names)}
    if kind == "map":
        return {"type": "map", "values": render(part, names)}
    if kind == "optional":
        return ["null", render(part, names)]
    fields = []
    for name, field_shape in part:
        field: dict[str, Any] = {"name": name, "type": render(field_shape, names)}
        if isinstance(field["type"], list):
            field["default"] = None
        fields.append(field)
    return {"type": "record", "name": f"R{next(names)}", "fields": fields}


def avro_values(schema: Any) -> st.SearchStrategy[Any]:
    if isinstance(schema, str):
        return PRIMITIVE_VALUES[schema]
    if isinstance(schema, list):
        return st.none() | avro_values(schema[1])
    kind = schema["type"]
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(avro_values(schema["items"]), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=6), avro_values(schema["values"]), max_size=3)
    return st.fixed_dictionaries({f["name"]: avro_values(f["type"]) for f in schema["fields"]})


@st.composite
def avro_cases(draw: st.DrawFn) -> tuple[str, Any]:
    """A record schema (its first field never encodes to nothing) and a value of it."""
    first = draw(st.sampled_from(NON_EMPTY))
    fields = [("_key", first), *draw(_fields(avro_shapes))]
    schema = render(("record", fields), iter(range(10**6)))
    schema["namespace"] = "eventml.interop"
    return orjson.dumps(schema).decode(), draw(avro_values(schema))


JSON_LEAVES = ["string", "integer", "number", "boolean", "null"]
PROPERTY_NAME = st.text(min_size=1, max_size=6)


def _json_object(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    props = st.lists(st.tuples(PROPERTY_NAME, inner, st.booleans()), max_size=5, unique_by=lambda p: p[0])

    def build(ps: list[tuple[str, Any, bool]], closed: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object", "properties": {n: t for n, t, _ in ps}}
        required = [n for n, _, req in ps if req]
        if required:
            out["required"] = required
        if closed:
            out["additionalProperties"] = False
        return out

    return st.builds(build, props, st.booleans())


json_types: st.SearchStrategy[Any] = st.recursive(
    st.sampled_from(JSON_LEAVES).map(lambda t: {"type": t}),
    lambda inner: inner.map(lambda t: {"type": "array", "items": t}) | _json_object(inner),
    max_leaves=8,
)


def json_values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    kind = schema["type"]
    if kind == "string":
        return st.text(max_size=12)
    if kind == "integer":
        return st.integers(-(2**63), 2**63 - 1)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(json_values(schema["items"]), max_size=3)
    required = set(schema.get("required", ()))
    props = schema["properties"]
    return st.fixed_dictionaries(
        {n: json_values(t) for n, t in props.items() if n in required},
        optional={n: json_values(t) for n, t in props.items() if n not in required},
    )


@st.composite
def json_cases(draw: st.DrawFn) -> tuple[str, Any]:
    schema = draw(_json_object(json_types))
    if draw(st.booleans()):
        schema = {"$schema": "http://json-schema.org/draft-07/schema#", **schema}
    return orjson.dumps(schema).decode(), draw(json_values(schema))


@PROPERTY
@given(case=avro_cases())
def test_avro_frames_written_by_eventml_decode_with_confluent(
        server: Server, client: SchemaRegistryClient, case: tuple[str, Any]) -> None:
    text, value = case
    topic = fresh()
    sid = server.peer.register(f"{topic}-value", text).id
    frame = wire.encode_frame(sid, avro.parse(text).encode(value))
    assert AvroDeserializer(client)(frame, value_ctx(topic)) == value


@PROPERTY
@given(case=avro_cases())
def test_avro_frames_written_by_confluent_decode_with_eventml(
        server: Server, client: SchemaRegistryClient, case: tuple[str, Any]) -> None:
    text, value = case
    frame = AvroSerializer(client, text, conf={"auto.register.schemas": True})(value, value_ctx(fresh()))
    assert frame is not None
    header = wire.decode_frame(frame)
    writer = server.peer.parsed_by_id(header.schema_id)
    assert isinstance(writer, avro.AvroSchema)
    assert writer.decode(header.payload) == value


@PROPERTY
@given(case=json_cases())
def test_json_frames_written_by_eventml_decode_with_confluent(
        server: Server, client: SchemaRegistryClient, case: tuple[str, Any]) -> None:
    text, value = case
    topic = fresh()
    sid = server.peer.register(f"{topic}-value", text, "JSON").id
    assert server.peer.parsed_by_id(sid).validator()(value) == []
    frame = wire.encode_frame(sid, orjson.dumps(value))
    assert JSONDeserializer(None, schema_registry_client=client)(frame, value_ctx(topic)) == value


@PROPERTY
@given(case=json_cases())
def test_json_frames_written_by_confluent_decode_with_eventml(
        server: Server, client: SchemaRegistryClient, case: tuple[str, Any]) -> None:
    text, value = case
    frame = JSONSerializer(text, client, conf={"auto.register.schemas": True})(value, value_ctx(fresh()))
    assert frame is not None
    header = wire.decode_frame(frame)
    writer = server.peer.parsed_by_id(header.schema_id)
    assert isinstance(writer, JsonSchema)
    decoded = orjson.loads(header.payload)
    assert decoded == value
    assert writer.validator()(decoded) == []

