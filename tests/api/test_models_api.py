"""/v1/models: the registry's models, versions and metadata read over HTTP; moving an alias
goes through move_alias, so the control topic carries the change to running workers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from numpy.typing import NDArray

from eventml.api import create_app
from eventml.api.models import models_router
from eventml.log import BrokerUnavailable, Log, Message, RecordMetadata
from eventml.ml import AliasWatcher, ModelRegistry, TrainingRange
from eventml.ml.control import alias_changes
from eventml.ml.records import CONTROL_TOPIC, AliasChange
from eventml.testing import MemoryLog

from .test_topics_api import assert_matches_spec, one_line_error

SCORE = "tests.api.test_models_api:score"
T0 = 1_767_225_600_000


def score(x: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray(x[:, 0] / 100.0, dtype=np.float64)


def _name() -> str:
    return f"fraud{uuid.uuid4().hex[:8]}"  # the control topic is shared on the Kafka broker


def _registry(path: Path, name: str = "fraud") -> ModelRegistry:
    """``name`` in three versions (champion 2, challenger 3) and ``churn`` in one."""
    now = iter(range(T0, T0 + 1000))
    registry = ModelRegistry(path, clock=lambda: next(now))
    registry.register(name, SCORE, flavor="callable", features=["amount"], metrics={"auc": 0.81},
                      description="first")
    registry.register(name, SCORE, flavor="callable", features=["amount", "n_1h"],
                      metrics={"auc": 0.86}, code_version="abc123",
                      training=TrainingRange("tx", {0: 0}, {0: 5000}, T0 - 86_400_000, T0))
    registry.register(name, SCORE, flavor="callable", features=["amount", "n_1h"])
    registry.register("churn", SCORE, flavor="callable")
    registry.set_alias(name, "champion", 2)
    registry.set_alias(name, "challenger", 3)
    return registry


def _client(registry: ModelRegistry, log: Log | None) -> TestClient:
    app = FastAPI()
    app.include_router(models_router(registry, log, writable=True))
    return TestClient(app)


def test_models_versions_and_metadata_are_read_as_the_registry_holds_them(tmp_path: Path) -> None:
    registry = _registry(tmp_path / "models")
    with _client(registry, None) as c:
        r = c.get("/v1/models")
        assert r.status_code == 200
        assert r.json() == {"models": [
            {"name": "churn", "latest_version": 1, "versions": 1, "aliases": {}, "created_ms": T0 + 3},
            {"name": "fraud", "latest_version": 3, "versions": 3,
             "aliases": {"challenger": 3, "champion": 2}, "created_ms": T0},
        ]}
        assert_matches_spec(c.app, "GET", "/v1/models", r)

        r = c.get("/v1/models/fraud")
        body = r.json()
        assert r.status_code == 200 and body["name"] == "fraud"
        assert (body["latest_version"], body["version_count"]) == (3, 3)
        assert body["aliases"] == {"champion": 2, "challenger": 3}
        assert [v["version"] for v in body["versions"]] == [3, 2, 1]  # newest first
        assert body["versions"] == [registry.get("fraud", n).to_dict() for n in (3, 2, 1)]
        assert body["next_offset"] is None
        assert_matches_spec(c.app, "GET", "/v1/models/{name}", r)

        r = c.get("/v1/models/fraud/versions/2")
        assert r.status_code == 200
        v2 = r.json()
        assert v2 == registry.get("fraud", 2).to_dict()
        assert (v2["features"], v2["metrics"], v2["aliases"], v2["code_version"]) == (
            ["amount", "n_1h"], {"auc": 0.86}, ["champion"], "abc123")
        assert v2["training"] == {"topic": "tx", "start_offsets": {"0": 0}, "end_offsets": {"0": 5000},
                                  "start_ms": T0 - 86_400_000, "end_ms": T0}
        assert v2["created_ms"] == T0 + 1 and v2["flavor"] == "callable" and len(v2["sha256"]) == 64
        assert_matches_spec(c.app, "GET", "/v1/models/{name}/versions/{version}", r)


def test_a_models_versions_come_in_bounded_pages(tmp_path: Path) -> None:
    with _client(_registry(tmp_path / "models"), None) as c:
        pages = []
        offset: int | None = 0
        while offset is not None:
            r = c.get("/v1/models/fraud", params={"limit": 2, "offset": offset})
            assert r.status_code == 200
            pages.append([v["version"] for v in r.json()["versions"]])
            offset = r.json()["next_offset"]
        assert pages == [[3, 2], [1]]
        for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "x"}):
            one_line_error(c.get("/v1/models/fraud", params=bad), 422, 422)


def test_unknown_models_and_versions_are_404s_and_bad_names_422s(tmp_path: Path) -> None:
    with _client(_registry(tmp_path / "models"), None) as c:
        assert one_line_error(c.get("/v1/models/nope"), 404, 40461) == (
            "no model named 'nope' (GET /v1/models lists them)")
        assert one_line_error(c.get("/v1/models/fraud/versions/9"), 404, 40462) == (
            "model 'fraud' has no version 9 (latest is 3)")
        one_line_error(c.get("/v1/models/nope/versions/1"), 404, 40461)
        assert "invalid model name" in one_line_error(c.get("/v1/models/bad.name"), 422, 42261)
        for version in ("0", "-1", "x", "1.5", str(2**31), "99999999999999999999999"):
            one_line_error(c.get(f"/v1/models/fraud/versions/{version}"), 422, 422)


def test_reads_never_create_a_registry(tmp_path: Path) -> None:
    missing = tmp_path / "no-registry"
    log = MemoryLog()
    with _client(ModelRegistry(missing), log) as c:
        assert c.get("/v1/models").json() == {"models": []}
        message = one_line_error(c.get("/v1/models/fraud"), 404, 40461)
        assert str(tmp_path) not in message  # the server's paths stay on the server
        one_line_error(c.get("/v1/models/fraud/versions/1"), 404, 40461)
        r = c.put("/v1/models/fraud/aliases/champion", json={"version": 1})
        one_line_error(r, 404, 40461)
    assert not missing.exists()
    assert CONTROL_TOPIC not in log.list_topics()


def test_moving_an_alias_goes_through_move_alias_and_the_control_topic(
        tmp_path: Path, log: Log) -> None:
    name = _name()
    registry = _registry(tmp_path / "models", name)
    watcher = AliasWatcher(log, every_ms=0)  # a running worker's view of the control topic
    watcher.start()
    with _client(registry, log) as c:
        r = c.put(f"/v1/models/{name}/aliases/champion", json={"version": 3, "reason": "better auc"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body == {"model": name, "alias": "champion", "version": 3, "previous": 2,
                        "reason": "better auc", "at_ms": body["at_ms"], "announced": True}
        assert_matches_spec(c.app, "PUT", "/v1/models/{name}/aliases/{alias}", r)
        assert registry.resolve(f"{name}@champion").version == 3
        change = AliasChange(name, "champion", 3, previous=2, reason="better auc", at_ms=body["at_ms"])
        assert [ch for ch in watcher.poll(force=True) if ch.model == name] == [change]
        assert [ch for ch in alias_changes(log) if ch.model == name] == [change]

        # a new alias has no previous version; the reason is optional
        r = c.put(f"/v1/models/{name}/aliases/shadow", json={"version": 1})
        assert (r.status_code, r.json()["previous"], r.json()["reason"]) == (200, None, "")
        assert [(ch.alias, ch.version, ch.previous) for ch in watcher.poll(force=True)
                if ch.model == name] == [("shadow", 1, None)]
        assert c.get(f"/v1/models/{name}").json()["aliases"] == {
            "challenger": 3, "champion": 3, "shadow": 1}


@pytest.mark.parametrize(("url", "body", "status", "code"), [
    ("/v1/models/fraud/aliases/champion", {"version": 9}, 404, 40462),
    ("/v1/models/nope/aliases/champion", {"version": 1}, 404, 40461),
    ("/v1/models/fraud/aliases/9lives", {"version": 1}, 422, 42261),
    ("/v1/models/fraud/aliases/champion", {"version": "3"}, 422, 422),
    ("/v1/models/fraud/aliases/champion", {"version": True}, 422, 422),
    ("/v1/models/fraud/aliases/champion", {"version": 0}, 422, 422),
    ("/v1/models/fraud/aliases/champion", {"version": 2**31}, 422, 422),
    ("/v1/models/fraud/aliases/champion", {"version": 3, "by": "me"}, 422, 422),
    ("/v1/models/fraud/aliases/champion", {"version": 3, "reason": 5}, 422, 422),
    ("/v1/models/fraud/aliases/champion", {"version": 3, "reason": "x" * 501}, 422, 422),
    ("/v1/models/fraud/aliases/champion", {}, 422, 422),
    ("/v1/models/fraud/aliases/champion", [3], 422, 422),
    ("/v1/models/fraud/aliases/champion", b"{not json", 422, 422),
    ("/v1/models/fraud/aliases/champion", b"x" * 20_000, 413, 41301),
])
def test_a_refused_alias_change_changes_nothing(
        tmp_path: Path, url: str, body: Any, status: int, code: int) -> None:
    registry = _registry(tmp_path / "models")
    log = MemoryLog()
    with _client(registry, log) as c:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        one_line_error(c.put(url, content=content, headers={"content-type": "application/json"}),
                       status, code)
    assert registry.resolve("fraud@champion").version == 2
    assert CONTROL_TOPIC not in log.list_topics()  # nothing announced


class _RefusingLog(MemoryLog):
    def append(self, topic: str, messages: Sequence[Message]) -> list[RecordMetadata]:
        raise BrokerUnavailable("the broker is down")


def test_an_alias_moved_but_not_announced_is_a_503_saying_so(tmp_path: Path) -> None:
    registry = _registry(tmp_path / "models")
    with _client(registry, _RefusingLog()) as c:
        message = one_line_error(c.put("/v1/models/fraud/aliases/champion", json={"version": 3}),
                                 503, 50361)
    assert "fraud@champion now names version 3 in the registry" in message
    assert "retry" in message and "the broker is down" not in message
    assert registry.resolve("fraud@champion").version == 3


def test_an_open_server_refuses_alias_changes(tmp_path: Path) -> None:
    registry = _registry(tmp_path / "models")
    log = MemoryLog()
    with TestClient(create_app(log=log, models=registry)) as c:
        assert c.get("/v1/models/fraud").status_code == 200  # reads are open, as the others
        r = c.put("/v1/models/fraud/aliases/champion", json={"version": 3})
        assert "admin API key" in one_line_error(r, 401, 40101)
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert registry.resolve("fraud@champion").version == 2
    assert CONTROL_TOPIC not in log.list_topics()


def _one_line_cli_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    from eventml.cli.app import main

    assert main(["serve", "--port", "0", *args]) != 0
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_serve_refuses_a_models_dir_that_holds_no_registry(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    err = _one_line_cli_error(capsys, ["--broker", "memory://", "--models", str(missing)])
    assert f"--models {missing}: no model registry there" in err
    assert not missing.exists()


def test_serve_serves_the_data_dirs_model_registry(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import urllib.request

    from eventml.ml import default_registry_path

    url_of_log = f"embedded://{tmp_path}/data"
    _registry(default_registry_path(url_of_log))
    env = {k: v for k, v in os.environ.items() if k not in ("EVENTML_BROKER", "EVENTML_MODELS")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventml", "serve", "--broker", url_of_log, "--port", "0",
         "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline()]
        url = lines[0].split(" at ", 1)[1].split()[0]
        while "models at" not in lines[-1] and len(lines) < 10:
            lines.append(proc.stdout.readline())
        assert f"models at {url}/v1/models (registry {default_registry_path(url_of_log)})" in lines[-1]
        with urllib.request.urlopen(f"{url}/v1/models/fraud/versions/2", timeout=10) as r:
            assert orjson.loads(r.read())["aliases"] == ["champion"]
        with urllib.request.urlopen(f"{url}/v1/models", timeout=10) as r:
            assert [m["name"] for m in orjson.loads(r.read())["models"]] == ["churn", "fraud"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
