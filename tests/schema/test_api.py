"""The registry's REST API as Confluent's clients and tools call it (FastAPI's TestClient)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from eventml.cli.app import main
from eventml.log import open_log
from eventml.log.memory import MemoryLog
from eventml.schema.api import CONTENT_TYPE, MAX_BODY_BYTES, create_app, router
from eventml.schema.registry import SchemaRegistry
from eventml.schema.store import StoreError

CT = {"content-type": CONTENT_TYPE}


def record(*fields: dict[str, Any], name: str = "User") -> str:
    return orjson.dumps({"type": "record", "name": name, "fields": list(fields)}).decode()


AGE = {"name": "age", "type": "int"}
# the reference's transitive example
V0 = record(AGE)
V1 = record(AGE, {"name": "first_name", "type": "string", "default": "John"})
V2 = record(AGE, {"name": "first_name", "type": "string"},
            {"name": "last_name", "type": "string", "default": "Doe"})
JSON_V1 = '{"type": "object", "properties": {"a": {"type": "string"}}}'


@pytest.fixture
def registry() -> SchemaRegistry:
    return SchemaRegistry(MemoryLog())


@pytest.fixture
def client(registry: SchemaRegistry) -> Iterator[TestClient]:
    with TestClient(create_app(registry)) as c:
        yield c


def post(client: TestClient, path: str, body: Any, **headers: str) -> Any:
    return client.post(path, content=orjson.dumps(body), headers={**CT, **headers})


def put(client: TestClient, path: str, body: Any) -> Any:
    return client.put(path, content=orjson.dumps(body), headers=CT)


def register(client: TestClient, subject: str, schema: str, **extra: Any) -> dict[str, Any]:
    r = post(client, f"/subjects/{subject}/versions", {"schema": schema, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def error(r: Any, status: int, code: int, *needles: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == CONTENT_TYPE
    body = r.json()
    assert set(body) == {"error_code", "message"}, body
    assert body["error_code"] == code, body
    for needle in needles:
        assert needle in body["message"], body["message"]
    assert "Traceback" not in body["message"]
    message: str = body["message"]
    return message


# -- basics ------------------------------------------------------------------------------


def test_root_types_and_content_type(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.json() == {}
    assert r.headers["content-type"] == CONTENT_TYPE
    assert client.get("/schemas/types").json() == ["AVRO", "JSON"]
    assert client.get("/subjects").json() == []


def test_register_returns_id_version_and_is_idempotent(client: TestClient) -> None:
    first = register(client, "users-value", V0)
    assert first == {"subject": "users-value", "version": 1, "id": 1, "schema": V0}
    spaced = V0.replace(",", ", ").replace(":", ": ")
    assert register(client, "users-value", spaced)["id"] == 1  # same schema, other spacing
    assert client.get("/subjects/users-value/versions").json() == [1]
    other = register(client, "other-value", V0)
    assert (other["id"], other["version"]) == (1, 1)  # ids are global
    assert register(client, "users-value", V1) == {
        "subject": "users-value", "version": 2, "id": 2, "schema": V1}
    assert client.get("/subjects").json() == ["other-value", "users-value"]


@pytest.mark.parametrize("ctype", [CONTENT_TYPE, "application/vnd.schemaregistry+json",
                                   "application/json", "application/json; charset=utf-8",
                                   "application/octet-stream", None])
def test_json_bodies_are_read_whatever_json_type_they_are_sent_as(
        client: TestClient, ctype: str | None) -> None:
    headers = {"content-type": ctype} if ctype else {}
    r = client.post("/subjects/s/versions", content=orjson.dumps({"schema": V0}), headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == 1 and r.headers["content-type"] == CONTENT_TYPE


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded"])
def test_other_content_types_are_refused_with_415(client: TestClient, ctype: str) -> None:
    r = client.post("/subjects/s/versions", content=orjson.dumps({"schema": V0}),
                    headers={"content-type": ctype})
    error(r, 415, 415, "Unsupported content type", "application/json")


def test_malformed_request_bodies_are_422_saying_what_to_send(client: TestClient) -> None:
    r = client.post("/subjects/s/versions", content=b'{"schema": ', headers=CT)
    error(r, 422, 422, "not valid JSON", "send a JSON object")
    error(client.post("/subjects/s/versions", content=b"", headers=CT), 422, 422, "empty")
    error(post(client, "/subjects/s/versions", ["schema"]), 422, 422, "must be a JSON object, got list")
    error(post(client, "/subjects/s/versions", {"schemaa": V0}), 422, 42201, "'schema'")
    error(post(client, "/subjects/s/versions", {"schema": {"type": "int"}}), 422, 42201, "string")
    error(post(client, "/subjects/s/versions", {"schema": V0, "references": "x"}), 422, 42201,
          "references")
    error(post(client, "/subjects/s/versions", {"schema": V0, "id": "one"}), 422, 422, "'id'")
    error(post(client, "/subjects/s/versions", {"schema": V0, "version": "one"}), 422, 42202)
    error(client.get("/subjects?deleted=maybe"), 422, 422, "deleted")
    error(put(client, "/config", ["FULL"]), 422, 422, "JSON object")


def test_too_large_bodies_are_413(client: TestClient) -> None:
    big = b'{"schema": "' + b" " * MAX_BODY_BYTES + b'"}'
    error(client.post("/subjects/s/versions", content=big, headers=CT), 413, 413, "too large")


def test_invalid_schemas_are_42201_with_the_parsers_message(client: TestClient) -> None:
    message = error(post(client, "/subjects/s/versions", {"schema": '{"type": "record"}'}),
                    422, 42201, "Invalid Avro schema")
    assert "name" in message
    error(post(client, "/subjects/s/versions", {"schema": "{not json"}), 422, 42201, "Invalid Avro")
    error(post(client, "/subjects/s/versions",
               {"schema": '{"type": "object", "properties": {"a": {"type": "nope"}}}',
                "schemaType": "JSON"}), 422, 42201, "Invalid JSON schema", "/properties/a")
    error(post(client, "/subjects/s/versions",
               {"schema": 'syntax = "proto3"; message M {}', "schemaType": "PROTOBUF"}),
          422, 42201, "PROTOBUF", "not supported")
    assert client.get("/subjects").json() == []


def test_metadata_and_rule_sets_are_accepted_and_ignored(client: TestClient) -> None:
    body = register(client, "s", V0, metadata={"properties": {"owner": "me"}},
                    ruleSet={"domainRules": []}, normalize=True)
    assert body["id"] == 1 and "metadata" not in body


# -- subjects and versions ---------------------------------------------------------------


def test_lookup_finds_the_version_or_says_40401_40403(client: TestClient) -> None:
    register(client, "s", V0)
    register(client, "s", V1)
    r = post(client, "/subjects/s?normalize=False&deleted=False", {"schema": V0})
    assert r.status_code == 200
    assert r.json() == {"subject": "s", "version": 1, "id": 1, "schema": V0}
    error(post(client, "/subjects/nope", {"schema": V0}), 404, 40401, "nope")
    error(post(client, "/subjects/s", {"schema": V2}), 404, 40403)
    error(post(client, "/subjects/s", {"schema": "{broken"}), 422, 42201)
    client.delete("/subjects/s")
    error(post(client, "/subjects/s", {"schema": V0}), 404, 40401)
    assert post(client, "/subjects/s?deleted=true", {"schema": V0}).json()["version"] == 1


def test_versions_by_number_latest_and_raw_schema(client: TestClient) -> None:
    register(client, "s", V0)
    register(client, "s", V1)
    assert client.get("/subjects/s/versions").json() == [1, 2]
    assert client.get("/subjects/s/versions/1").json() == {
        "subject": "s", "version": 1, "id": 1, "schema": V0}
    assert client.get("/subjects/s/versions/latest").json()["version"] == 2
    assert client.get("/subjects/s/versions/-1").json()["version"] == 2
    raw = client.get("/subjects/s/versions/1/schema")
    assert raw.status_code == 200 and raw.headers["content-type"] == CONTENT_TYPE
    assert raw.content == V0.encode()
    error(client.get("/subjects/nope/versions"), 404, 40401)
    error(client.get("/subjects/nope/versions/1"), 404, 40401)
    error(client.get("/subjects/s/versions/3"), 404, 40402)
    error(client.get("/subjects/s/versions/3/schema"), 404, 40402)
    error(client.get("/subjects/s/versions/abc"), 422, 42202, "abc")
    error(client.get("/subjects/s/versions/0"), 422, 42202)


def test_delete_version_soft_then_permanent(client: TestClient) -> None:
    register(client, "s", V0)
    register(client, "s", V1)
    error(client.delete("/subjects/s/versions/1?permanent=true"), 404, 40407)
    assert client.delete("/subjects/s/versions/1").json() == 1
    error(client.get("/subjects/s/versions/1"), 404, 40402)
    assert client.get("/subjects/s/versions/1?deleted=true").json()["id"] == 1
    assert client.get("/subjects/s/versions").json() == [2]
    assert client.get("/subjects/s/versions?deleted=true").json() == [1, 2]
    assert client.get("/subjects/s/versions?deletedOnly=true").json() == [1]
    error(client.delete("/subjects/s/versions/1"), 404, 40406, "permanent=true")
    assert client.delete("/subjects/s/versions/1?permanent=true").json() == 1
    assert client.get("/subjects/s/versions?deleted=true").json() == [2]
    error(client.delete("/subjects/s/versions/7"), 404, 40402)
    error(client.delete("/subjects/nope/versions/1"), 404, 40401)
    error(client.delete("/subjects/s/versions/x"), 422, 42202)


def test_delete_subject_soft_then_permanent(client: TestClient) -> None:
    register(client, "s", V0)
    register(client, "s", V1)
    register(client, "t", V0)
    error(client.delete("/subjects/s?permanent=true"), 404, 40405)
    assert client.delete("/subjects/s").json() == [1, 2]
    assert client.get("/subjects").json() == ["t"]
    assert client.get("/subjects?deleted=true").json() == ["s", "t"]
    assert client.get("/subjects?deletedOnly=true").json() == ["s"]
    assert client.get("/subjects?deleted_only=True").json() == ["s"]
    error(client.get("/subjects/s/versions"), 404, 40401)
    error(client.delete("/subjects/s"), 404, 40404, "permanent=true")
    assert client.delete("/subjects/s?permanent=true").json() == [1, 2]
    assert client.get("/subjects?deleted=true").json() == ["t"]
    error(client.get("/subjects/s/versions?deleted=true"), 404, 40401)
    error(client.delete("/subjects/s"), 404, 40401)
    assert client.get("/schemas/ids/1").json() == {"schema": V0}  # still used by t


def test_subjects_prefix_and_pages(client: TestClient) -> None:
    for name in ("a-value", "a-key", "b-value", "c-value"):
        register(client, name, V0)
    assert client.get("/subjects?subjectPrefix=a-").json() == ["a-key", "a-value"]
    assert client.get("/subjects?offset=1&limit=2").json() == ["a-value", "b-value"]
    assert client.get("/subjects?offset=3&limit=-1").json() == ["c-value"]
    error(client.get("/subjects?offset=-1"), 422, 422, "offset")


@pytest.mark.parametrize("subject", ["my.topic-value", "a/b", "100% real", "ü-é", "a%2Fb", "a..b", "x?y#z"])
def test_subjects_with_any_characters_round_trip_percent_encoded(
        client: TestClient, subject: str) -> None:
    from urllib.parse import quote

    path = quote(subject, safe="")
    assert register(client, path, V0)["subject"] == subject
    assert client.get("/subjects").json() == [subject]
    assert client.get(f"/subjects/{path}/versions").json() == [1]
    assert client.get(f"/subjects/{path}/versions/1").json()["subject"] == subject
    assert client.get(f"/subjects/{path}/versions/1/schema").content == V0.encode()
    assert post(client, f"/subjects/{path}", {"schema": V0}).json()["subject"] == subject
    assert put(client, f"/config/{path}", {"compatibility": "NONE"}).status_code == 200
    assert client.get(f"/config/{path}").json() == {"compatibilityLevel": "NONE"}
    assert client.get("/schemas/ids/1/subjects").json() == [subject]
    assert client.delete(f"/subjects/{path}").json() == [1]


def test_a_subject_ending_in_versions_is_not_confused_with_a_path(client: TestClient) -> None:
    register(client, "x%2Fversions", V0)  # the subject "x/versions"
    register(client, "x", V1)
    assert client.get("/subjects").json() == ["x", "x/versions"]
    assert client.get("/subjects/x%2Fversions/versions/1").json()["schema"] == V0
    assert client.get("/subjects/x/versions/1").json()["schema"] == V1


def test_what_another_process_registered_is_found_at_once() -> None:
    log = MemoryLog()
    server = SchemaRegistry(log, stale_after_s=3600)  # never refreshes on its own
    client = TestClient(create_app(server))
    elsewhere = SchemaRegistry(log)  # e.g. CI registering through the log
    assert client.get("/subjects").json() == []
    sid = elsewhere.register("s", V0).id
    assert post(client, "/subjects/s", {"schema": V0}).json()["id"] == sid  # a miss refreshes
    assert client.get("/subjects/s/versions/1").json()["id"] == sid
    assert client.get(f"/schemas/ids/{sid}").json() == {"schema": V0}
    elsewhere.set_compatibility("NONE", "s")
    assert client.get("/config/s").json() == {"compatibilityLevel": "NONE"}


# -- schemas by id -----------------------------------------------------------------------


def test_schemas_by_id_and_their_reverse_lookups(client: TestClient) -> None:
    register(client, "s", V0)
    register(client, "t", V0)
    register(client, "j", JSON_V1, schemaType="JSON")
    assert client.get("/schemas/ids/1").json() == {"schema": V0}
    assert client.get("/schemas/ids/1?subject=j").json() == {"schema": V0}  # ids are global
    assert client.get("/schemas/ids/2").json() == {"schema": JSON_V1, "schemaType": "JSON"}
    assert client.get("/subjects/j/versions/1").json()["schemaType"] == "JSON"
    assert client.get("/schemas/ids/1/schema").content == V0.encode()
    assert client.get("/schemas/ids/1/versions").json() == [
        {"subject": "s", "version": 1}, {"subject": "t", "version": 1}]
    assert client.get("/schemas/ids/1/versions?subject=t").json() == [{"subject": "t", "version": 1}]
    assert client.get("/schemas/ids/1/subjects").json() == ["s", "t"]
    client.delete("/subjects/s")
    assert client.get("/schemas/ids/1/subjects").json() == ["t"]
    assert client.get("/schemas/ids/1/subjects?deleted=true").json() == ["s", "t"]
    for path in ("/schemas/ids/9", "/schemas/ids/9/schema", "/schemas/ids/9/versions",
                 "/schemas/ids/9/subjects", "/schemas/ids/abc", "/schemas/ids/-1",
                 "/schemas/ids/%D9%A1"):  # an Arabic-Indic 1 is not id 1
        error(client.get(path), 404, 40403)


def test_references_and_referencedby(client: TestClient) -> None:
    address = record({"name": "city", "type": "string"}, name="Address")
    register(client, "address", address)
    user = record(AGE, {"name": "home", "type": "Address"})
    body = register(client, "user", user,
                    references=[{"name": "Address", "subject": "address", "version": 1}])
    assert body["references"] == [{"name": "Address", "subject": "address", "version": 1}]
    assert client.get(f"/schemas/ids/{body['id']}").json()["references"] == body["references"]
    assert client.get("/subjects/address/versions/1/referencedby").json() == [body["id"]]
    assert client.get("/subjects/user/versions/1/referencedby").json() == []
    error(client.delete("/subjects/address/versions/1"), 422, 42206, "reference")
    error(post(client, "/subjects/u2/versions",
               {"schema": user, "references": [{"name": "Address", "subject": "nope", "version": 1}]}),
          422, 42201, "not registered")
    error(post(client, "/subjects/u2/versions", {"schema": user, "references": [{"name": "Address"}]}),
          422, 42201, "reference")
    error(client.get("/subjects/nope/versions/1/referencedby"), 404, 40401)


# -- compatibility -----------------------------------------------------------------------


def test_transitive_example_accepted_under_backward_409_under_backward_transitive(
        client: TestClient) -> None:
    register(client, "users", V0)
    register(client, "users", V1)
    for path in ("/compatibility/subjects/users/versions/latest",
                 "/compatibility/subjects/users/versions"):
        assert post(client, path, {"schema": V2}).json() == {"is_compatible": True}
    assert put(client, "/config/users", {"compatibility": "BACKWARD_TRANSITIVE"}).json() == {
        "compatibility": "BACKWARD_TRANSITIVE"}
    r = post(client, "/compatibility/subjects/users/versions?verbose=true", {"schema": V2})
    assert r.json()["is_compatible"] is False
    assert any("READER_FIELD_MISSING_DEFAULT_VALUE" in m and "first_name" in m
               for m in r.json()["messages"])
    assert post(client, "/compatibility/subjects/users/versions", {"schema": V2}).json() == {
        "is_compatible": False}
    # one named version: checked against it alone, as Confluent does
    assert post(client, "/compatibility/subjects/users/versions/latest", {"schema": V2}).json() == {
        "is_compatible": True}
    assert post(client, "/compatibility/subjects/users/versions/1?verbose=True",
                {"schema": V2}).json()["is_compatible"] is False
    message = error(post(client, "/subjects/users/versions", {"schema": V2}), 409, 409,
                    "BACKWARD_TRANSITIVE", "READER_FIELD_MISSING_DEFAULT_VALUE", "first_name")
    assert "incompatible" in message
    assert client.get("/subjects/users/versions").json() == [1, 2]
    put(client, "/config/users", {"compatibility": "BACKWARD"})
    assert register(client, "users", V2)["version"] == 3


def test_compatibility_errors(client: TestClient) -> None:
    latest = "/compatibility/subjects/nope/versions/latest?verbose=true"
    assert post(client, latest, {"schema": V0}).json() == {"is_compatible": True, "messages": []}
    assert post(client, "/compatibility/subjects/nope/versions", {"schema": V0}).json() == {
        "is_compatible": True}
    error(post(client, "/compatibility/subjects/nope/versions/1", {"schema": V0}), 404, 40401)
    register(client, "s", V0)
    error(post(client, "/compatibility/subjects/s/versions/5", {"schema": V0}), 404, 40402)
    error(post(client, "/compatibility/subjects/s/versions/x", {"schema": V0}), 422, 42202)
    error(post(client, "/compatibility/subjects/s/versions/1", {"schema": "{"}), 422, 42201)
    r = post(client, "/compatibility/subjects/s/versions/1?verbose=true",
             {"schema": JSON_V1, "schemaType": "JSON"})
    assert r.json()["is_compatible"] is False and "SCHEMA_TYPE_CHANGED" in r.json()["messages"][0]


# -- configuration -----------------------------------------------------------------------


def test_config_global_and_per_subject(client: TestClient) -> None:
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert put(client, "/config", {"compatibility": "full"}).json() == {"compatibility": "FULL"}
    assert client.get("/config").json() == {"compatibilityLevel": "FULL"}
    error(client.get("/config/s"), 404, 40408, "s")
    assert client.get("/config/s?defaultToGlobal=true").json() == {"compatibilityLevel": "FULL"}
    assert put(client, "/config/s", {"compatibility": "NONE"}).json() == {"compatibility": "NONE"}
    assert client.get("/config/s").json() == {"compatibilityLevel": "NONE"}
    assert put(client, "/config/s", {"compatibilityLevel": "FORWARD"}).json() == {
        "compatibility": "FORWARD"}
    assert client.delete("/config/s").json() == {"compatibilityLevel": "FORWARD"}
    error(client.get("/config/s"), 404, 40408)
    error(client.delete("/config/s"), 404, 40408)
    error(put(client, "/config", {"compatibility": "SOMETIMES"}), 422, 42203, "SOMETIMES")
    error(put(client, "/config/s", {"level": "FULL"}), 422, 42203, "compatibility")


def test_modes_readonly_and_their_errors(client: TestClient) -> None:
    assert client.get("/mode").json() == {"mode": "READWRITE"}
    register(client, "s", V0)
    error(client.get("/mode/s"), 404, 40409)
    assert client.get("/mode/s?defaultToGlobal=true").json() == {"mode": "READWRITE"}
    assert put(client, "/mode/s", {"mode": "READONLY"}).json() == {"mode": "READONLY"}
    assert client.get("/mode/s").json() == {"mode": "READONLY"}
    error(post(client, "/subjects/s/versions", {"schema": V1}), 422, 42205, "read-only")
    error(client.delete("/subjects/s/versions/1"), 422, 42205)
    error(client.delete("/subjects/s"), 422, 42205)
    assert client.get("/subjects/s/versions/1").status_code == 200  # reads still work
    assert register(client, "t", V1)["version"] == 1  # other subjects are writable
    assert client.delete("/mode/s").json() == {"mode": "READONLY"}
    error(client.delete("/mode/s"), 404, 40409)
    assert register(client, "s", V1)["version"] == 2
    error(put(client, "/mode", {"mode": "SLEEPY"}), 422, 42204, "SLEEPY")
    error(put(client, "/mode", {"state": "READONLY"}), 422, 42204, "mode")
    assert put(client, "/mode", {"mode": "READONLY"}).json() == {"mode": "READONLY"}
    error(post(client, "/subjects/u/versions", {"schema": V0}), 422, 42205)
    put(client, "/mode", {"mode": "READWRITE"})


def test_import_mode_keeps_explicit_ids_and_versions(client: TestClient) -> None:
    error(post(client, "/subjects/s/versions", {"schema": V0, "id": 100}), 422, 42205, "IMPORT")
    assert put(client, "/mode", {"mode": "IMPORT"}).json() == {"mode": "IMPORT"}
    imported = register(client, "s", V0, id=100, version=3)
    assert (imported["id"], imported["version"]) == (100, 3)
    assert register(client, "s", V2, id=205, version=7)["id"] == 205  # IMPORT skips compatibility
    assert client.get("/schemas/ids/100").json() == {"schema": V0}
    assert client.get("/subjects/s/versions").json() == [3, 7]
    error(post(client, "/subjects/t/versions", {"schema": V1, "id": 100}), 422, 42205, "100")
    error(post(client, "/subjects/s/versions", {"schema": V1, "id": 300, "version": 3}), 422, 42205)
    assert put(client, "/mode", {"mode": "READWRITE"}).json() == {"mode": "READWRITE"}
    fresh = register(client, "t", V1)
    assert fresh["id"] == 206 and fresh["version"] == 1  # after the highest imported id
    error(put(client, "/mode", {"mode": "IMPORT"}), 422, 42205, "force=true")
    assert put(client, "/mode?force=True", {"mode": "IMPORT"}).json() == {"mode": "IMPORT"}
    put(client, "/mode", {"mode": "READWRITE"})


# -- errors the framework would otherwise answer -----------------------------------------


def test_unknown_paths_and_methods_are_confluent_shaped(client: TestClient) -> None:
    error(client.get("/nope"), 404, 404, "Not Found")
    error(client.get("/subjects/s/versions/1/nope"), 404, 404)
    error(client.put("/subjects"), 405, 405)


def test_unexpected_failures_are_500_without_details_and_logged(
        registry: SchemaRegistry, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret: /var/lib/registry/key")

    def store_down(*_: Any, **__: Any) -> Any:
        raise StoreError("cannot read the schema topic '_schemas': /secret/path is gone")

    monkeypatch.setattr(registry, "subjects", boom)
    monkeypatch.setattr(registry, "schema_by_id", store_down)
    client = TestClient(create_app(registry), raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="eventml.schema.api"):
        message = error(client.get("/subjects"), 500, 50001, "see the server log")
        assert "secret" not in message
        message = error(client.get("/schemas/ids/1"), 500, 50001, "see the server log")
        assert "secret" not in message
    assert "secret: /var/lib/registry/key" in caplog.text  # the detail stays server-side
    assert "/secret/path is gone" in caplog.text


def test_the_router_mounts_under_a_prefix_in_another_app(registry: SchemaRegistry) -> None:
    app = FastAPI()
    app.include_router(router(registry, prefix="/registry"))
    client = TestClient(app)
    r = post(client, "/registry/subjects/a%2Fb/versions", {"schema": V0})
    assert r.status_code == 200 and r.json()["subject"] == "a/b"
    assert client.get("/registry/subjects").json() == ["a/b"]
    assert client.get("/registry/subjects/a%2Fb/versions/latest").json()["id"] == 1
    # errors keep Confluent's shape without the app's handlers
    error(client.get("/registry/subjects/nope/versions"), 404, 40401)
    error(client.post("/registry/subjects/s/versions", content=b"{", headers=CT), 422, 422)
    error(client.get("/registry/subjects?deleted=maybe"), 422, 422)


def test_the_app_shows_its_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/subjects/{subject}/versions" in paths and "/mode/{subject}" in paths
    assert "requestBody" in paths["/subjects/{subject}/versions"]["post"]


# -- eventml serve -----------------------------------------------------------------------

EVENTML = [sys.executable, "-m", "eventml"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "EVENTML_BROKER"}


def test_eventml_serve_prints_its_url_and_serves(tmp_path: Any) -> None:
    broker = f"embedded://{tmp_path}/data"
    proc = subprocess.Popen([*EVENTML, "serve", "--broker", broker, "--port", "0",
                             "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "schema registry at http://127.0.0.1:" in line and "/docs" in line, line
        url = line.split(" at ", 1)[1].split()[0]
        deadline = time.monotonic() + 10
        while True:
            try:
                r = httpx2.post(f"{url}/subjects/s/versions", content=orjson.dumps({"schema": V0}),
                                headers=CT)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert r.status_code == 200 and r.json()["id"] == 1
        assert httpx2.get(f"{url}/docs").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # the registry lives in the log: a second server sees the schema
    registry = SchemaRegistry(open_log(broker))
    assert registry.version("s", 1).schema.schema == V0


def _one_line_error(capsys: pytest.CaptureFixture[str], args: list[str], *needles: str) -> None:
    assert main(["serve", *args]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_eventml_serve_errors_are_one_line(
        tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTML_BROKER", raising=False)
    _one_line_error(capsys, ["--broker", "memory://", "--port", "70000"], "--port")
    _one_line_error(capsys, ["--broker", "memory://", "--port", "http"], "--port")
    _one_line_error(capsys, ["--broker", "memory://", "--log-level", "loud"], "--log-level")
    _one_line_error(capsys, ["--broker", "nope://x"], "broker scheme")
    (tmp_path / "file").write_text("")
    _one_line_error(capsys, ["--broker", f"embedded://{tmp_path}/file/data", "--port", "0"],
                    "data directory")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _one_line_error(capsys, ["--broker", "memory://", "--port", str(port)],
                        f"127.0.0.1:{port}", "in use")


def test_without_the_serve_extra_the_errors_say_what_to_install(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    monkeypatch.delitem(sys.modules, "eventml.schema.api")
    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(ImportError, match=r"pip install 'eventml\[serve\]'"):
        importlib.import_module("eventml.schema.api")
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    _one_line_error(capsys, ["--broker", "memory://"], "pip install 'eventml[serve]'")
