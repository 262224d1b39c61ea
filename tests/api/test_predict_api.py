"""Inference over HTTP: /v1/predict/{model} now, /async through the log, results, webhooks, SSE."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from starlette.exceptions import HTTPException
from starlette.requests import Request

from eventml.api import create_app
from eventml.api._results import BadInput, Pending, ResultStore, address_refusal, parse_callback
from eventml.api.errors import JSONResponse
from eventml.api.predict import (
    REQUEST_TYPE,
    RESULT_TYPE,
    AsyncConfig,
    ModelCache,
    PredictLimits,
    deliver,
    predict_router,
)
from eventml.events import from_record
from eventml.log import Log, open_log
from eventml.ml.registry import ModelRegistry
from eventml.security import KeyStore
from eventml.testing import serve_app

from .test_ingest import read_all

GOOD = {"Authorization": "Bearer good"}


def weighted(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Model 1: columns (amount, count)."""
    return 0.001 * x[:, 0] + 0.1 * x[:, 1]


def swapped(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Model 2: columns (count, amount): same scores as model 1 if fed in its declared order."""
    return 0.1 * x[:, 0] + 0.001 * x[:, 1] + 1.0


def broken(x: NDArray[np.float64]) -> NDArray[np.float64]:
    raise RuntimeError("secret internals")


class Key:
    key_id = "k-test"


class FakeAuthorize:
    """``Bearer good`` may read everything but ``secret``; anything else is a 401."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, request: Request, operation: str, resource: str) -> Key:
        self.calls.append((operation, resource))
        if request.headers.get("authorization") != "Bearer good":
            raise HTTPException(401, "bad key")
        if resource == "secret":
            raise HTTPException(403, "not yours")
        return Key()


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "models")
    reg.register("fraud", weighted, flavor="callable", features=["amount", "count"],
                 metrics={"threshold": 0.5})
    reg.register("fraud", swapped, flavor="callable", features=["count", "amount"],
                 metrics={"threshold": 1.5})
    reg.set_alias("fraud", "champion", 1)
    reg.register("plain", weighted, flavor="callable", features=["amount", "count"])
    reg.register("broken", broken, flavor="callable", features=["amount"])
    reg.register("secret", weighted, flavor="callable", features=["amount", "count"])
    return reg


def app_with(registry: ModelRegistry, **kw: Any) -> tuple[FastAPI, FakeAuthorize]:
    authorize = FakeAuthorize()
    app = FastAPI(default_response_class=JSONResponse)
    app.include_router(predict_router(registry, authorize=authorize, **kw))
    return app, authorize


def instances(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{"amount": float(a), "count": int(c), "card": f"c{i}"}
            for i, (a, c) in enumerate(zip(rng.uniform(0, 900, n), rng.integers(0, 9, n), strict=True))]


def expected(rows: list[dict[str, Any]]) -> list[float]:
    x = np.array([[r["amount"], r["count"]] for r in rows], dtype=np.float64)
    return weighted(x).tolist()  # type: ignore[no-any-return]


# -- synchronous ---------------------------------------------------------------------------


def test_scores_follow_the_versions_declared_feature_order(registry: ModelRegistry) -> None:
    app, authorize = app_with(registry)
    rows = instances(50)
    want = expected(rows)
    with TestClient(app) as c:
        checked = 0
        for ref, version, offset in (("fraud/1", 1, 0.0), ("fraud@champion", 1, 0.0), ("fraud", 2, 1.0),
                                     ("fraud/2", 2, 1.0)):
            r = c.post(f"/v1/predict/{ref}", json={"instances": rows}, headers=GOOD)
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["model"], body["version"]) == ("fraud", version)
            assert body["scores"] == pytest.approx([w + offset for w in want], rel=1e-12)
            threshold = 0.5 if version == 1 else 1.5
            assert body["decisions"] == [s >= threshold for s in body["scores"]]
            assert sum(body["decisions"]) not in (0, len(rows))  # the threshold splits them
            checked += 1
        one = c.post("/v1/predict/plain", json={"features": rows[0]}, headers=GOOD).json()
        assert one == {"model": "plain", "version": 1, "scores": pytest.approx(want[:1])}  # no threshold
        # a broken case the comparison catches: features fed in the wrong order differ
        wrong = swapped(np.array([[r["amount"], r["count"]] for r in rows])).tolist()
        assert wrong != pytest.approx([w + 1.0 for w in want], rel=1e-6)
    assert checked == 4
    assert set(authorize.calls) == {("read", "fraud"), ("read", "plain")}  # read on the NAME


