"""The composed service: the registry's routes as before, /v1 beside them, JSON errors."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from eventml.api import create_app, online_stores, sqlite_view
from eventml.features import materialized
from eventml.log import LogError
from eventml.log.memory import MemoryLog
from eventml.schema.api import CONTENT_TYPE
from eventml.schema.registry import SchemaRegistry

from .conftest import Served
from .sample import cards
from .test_features_api import _error

SCHEMA = orjson.dumps({"type": "record", "name": "U", "fields": [{"name": "a", "type": "int"}]}).decode()


def test_the_registry_answers_beside_features_and_views(served: Served) -> None:
    app = create_app(registry=SchemaRegistry(served.log),
                     features=online_stores(served.log, materialized(served.app)),
                     views=[sqlite_view(cards, served.db, served.log)])
    with TestClient(app) as client:
        r = client.post("/subjects/s/versions", content=orjson.dumps({"schema": SCHEMA}),
                        headers={"content-type": CONTENT_TYPE})
        assert r.status_code == 200 and r.json()["id"] == 1, r.text
        assert client.get("/subjects").json() == ["s"]
        assert client.get("/schemas/ids/1").json()["schema"] == SCHEMA
        r = client.get("/subjects/nope/versions")
        assert r.status_code == 404 and r.json()["error_code"] == 40401
        assert r.headers["content-type"] == CONTENT_TYPE
        # off /v1 an unknown path answers in the registry's media type, under /v1 in JSON
        r = client.get("/nope")
        assert r.status_code == 404 and r.headers["content-type"] == CONTENT_TYPE
        assert r.json() == {"error_code": 404, "message": "HTTP 404 Not Found; see /docs for the endpoints"}
        _error(client.get("/v1/nope"), 404, 404)
        _error(client.post("/v1/features/card_activity?keys=c1"), 405, 405)
        assert client.get("/v1/features/card_activity?keys=c1").status_code == 200
        assert client.get("/v1/views/cards/rows/c1").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/subjects/{subject}/versions", "/v1/features/{view}", "/v1/views/{view}",
                "/v1/views/{view}/rows/{key}", "/v1/views/{view}/status"} <= set(paths)
        assert client.get("/docs").status_code == 200


def test_without_anything_to_serve_the_v1_routes_say_so() -> None:
    with TestClient(create_app()) as client:
        assert client.get("/v1/features").json() == {"features": []}
        assert client.get("/v1/views").json() == {"views": []}
        _error(client.get("/v1/features/x?keys=a"), 404, 40441, "--app")
        _error(client.get("/v1/views/x/rows/a"), 404, 40451, "--views")
        _error(client.get("/subjects"), 404, 404)  # no registry given


def test_unexpected_failures_are_500_without_details(
        served: Served, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    stores = online_stores(served.log, materialized(served.app))

    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret: /var/lib/key")

    monkeypatch.setattr(stores["card_activity"], "get_online_features", boom)
    app = create_app(registry=SchemaRegistry(MemoryLog()), features=stores,
                     views=[sqlite_view(cards, served.db, served.log)])
    with TestClient(app, raise_server_exceptions=False) as client, \
            caplog.at_level(logging.ERROR, logger="eventml.api"):
        message = _error(client.get("/v1/features/card_activity?keys=a"), 500, 50001, "server log")
        assert "secret" not in message
    assert "secret: /var/lib/key" in caplog.text


def test_health_and_readiness(served: Served) -> None:
    stores = online_stores(served.log, materialized(served.app))
    with TestClient(create_app(features=stores)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        r = client.get("/readyz")
        assert r.status_code == 200 and r.json() == {"status": "ready", "feature_views": ["card_activity"]}
    (name, store), = online_stores(served.log, materialized(served.app)).items()

    def log_down() -> int:
        raise LogError("broker unreachable")

    store.refresh = log_down  # type: ignore[method-assign]  # its log fails from the start
    with TestClient(create_app(features={name: store})) as client:
        assert client.get("/healthz").status_code == 200  # alive, but
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["error_code"] == 50302 and name in r.json()["message"]
