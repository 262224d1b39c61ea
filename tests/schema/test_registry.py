"""The registry core and its storage on the log: one contract over memory, embedded and Kafka."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import orjson
import pytest

from eventml.log import Log, open_log
from eventml.log.base import Message
from eventml.schema import errors as e
from eventml.schema.core import RegistryState
from eventml.schema.registry import SchemaRegistry

USER_V1 = {
    "type": "record",
    "name": "User",
    "fields": [{"name": "age", "type": "int"}],
}
USER_V2 = {
    "type": "record",
    "name": "User",
    "fields": [
        {"name": "age", "type": "int"},
        {"name": "first_name", "type": "string", "default": "John"},
    ],
}
USER_V3 = {  # first_name loses its default; last_name is added with one
    "type": "record",
    "name": "User",
    "fields": [
        {"name": "age", "type": "int"},
        {"name": "first_name", "type": "string"},
        {"name": "last_name", "type": "string", "default": "Doe"},
    ],
}


def avro(doc: object) -> str:
    return orjson.dumps(doc).decode()


def obj(required: list[str] | None = None, **props: str) -> str:
    doc: dict[str, object] = {
        "type": "object",
        "properties": {k: {"type": t} for k, t in props.items()},
        "additionalProperties": False,  # closed: adding an optional property is compatible
    }
    if required:
        doc["required"] = required
    return orjson.dumps(doc).decode()


@pytest.fixture
def topic() -> str:
    return f"_schemas-{uuid.uuid4().hex[:8]}"


def test_register_is_idempotent_and_ids_are_global(log: Log, topic: str) -> None:
    reg = SchemaRegistry(log, topic=topic)
    a = reg.register("users-value", avro(USER_V1))
    assert (a.id, a.version) == (1, 1)
    # the same schema, spelled differently: same version, no new record
    again = reg.register("users-value", orjson.dumps(USER_V1, option=orjson.OPT_INDENT_2).decode())
    assert (again.id, again.version) == (1, 1)
    # the same schema under another subject keeps its global id
    other = reg.register("admins-value", avro(USER_V1))
    assert (other.id, other.version) == (1, 1)
    b = reg.register("users-value", avro(USER_V2))
    assert (b.id, b.version) == (2, 2)
    assert [v.version for v in reg.versions("users-value")] == [1, 2]
    assert reg.lookup("users-value", avro(USER_V2)).version == 2
    assert {(v.subject, v.version) for v in reg.usages(1)} == {("users-value", 1), ("admins-value", 1)}


def test_a_second_instance_on_the_same_log_sees_everything(log: Log, topic: str) -> None:
    writer = SchemaRegistry(log, topic=topic)
    writer.register("users-value", avro(USER_V1))
    writer.set_compatibility("FULL", "users-value")
    writer.register("orders-value", obj(amount="number"), "JSON")
    reader = SchemaRegistry(log, topic=topic)
    assert reader.subjects() == ["orders-value", "users-value"]
    assert reader.compatibility("users-value") == "FULL"
    assert reader.version("orders-value").schema.schema_type == "JSON"
    # ids it has not seen yet are fetched on demand, not after the staleness period
    late = writer.register("late-value", obj(x="string"), "JSON")
    assert reader.schema_by_id(late.id).schema_type == "JSON"


def test_the_transitive_case(log: Log, topic: str) -> None:
    """v2 reads v1 (BACKWARD ok) but not v0: BACKWARD_TRANSITIVE refuses it with the rule."""
    reg = SchemaRegistry(log, topic=topic)
    reg.register("u-value", avro(USER_V1))
    reg.register("u-value", avro(USER_V2))
    assert reg.check("u-value", avro(USER_V3)) == []
    reg.set_compatibility("BACKWARD_TRANSITIVE", "u-value")
    reasons = reg.check("u-value", avro(USER_V3))
    assert reasons and "READER_FIELD_MISSING_DEFAULT_VALUE" in reasons[0] and "first_name" in reasons[0]
    with pytest.raises(e.IncompatibleSchema) as caught:
        reg.register("u-value", avro(USER_V3))
    assert caught.value.status == 409 and "BACKWARD_TRANSITIVE" in str(caught.value)
    reg.set_compatibility("BACKWARD", "u-value")
    assert reg.register("u-value", avro(USER_V3)).version == 3


def test_deletes_soft_then_hard(log: Log, topic: str) -> None:
    reg = SchemaRegistry(log, topic=topic)
    reg.register("s-value", obj(a="string"), "JSON")
    reg.register("s-value", obj(a="string", b="integer"), "JSON")
    assert reg.delete_version("s-value", 2) == 2
    assert [v.version for v in reg.versions("s-value")] == [1]
    assert [v.version for v in reg.versions("s-value", deleted=True)] == [1, 2]
    with pytest.raises(e.VersionNotSoftDeleted):
        reg.delete_version("s-value", 1, permanent=True)
    assert reg.delete_subject("s-value") == [1]
    assert reg.subjects() == [] and reg.subjects(deleted=True) == ["s-value"]
    with pytest.raises(e.SubjectSoftDeleted):
        reg.delete_subject("s-value")
    # a soft-deleted schema still decodes old data by id
    assert reg.schema_by_id(1).schema_type == "JSON"
    assert reg.delete_subject("s-value", permanent=True) == [1, 2]
    with pytest.raises(e.SubjectNotFound):
        reg.versions("s-value", deleted=True)
    with pytest.raises(e.SchemaNotFound):
        SchemaRegistry(log, topic=topic).schema_by_id(1)
    # after a hard delete the subject starts again; the new schema gets a fresh id
    again = reg.register("s-value", obj(c="boolean"), "JSON")
    assert again.version == 1 and again.id == 3


def test_modes_and_errors(log: Log, topic: str) -> None:
    reg = SchemaRegistry(log, topic=topic)
    with pytest.raises(e.InvalidSchema) as bad:
        reg.register("x-value", '{"type": "record", "name": "X", "fields": [{"name": "a"}]}')
    assert bad.value.code == 42201
    with pytest.raises(e.InvalidVersion):
        reg.version("x-value", "two")
    with pytest.raises(e.InvalidCompatibilityLevel):
        reg.set_compatibility("SIDEWAYS")
    with pytest.raises(e.InvalidMode):
        reg.set_mode("WRITEONLY")
    reg.register("x-value", obj(a="string"), "JSON")
    reg.set_mode("READONLY", "x-value")
    with pytest.raises(e.OperationNotPermitted):
        reg.register("x-value", obj(a="string", b="string"), "JSON")
    reg.register("y-value", obj(a="string"), "JSON")  # other subjects still writable
    with pytest.raises(e.OperationNotPermitted):
        reg.set_mode("IMPORT")  # subjects exist
    reg.set_mode("IMPORT", force=True)
    imported = reg.register("z-value", obj(q="number"), "JSON", sid=100, version=7)
    assert (imported.id, imported.version) == (100, 7)
    reg.set_mode("READWRITE")
    with pytest.raises(e.OperationNotPermitted):
        reg.register("z-value", obj(q="number", r="number"), "JSON", sid=101)
    assert reg.register("w-value", obj(w="string"), "JSON").id == 101  # ids continue past imports


def test_references(log: Log, topic: str) -> None:
    reg = SchemaRegistry(log, topic=topic)
    address = {"type": "record", "name": "Address", "namespace": "geo",
               "fields": [{"name": "city", "type": "string"}]}
    reg.register("address", avro(address))
    person = {"type": "record", "name": "Person",
              "fields": [{"name": "home", "type": "geo.Address"}]}
    ref = {"name": "geo.Address", "subject": "address", "version": 1}
    v = reg.register("person-value", avro(person), "AVRO", [ref])
    parsed = reg.parsed_by_id(v.id)
    assert parsed.validator()({"home": {"city": "Oslo"}}) == []
    with pytest.raises(e.ReferenceExists):
        reg.delete_subject("address")
    with pytest.raises(e.InvalidSchema):
        reg.register("bad-value", avro(person), "AVRO", [{"name": "geo.Address", "subject": "nope", "version": 1}])


def test_first_record_wins_a_conflict(log: Log, topic: str) -> None:
    """Two records claiming one id (or one version) for different schemas: the first stays."""
    reg = SchemaRegistry(log, topic=topic)
    first = reg.register("a-value", obj(a="string"), "JSON")
    forged = {"subject": "b-value", "version": 1, "id": first.id, "schemaType": "JSON",
              "schema": obj(b="string"), "references": [], "deleted": False}
    key = orjson.dumps({"keytype": "SCHEMA", "subject": "b-value", "version": 1, "magic": 1})
    log.append(topic, [Message(orjson.dumps(forged), key, partition=0)])
    fresh = SchemaRegistry(log, topic=topic)
    assert fresh.schema_by_id(first.id).schema == obj(a="string")
    assert "b-value" not in fresh.subjects()


def test_garbage_records_are_skipped() -> None:
    state = RegistryState()
    for key, value in [(b"not json", b"{}"), (b"[]", None), (b'{"keytype": "SCHEMA"}', b"{}"),
                       (b'{"keytype": "SCHEMA", "subject": "s", "version": 1}', b'{"id": "x"}'),
                       (None, None)]:
        state.apply(key, value)
    assert state.subjects == {} and state.by_id == {}


@pytest.mark.parametrize("url_kind", ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def test_concurrent_writers_never_share_an_id(
    url_kind: str, tmp_path: Path, request: pytest.FixtureRequest, topic: str
) -> None:
    """Registries in several threads (own log handles) register different schemas at once:
    every schema gets its own id, every subject its own versions, and all agree."""
    if url_kind == "embedded":
        url = f"embedded://{tmp_path / 'data'}"
    else:
        url = f"kafka://{request.getfixturevalue('kafka_bootstrap')}"
    writers, each = 3, 4 if url_kind == "kafka" else 8
    results: dict[tuple[int, int], tuple[int, int]] = {}
    failures: list[BaseException] = []
    logs = [open_log(url) for _ in range(writers)]
    SchemaRegistry(logs[0], topic=topic)  # create the topic once

    def write(w: int) -> None:
        try:
            reg = SchemaRegistry(logs[w], topic=topic)
            for i in range(each):
                v = reg.register("shared-value" if i % 2 else f"own-{w}-value",
                                 obj(**{f"f{w}_{i}": "string"}), "JSON")
                reg.set_compatibility("NONE", "shared-value") if i == 0 else None
                results[(w, i)] = (v.id, v.version)
        except BaseException as exc:
            failures.append(exc)

    SchemaRegistry(logs[0], topic=topic).set_compatibility("NONE")
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    ids = [sid for sid, _ in results.values()]
    assert len(ids) == writers * each == len(set(ids))
    final = SchemaRegistry(logs[0], topic=topic)
    assert [v.version for v in final.versions("shared-value")] == list(range(1, writers * each // 2 + 1))
    for (_w, _i), (sid, _version) in results.items():
        final.schema_by_id(sid)
    for opened in logs:
        opened.close()