def test_an_alias_move_takes_effect_within_a_second(registry: ModelRegistry) -> None:
    now = [100.0]
    cache = ModelCache(registry, clock=lambda: now[0])
    app, _ = app_with(registry, cache=cache)
    with TestClient(app) as c:
        def version() -> int:
            r = c.post("/v1/predict/fraud@champion", json={"features": {"amount": 1, "count": 1}},
                       headers=GOOD)
            return int(r.json()["version"])

        assert version() == 1
        registry.set_alias("fraud", "champion", 2)
        now[0] += 0.5
        assert version() == 1  # resolved 0.5 s ago: still cached
        now[0] += 0.6
        assert version() == 2  # 1.1 s: resolved again
        registry.set_alias("fraud", "champion", 1)
        now[0] += 1.1
        assert version() == 1


def test_bad_input_is_a_one_line_4xx(registry: ModelRegistry) -> None:
    app, _ = app_with(registry, limits=PredictLimits(max_body_bytes=10_000, max_instances=3))
    ok = {"amount": 1.0, "count": 2}
    cases: list[tuple[str, Any, int, str]] = [
        ("fraud", b"{not json", 422, "not valid JSON"),
        ("fraud", b"[1, 2]", 422, "JSON object"),
        ("fraud", b"", 422, "not valid JSON"),
        ("fraud", {"nothing": 1}, 422, "exactly one of"),
        ("fraud", {"features": ok, "instances": [ok]}, 422, "exactly one of"),
        ("fraud", {"instances": []}, 422, "non-empty array"),
        ("fraud", {"instances": ok}, 422, "non-empty array"),
        ("fraud", {"instances": [ok] * 4}, 413, "at most 3"),
        ("fraud", {"features": [1, 2]}, 422, "JSON object"),
        ("fraud", {"features": {"amount": 1.0}}, 422, "missing feature(s) 'count'"),
        ("fraud", {"instances": [ok, {"count": 1}]}, 422, "instance 1: 'amount'"),
        ("fraud", {"features": {"amount": "12", "count": 1}}, 422, "'amount' is '12'"),
        ("fraud", {"features": {"amount": True, "count": 1}}, 422, "finite JSON numbers"),
        ("fraud", {"features": {"amount": None, "count": 1}}, 422, "missing feature"),
        ("fraud", {"features": {"amount": {"a": [1]}, "count": 1}}, 422, "finite JSON numbers"),
        ("fraud", b'{"features": {"amount": 1e999, "count": 1}}', 422, "infinity"),
        ("fraud", {"features": ok, "callback": "http://example.com/"}, 422, "/async requests only"),
        ("fraud", {"features": {"amount": 1.0, "count": "x" * 20_000}}, 413, "exceeds 10000 bytes"),
        ("nobody", {"features": ok}, 404, "no model named 'nobody'"),
        ("fraud@nobody", {"features": ok}, 404, "no alias 'nobody'"),
        ("fraud/9", {"features": ok}, 404, "no version 9"),
        ("bad name!", {"features": ok}, 422, "invalid model name"),
        ("fraud/0", {"features": ok}, 422, "invalid version"),
        ("fraud@9x", {"features": ok}, 422, "invalid alias"),
    ]
    nowhere, _ = app_with(ModelRegistry(Path("/nonexistent/models")))
    with TestClient(nowhere) as c:  # no registry at all: a 404 that names no server path
        r = c.post("/v1/predict/fraud", json={"features": ok}, headers=GOOD)
        assert r.status_code == 404 and "nonexistent" not in r.text
    with TestClient(app, raise_server_exceptions=False) as c:
        for model, body, status, says in cases:
            content = body if isinstance(body, bytes) else orjson.dumps(body)
            r = c.post(f"/v1/predict/{model}", content=content,
                       headers={**GOOD, "content-type": "application/json"})
            assert r.status_code == status, (model, body if isinstance(body, bytes) else "", r.text)
            doc = r.json()
            assert set(doc) == {"error_code", "message"} and doc["error_code"] // 100 == status, r.text
            assert says in doc["message"], (says, doc["message"])
            assert "\n" not in doc["message"] and "Traceback" not in r.text
        # a model that raises: a 500 naming the version, never its internals
        r = c.post("/v1/predict/broken", json={"features": {"amount": 1}}, headers=GOOD)
        assert r.status_code == 500 and "broken/1 failed" in r.json()["message"]
        assert "secret internals" not in r.text
    assert len(cases) == 24


def test_keys_are_checked_on_the_models_name_before_it_is_looked_up(registry: ModelRegistry) -> None:
    app, authorize = app_with(registry)
    body = {"features": {"amount": 1.0, "count": 1}}
    with TestClient(app) as c:
        for url in ("/v1/predict/fraud", "/v1/predict/nobody", "/v1/predict/fraud/stats"):
            method = c.get if url.endswith("stats") else c.post
            kw: dict[str, Any] = {} if url.endswith("stats") else {"json": body}
            assert method(url, headers={"Authorization": "Bearer bad"}, **kw).status_code == 401
        assert c.post("/v1/predict/secret", json=body, headers=GOOD).status_code == 403
        assert c.post("/v1/predict/secret@champion", json=body, headers=GOOD).status_code == 403
        assert c.post("/v1/predict/secret/1", json=body, headers=GOOD).status_code == 403
        assert c.post("/v1/predict/fraud", json=body, headers=GOOD).status_code == 200
    assert ("read", "nobody") in authorize.calls and ("read", "secret") in authorize.calls


def test_stats_report_p50_and_p99_per_version(registry: ModelRegistry) -> None:
    app, _ = app_with(registry)
    with TestClient(app) as c:
        for ref, n in (("fraud/1", 30), ("fraud/2", 20)):
            for i in range(n):
                r = c.post(f"/v1/predict/{ref}", json={"instances": instances(1 + i % 3, seed=i)},
                           headers=GOOD)
                assert r.status_code == 200
        stats = c.get("/v1/predict/fraud/stats", headers=GOOD).json()
        empty = c.get("/v1/predict/plain/stats", headers=GOOD).json()
    assert stats["model"] == "fraud" and set(stats["versions"]) == {"1", "2"}
    v1, v2 = stats["versions"]["1"], stats["versions"]["2"]
    assert (v1["batches"], v2["batches"]) == (30, 20)
    assert v1["events"] == sum(1 + i % 3 for i in range(30))
    for v in (v1, v2):
        assert 0 < v["p50_ms"] <= v["p99_ms"] < 1000
    print(f"\nsync predict latency fraud/1: p50 {v1['p50_ms']:.2f} ms, p99 {v1['p99_ms']:.2f} ms")
    assert empty == {"model": "plain", "versions": {}}


def test_a_real_key_reads_the_models_name_whatever_the_reference(registry: ModelRegistry,
                                                                  tmp_path: Path) -> None:
    """Mounted by create_app with keys: the app's policy table and the handlers' checks."""
    keys = KeyStore(tmp_path / "keys.sqlite")
    app = create_app(keys=keys, log=open_log(f"memory://k{uuid.uuid4().hex[:8]}"), models=registry,
                     predict_worker=True)
    good = {"authorization": f"Bearer {keys.create('g', ['read:fraud'])[0]}"}
    near = {"authorization": f"Bearer {keys.create('w', ['read:secret', 'read:FRAUD', 'produce:fraud'])[0]}"}
    body = {"features": {"amount": 1.0, "count": 2}}
    calls = [("POST", "/v1/predict/fraud"), ("POST", "/v1/predict/fraud@champion"),
             ("POST", "/v1/predict/fraud/2"), ("POST", "/v1/predict/fraud%2F2"),
             ("POST", "/v1/predict/fraud/async"), ("GET", "/v1/predict/fraud/stats"),
             ("GET", "/v1/results/req-1")]
    with TestClient(app) as c:
        r = c.post("/v1/predict/fraud/async", json=body, headers={**good, "Idempotency-Key": "req-1"})
        assert r.status_code == 202
        assert wait_for(c, ["req-1"], headers=good)
        for method, url in calls:
            kw: dict[str, Any] = {"json": body} if method == "POST" else {}
            assert 200 <= c.request(method, url, headers=good, **kw).status_code < 300, url
            assert c.request(method, url, headers=near, **kw).status_code == 403, url
            assert c.request(method, url, **kw).status_code == 401, url
        for url in ("/v1/predict/secret", "/v1/predict/FRAUD", "/v1/predict/secret@champion",
                    "/v1/predict/secret/1", "/v1/predict/fraud%2F..%2Fsecret"):
            assert c.post(url, json=body, headers=good).status_code in (403, 422), url
        assert c.get("/v1/results/stream", headers=good).status_code == 403  # needs read:*
        everything = {"authorization": f"Bearer {keys.create('s', ['read:*'])[0]}"}
        r = c.get("/v1/results/stream?until_s=0.1", headers=everything)  # ends: TestClient can read it
        assert r.status_code == 200 and r.text == ": eventml results\n\n"
    assert len(calls) == 7


# -- pure parts ------------------------------------------------------------------------------


def test_the_result_store_is_bounded_and_forgets_after_its_ttl() -> None:
    store = ResultStore(max_entries=3, ttl_s=10)
    store.expect("a", Pending("fraud", 0.0, "http://x/"))
    assert store.get("a", 1.0) == (None, Pending("fraud", 0.0, "http://x/"))
    assert store.put("a", {"n": 1}, 2.0) == Pending("fraud", 0.0, "http://x/")
    assert store.put("a", {"n": 1}, 2.5) is None  # a repeat is handed over once
    for i, rid in enumerate("bcd"):
        store.put(rid, {"n": i}, 3.0 + i)
    assert store.get("a", 6.0) == (None, None)  # evicted: 3 at most
    assert store.get("d", 6.0) == ({"n": 2}, None)
    assert store.get("b", 13.5) == (None, None)  # arrived at 3.0: older than 10 s
    assert store.get("d", 13.5) == ({"n": 2}, None)
    assert len(store) == 2  # c (4.0) and d (5.0)
    assert store.get("c", 14.5) == (None, None) and len(store) == 1


def test_callback_urls_and_addresses() -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/x", "gopher://example.com", "http://",
                "http://user:pw@example.com/", "https://example.com:99999/", "javascript:alert(1)",
                "http://exa mple.com/", 12, "http://" + "a" * 3000):
        with pytest.raises(BadInput):
            parse_callback(url)
    cb = parse_callback("HTTPS://Example.com/hook?x=1")
    assert (cb.scheme, cb.host, cb.port, cb.target) == ("https", "example.com", 443, "/hook?x=1")
    refused = ["127.0.0.1", "::1", "10.0.0.8", "192.168.1.1", "169.254.169.254", "100.64.0.1",
               "0.0.0.0", "::ffff:127.0.0.1", "fe80::1", "224.0.0.1", "fd00::1"]
    assert all(address_refusal(a, allow_loopback=False, allow_private=False) for a in refused)
    assert address_refusal("93.184.215.14", allow_loopback=False, allow_private=False) is None
    assert address_refusal("127.0.0.1", allow_loopback=True, allow_private=False) is None
    assert address_refusal("10.0.0.8", allow_loopback=True, allow_private=False) is not None
    assert address_refusal("0.0.0.0", allow_loopback=True, allow_private=True) is not None


# -- webhooks against a local HTTP server ------------------------------------------------------


class Hook:
    """A local webhook receiver: answers each POST with the next status of ``script``."""

    def __init__(self, script: list[int]) -> None:
        self.script = list(script)
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                hook.received.append((self.path, dict(self.headers), body))
                status = hook.script.pop(0) if hook.script else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/hook?k=1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook([])
    yield h
    h.close()


LOOPBACK = AsyncConfig(allow_loopback=True, callback_backoff_s=0.01, callback_timeout_s=2)


def test_delivery_retries_5xx_never_follows_redirects_and_refuses_loopback(hook: Hook) -> None:
    body = b'{"specversion": "1.0"}'
    hook.script = [503, 429, 200]
    assert deliver(parse_callback(hook.url()), body, LOOPBACK, sleep=lambda s: None) == "delivered"
    assert [p for p, _, _ in hook.received] == ["/hook?k=1"] * 3
    hook.received.clear()
    hook.script = [302]
    outcome = deliver(parse_callback(hook.url()), body, LOOPBACK, sleep=lambda s: None)
    assert "302" in outcome and "redirects are not followed" in outcome
    assert [p for p, _, _ in hook.received] == ["/hook?k=1"]  # nothing went to /elsewhere
    hook.received.clear()
    hook.script = [404]
    assert "404" in deliver(parse_callback(hook.url()), body, LOOPBACK, sleep=lambda s: None)
    assert len(hook.received) == 1  # a 4xx is not retried
    hook.received.clear()
    hook.script = [500, 500, 500, 500]
    assert "500" in deliver(parse_callback(hook.url()), body, LOOPBACK, sleep=lambda s: None)
    assert len(hook.received) == 3  # attempts
    hook.received.clear()
    closed = AsyncConfig()  # loopback not allowed: "localhost" resolves to it and is refused
    outcome = deliver(parse_callback(hook.url("localhost")), body, closed, sleep=lambda s: None)
    assert outcome.startswith("refused localhost") and "loopback" in outcome
    assert hook.received == []


# -- the async path ----------------------------------------------------------------------------


@pytest.fixture(params=["memory", "embedded"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Log]:
    url = f"memory://p{uuid.uuid4().hex[:8]}" if request.param == "memory" else f"embedded://{tmp_path}/data"
    opened = open_log(url)
    yield opened
    opened.close()


def wait_for(c: TestClient, ids: list[str], timeout_s: float = 60,
             headers: dict[str, str] = GOOD) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while len(done) < len(ids) and time.monotonic() < deadline:
        for rid in ids:
            if rid not in done:
                r = c.get(f"/v1/results/{rid}", headers=headers)
                if r.status_code == 200:
                    done[rid] = r.json()
                else:
                    assert r.status_code == 202 and r.json() == {"request_id": rid, "status": "pending"}
        time.sleep(0.02)
    return done


def test_async_requests_travel_the_log_and_each_is_answered_once(registry: ModelRegistry, log: Log,
                                                                  hook: Hook) -> None:
    n = 200
    rows = instances(n, seed=7)
    app, authorize = app_with(registry, log=log, run_worker=True, config=LOOPBACK)
    with TestClient(app) as c:
        sync = c.post("/v1/predict/fraud/1", json={"instances": rows}, headers=GOOD).json()["scores"]
        ids = []
        for row in rows:
            r = c.post("/v1/predict/fraud@champion/async", json={"features": row}, headers=GOOD)
            assert r.status_code == 202, r.text
            body = r.json()
            assert body["status_url"] == f"/v1/results/{body['request_id']}" == r.headers["location"]
            ids.append(body["request_id"])
        with_hook = c.post("/v1/predict/fraud/1/async", headers=GOOD,
                           json={"instances": rows[:2], "callback": hook.url()}).json()["request_id"]
        failing = c.post("/v1/predict/broken/async", json={"features": {"amount": 1}},
                         headers=GOOD).json()["request_id"]
        results = wait_for(c, [*ids, with_hook, failing])
        assert len(results) == n + 2
        for rid, row_score in zip(ids, sync, strict=True):
            res = results[rid]
            assert (res["request_id"], res["status"], res["model"], res["version"]) == (rid, "done", "fraud", 1)
            assert res["scores"] == [row_score]  # exactly the synchronous score
            assert res["decisions"] == [row_score >= 0.5]
        assert results[with_hook]["scores"] == sync[:2]
        assert results[failing]["status"] == "failed" and "failed" in results[failing]["error"]
        assert "secret internals" not in str(results[failing])
        assert c.get(f"/v1/results/{uuid.uuid4()}", headers=GOOD).status_code == 404
        assert c.get(f"/v1/results/{ids[0]}", headers={"Authorization": "Bearer bad"}).status_code == 401
        deadline = time.monotonic() + 10
        while not hook.received and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = c.get("/v1/predict/fraud/stats", headers=GOOD).json()["async_round_trip"]
    # each request once on the requests topic, each result once on the results topic
    requests = [from_record(r) for r in read_all(log, "_predict.requests")]
    answers = [from_record(r) for r in read_all(log, "_predict.results")]
    assert sorted(e.id for e in requests) == sorted([*ids, with_hook, failing])
    assert sorted(e.id for e in answers) == sorted([*ids, with_hook, failing])  # no duplicate, none lost
    first = next(e for e in requests if e.id == ids[0])
    assert first.type == REQUEST_TYPE and first.data == {"request_id": ids[0], "model": "fraud@champion",
                                                         "instances": [rows[0]]}
    # the webhook: one structured CloudEvent
    assert len(hook.received) == 1
    path, headers, raw = hook.received[0]
    event = orjson.loads(raw)
    assert path == "/hook?k=1" and headers["Content-Type"] == "application/cloudevents+json"
    assert (event["specversion"], event["type"], event["id"]) == ("1.0", RESULT_TYPE, with_hook)
    assert event["data"]["scores"] == sync[:2]
    assert stats["requests"] == n + 2 and stats["p50_ms"] <= stats["p99_ms"]
    print(f"\nasync round trip ({log.__class__.__name__}, {n} requests, one at a time): "
          f"p50 {stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms")
    assert ("read", "broken") in authorize.calls


def test_without_a_worker_a_request_stays_pending_on_the_requests_topic(registry: ModelRegistry) -> None:
    log = open_log("memory://")
    app, _ = app_with(registry, log=log, run_worker=False, config=AsyncConfig(partitions=3))
    with TestClient(app) as c:
        r = c.post("/v1/predict/fraud/async", json={"features": {"amount": 5, "count": 1}}, headers=GOOD)
        rid = r.json()["request_id"]
        assert c.get(f"/v1/results/{rid}", headers=GOOD).status_code == 202
        keyed = {**GOOD, "Idempotency-Key": "req-1"}
        for _ in range(2):  # a retry with the same key is not queued again
            r = c.post("/v1/predict/fraud/async", json={"features": {"amount": 5, "count": 1}}, headers=keyed)
            assert r.status_code == 202 and r.json()["status_url"] == "/v1/results/req-1"
        assert c.get("/v1/results/req-1", headers=GOOD).status_code == 202
        bad_key = {**GOOD, "Idempotency-Key": "a b/c"}
        assert c.post("/v1/predict/fraud/async", json={"features": {"amount": 5, "count": 1}},
                      headers=bad_key).status_code == 422
        paths = set(c.get("/openapi.json").json()["paths"])
        bad = [({"features": {"amount": 5}}, 422), ({"features": {"amount": 5, "count": 1},
                                                      "callback": "file:///etc/passwd"}, 422),
               ({"features": {"amount": 5, "count": 1}, "callback": "http://169.254.169.254/x"}, 422),
               ({"features": {"amount": 5, "count": 1}, "callback": "http://127.0.0.1/x"}, 422)]
        for body, status in bad:
            r = c.post("/v1/predict/fraud/async", json=body, headers=GOOD)
            assert r.status_code == status and "\n" not in r.json()["message"], r.text
        assert c.post("/v1/predict/nobody/async", json=body, headers=GOOD).status_code == 404
    assert sorted(log.end_offsets("_predict.requests")) == [0, 1, 2]
    assert sum(log.end_offsets("_predict.requests").values()) == 2  # refused requests left nothing
    assert paths == {"/v1/predict/{model}", "/v1/predict/{model}/async", "/v1/predict/{model}/stats",
                     "/v1/results/{request_id}", "/v1/results/stream"}
    assert sum(log.end_offsets("_predict.results").values()) == 0


def test_results_stream_as_server_sent_events(registry: ModelRegistry) -> None:
    log = open_log("memory://")
    app, _ = app_with(registry, log=log, run_worker=True)
    with serve_app(app) as base, httpx2.Client(base_url=base, timeout=10) as c, \
            c.stream("GET", "/v1/results/stream?model=fraud", headers=GOOD) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == ": eventml results"
        posted = []
        for i in range(3):
            other = httpx2.post(f"{base}/v1/predict/plain/async", headers=GOOD,  # not streamed
                                json={"features": {"amount": 1, "count": i}})
            assert other.status_code == 202
            r = httpx2.post(f"{base}/v1/predict/fraud/1/async", headers=GOOD,
                            json={"features": {"amount": 100.0, "count": i}})
            posted.append(r.json()["request_id"])
        events: list[dict[str, Any]] = []
        block: dict[str, str] = {}
        for line in lines:
            if not line:
                if block.get("event") == "result":
                    events.append({"id": block["id"], **orjson.loads(block["data"])})
                block = {}
                if len(events) == 3:
                    break
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                block[name] = value
    assert [e["id"] for e in events] == posted == [e["request_id"] for e in events]
    assert [e["scores"][0] for e in events] == pytest.approx([0.1 + 0.1 * i for i in range(3)])

