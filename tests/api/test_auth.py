"""API keys on every route: the security matrix.

Each route is called with no key, a malformed header, a revoked key, an expired key, a
key of the wrong scope, a valid key in the query string, and a valid key of the right
scope: only the last gets through. The table must name every route the app serves, so a
new route without a policy fails here (it would need an admin key meanwhile).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from eventml.api import create_app, online_stores, sqlite_view
from eventml.api.auth import PUBLIC_PATHS, ROUTE_POLICY, SCHEMAS_PREFIX, RateLimit
from eventml.deadletter import dead_letter_message
from eventml.features import materialized
from eventml.log import TopicSpec
from eventml.ml import ModelRegistry
from eventml.schema.api import CONTENT_TYPE
from eventml.schema.registry import SchemaRegistry
from eventml.security import KeyStore

from .conftest import Served
from .sample import cards
from .test_ingest import read_all
from .test_models_api import SCORE

SCHEMA = orjson.dumps({"type": "record", "name": "U", "fields": [{"name": "a", "type": "int"}]}).decode()
BODY = orjson.dumps({"schema": SCHEMA})
COMPAT = orjson.dumps({"compatibility": "BACKWARD"})
MODE = orjson.dumps({"mode": "READWRITE"})
ANY = "any"  # any valid key


@dataclass(frozen=True)
class Call:
    method: str
    template: str
    url: str
    scope: str  # the scope that grants it; ANY: every key; "admin"
    body: bytes | None = None


EVENTS = orjson.dumps([{"order": 1, "amount": 9.5}, {"order": 2, "amount": 3.0}])
TOPICS = ("orders", "orders-internal", "ORDERS")
REPLAY = orjson.dumps({"ids": ["0:0"]})
ALIAS = orjson.dumps({"version": 1, "reason": "matrix"})
FEATURES = orjson.dumps({"features": {"amount": 5.0}})

CALLS = [
    Call("POST", "/v1/topics/{topic}/events", "/v1/topics/orders/events", "produce:orders", EVENTS),
    Call("GET", "/metrics", "/metrics", "read:*"),
    Call("GET", "/v1/features", "/v1/features", "read:*"),
    Call("GET", "/v1/features/{view}", "/v1/features/card_activity?keys=c1", "read:card_activity"),
    Call("GET", "/v1/views", "/v1/views", "read:*"),
    Call("GET", "/v1/views/{view}", "/v1/views/cards", "read:cards"),
    Call("GET", "/v1/views/{view}/rows/{key}", "/v1/views/cards/rows/c1", "read:cards"),
    Call("GET", "/v1/views/{view}/status", "/v1/views/cards/status", "read:cards"),
    Call("GET", "/v1/topics", "/v1/topics", "read:*"),
    Call("GET", "/v1/topics/{topic}", "/v1/topics/tx", "read:tx"),
    Call("GET", "/v1/topics/{topic}/lag", "/v1/topics/tx/lag?group=apitest", "read:tx"),
    Call("GET", "/v1/topics/{topic}/dlq", "/v1/topics/tx/dlq?limit=2", "dlq:tx"),
    Call("POST", "/v1/topics/{topic}/dlq/replay", "/v1/topics/tx/dlq/replay", "admin", REPLAY),
    Call("GET", "/v1/models", "/v1/models", "read:*"),
    Call("GET", "/v1/models/{name}", "/v1/models/fraud", "read:fraud"),
    Call("GET", "/v1/models/{name}/versions/{version}", "/v1/models/fraud/versions/1", "read:fraud"),
    Call("PUT", "/v1/models/{name}/aliases/{alias}", "/v1/models/fraud/aliases/champion", "admin",
         ALIAS),
    Call("POST", "/v1/predict/{model}", "/v1/predict/fraud", "read:fraud", FEATURES),
    Call("POST", "/v1/predict/{model}/async", "/v1/predict/fraud/1/async", "read:fraud", FEATURES),
    Call("GET", "/v1/predict/{model}/stats", "/v1/predict/fraud/stats", "read:fraud"),
    Call("GET", "/v1/results/{request_id}", "/v1/results/req-1", "read:fraud"),
    Call("GET", "/v1/results/stream", "/v1/results/stream?until_s=0.05", "read:*"),
    Call("GET", "/v1/dashboard/snapshot", "/v1/dashboard/snapshot", "read:*"),
    Call("GET", "/v1/dashboard/stream", "/v1/dashboard/stream?max_events=1", "read:*"),
    Call("GET", "/", "/", ANY),
    Call("GET", "/subjects", "/subjects", "read:*"),
    Call("POST", "/subjects/{subject}", "/subjects/s", "read:s", BODY),
    Call("GET", "/subjects/{subject}/versions", "/subjects/s/versions", "read:s"),
    Call("POST", "/subjects/{subject}/versions", "/subjects/s/versions", "schema-write:s", BODY),
    Call("GET", "/subjects/{subject}/versions/{version}", "/subjects/s/versions/1", "read:s"),
    Call("GET", "/subjects/{subject}/versions/{version}/schema", "/subjects/s/versions/1/schema", "read:s"),
    Call("GET", "/subjects/{subject}/versions/{version}/referencedby",
         "/subjects/s/versions/1/referencedby", "read:s"),
    Call("GET", "/schemas/types", "/schemas/types", ANY),
    Call("GET", "/schemas/ids/{sid}", "/schemas/ids/1", ANY),
    Call("GET", "/schemas/ids/{sid}/schema", "/schemas/ids/1/schema", ANY),
    Call("GET", "/schemas/ids/{sid}/versions", "/schemas/ids/1/versions", ANY),
    Call("GET", "/schemas/ids/{sid}/subjects", "/schemas/ids/1/subjects", ANY),
    Call("POST", "/compatibility/subjects/{subject}/versions/{version}",
         "/compatibility/subjects/s/versions/1", "read:s", BODY),
    Call("POST", "/compatibility/subjects/{subject}/versions", "/compatibility/subjects/s/versions",
         "read:s", BODY),
    Call("GET", "/config", "/config", ANY),
    Call("PUT", "/config", "/config", "admin", COMPAT),
    Call("GET", "/config/{subject}", "/config/s?defaultToGlobal=true", "read:s"),
    Call("PUT", "/config/{subject}", "/config/s", "admin", COMPAT),
    Call("DELETE", "/config/{subject}", "/config/t", "admin"),
    Call("GET", "/mode", "/mode", ANY),
    Call("PUT", "/mode", "/mode", "admin", MODE),
    Call("GET", "/mode/{subject}", "/mode/s?defaultToGlobal=true", "read:s"),
    Call("PUT", "/mode/{subject}", "/mode/s", "admin", MODE),
    Call("DELETE", "/mode/{subject}", "/mode/t", "admin"),
    Call("DELETE", "/subjects/{subject}/versions/{version}", "/subjects/t/versions/1", "admin"),
    Call("DELETE", "/subjects/{subject}", "/subjects/u", "admin"),
    # the registry under /v1/schemas as well: a few representative rows (the table check
    # below covers the rest through their root twins, whose policies must be the same)
    Call("GET", "/v1/schemas/", "/v1/schemas/", ANY),
    Call("GET", "/v1/schemas/subjects/{subject}/versions", "/v1/schemas/subjects/s/versions", "read:s"),
    Call("POST", "/v1/schemas/subjects/{subject}/versions", "/v1/schemas/subjects/s/versions",
         "schema-write:s", BODY),
    Call("GET", "/v1/schemas/schemas/ids/{sid}", "/v1/schemas/schemas/ids/1", ANY),
    Call("PUT", "/v1/schemas/config", "/v1/schemas/config", "admin", COMPAT),
    Call("DELETE", "/v1/schemas/subjects/{subject}", "/v1/schemas/subjects/u", "admin"),
]
# a key that holds everything near the right scope but not it
WRONG = ["produce:orders-internal", "produce:ORDERS", "read:orders", "dlq:orders", "read:s-internal", "read:S", "read:cards-internal", "read:card_activity2", "produce:s",
         "produce:cards", "schema-write:other", "read:tx-internal", "read:TX", "read:tx.dlq",
         "dlq:tx-internal", "produce:tx", "schema-write:tx", "read:fraud-internal", "read:FRAUD",
         "dlq:fraud", "produce:fraud"]


@dataclass
class Keys:
    store: KeyStore
    admin: str
    revoked: str
    expired: str
    wrong: str

    def valid(self, scope: str) -> str:
        return self.store.create("valid", ["read:unrelated" if scope == ANY else scope])[0]


@pytest.fixture
def keys(tmp_path: Any) -> Keys:
    store = KeyStore(tmp_path / "keys.sqlite")
    revoked, record = store.create("revoked", ["admin"])
    store.revoke(record.key_id)
    expired, _ = store.create("expired", ["admin"], expires_in_s=1, now_ms=1_000)
    return Keys(store, store.create("admin", ["admin"])[0], revoked, expired,
                store.create("wrong", WRONG)[0])


@pytest.fixture
def client(served: Served, keys: Keys, tmp_path: Path) -> Iterator[TestClient]:
    models = ModelRegistry(tmp_path / "models")
    models.register("fraud", SCORE, flavor="callable", features=["amount"])
    app = create_app(registry=SchemaRegistry(served.log),
                     features=online_stores(served.log, materialized(served.app)),
                     views=[sqlite_view(cards, served.db, served.log)], keys=keys.store,
                     log=served.log, models=models)
    for topic in TOPICS:
        served.log.create_topic(TopicSpec(topic, 2))
    served.log.append("tx.dlq", [dead_letter_message(  # the worker created tx.dlq
        b'{"card": "c1"}', key=b"c1", error=ValueError("bad"), now_ms=1,
        source={"topic": "tx", "partition": 0, "offset": 0})])
    with TestClient(app) as c:
        for subject in ("s", "t", "u"):
            r = c.post(f"/subjects/{subject}/versions", content=BODY, headers=_h(keys.admin))
            assert r.status_code == 200, r.text
        for setting, body in (("config", COMPAT), ("mode", MODE)):  # so their DELETEs find one
            assert c.put(f"/{setting}/t", content=body, headers=_h(keys.admin)).status_code == 200
        r = c.post("/v1/predict/fraud/async", content=FEATURES,  # so GET /v1/results/req-1 finds it
                   headers={**_h(keys.admin), "content-type": "application/json", "idempotency-key": "req-1"})
        assert r.status_code == 202, r.text
        yield c


def _h(token: str | None = None, raw: str | None = None, content_type: str = CONTENT_TYPE) -> dict[str, str]:
    headers = {"content-type": content_type}
    if raw is not None:
        headers["authorization"] = raw
    elif token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


def _call(client: TestClient, call: Call, headers: dict[str, str], url: str | None = None) -> Any:
    if call.template.startswith("/v1/") and not call.template.startswith(SCHEMAS_PREFIX):
        headers = {**headers, "content-type": "application/json"}
    return client.request(call.method, url or call.url, content=call.body, headers=headers)


def _served_routes(client: TestClient) -> set[tuple[str, str]]:
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return {(m.upper(), p) for p, ops in paths.items() for m in ops if p not in PUBLIC_PATHS}


def _root_twin(route: tuple[str, str]) -> tuple[str, str]:
    method, path = route
    return method, path[len(SCHEMAS_PREFIX):] if path.startswith(SCHEMAS_PREFIX) else path


def _table_problems(served: set[tuple[str, str]], policy: dict[tuple[str, str], Any]) -> list[str]:
    """What the table misses: a served route without a row (a route under /v1/schemas is
    covered by its root twin's row if their policies are the same), a row for no route."""
    named = {(c.method, c.template) for c in CALLS}
    problems = [f"no row for {r}" for r in sorted(served - named)
                if not r[1].startswith(SCHEMAS_PREFIX) or _root_twin(r) not in named]
    problems += [f"a row for {r}, which is not served" for r in sorted(named - served)]
    problems += [f"{r}: not the policy of {_root_twin(r)}" for r in sorted(served)
                 if r[1].startswith(SCHEMAS_PREFIX) and policy.get(r) != policy.get(_root_twin(r))]
    return problems


def test_the_table_names_every_route(client: TestClient) -> None:
    served = _served_routes(client)
    assert _table_problems(served, ROUTE_POLICY) == []
    # every registry route is under /v1/schemas as well
    prefixed = {_root_twin(r) for r in served if r[1].startswith(SCHEMAS_PREFIX)}
    assert prefixed == {r for r in served if not r[1].startswith("/v1") and r[1] != "/metrics"}


def test_the_table_check_catches_a_missing_row_and_a_prefixed_policy_that_differs(
        client: TestClient) -> None:
    served = _served_routes(client)
    assert _table_problems(served | {("GET", "/v1/topics/{topic}/secret")}, ROUTE_POLICY) == [
        "no row for ('GET', '/v1/topics/{topic}/secret')"]
    loose = {**ROUTE_POLICY, ("DELETE", "/v1/schemas/subjects/{subject}"): ("read", "subject")}
    assert _table_problems(served, loose) == [
        "('DELETE', '/v1/schemas/subjects/{subject}'): not the policy of "
        "('DELETE', '/subjects/{subject}')"]


def test_the_registry_under_v1_schemas_matches_percent_encoded_subjects(served: Served) -> None:
    with TestClient(create_app(registry=SchemaRegistry(served.log))) as c:  # open: any subject
        r = c.post("/v1/schemas/subjects/a%2Fb/versions", content=BODY, headers=_h())
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == CONTENT_TYPE and r.json()["subject"] == "a/b"
        for prefix in ("", SCHEMAS_PREFIX):
            assert c.get(f"{prefix}/subjects/a%2Fb/versions").json() == [1]
            assert c.get(f"{prefix}/subjects/a%2fb/versions/1").json()["subject"] == "a/b"
            assert c.get(f"{prefix}/subjects").json() == ["a/b"]
            r = c.get(f"{prefix}/subjects/a/versions")  # not the same subject
            assert r.status_code == 404 and r.json()["error_code"] == 40401
            assert r.headers["content-type"] == CONTENT_TYPE
        r = c.get("/v1/schemas/nothing-here")  # the registry's error shape under its prefix
        assert r.status_code == 404 and r.headers["content-type"] == CONTENT_TYPE


@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c.method} {c.template}")
def test_only_a_valid_key_of_the_right_scope_gets_through(client: TestClient, keys: Keys, call: Call) -> None:
    valid = keys.admin if call.scope == "admin" else keys.valid(call.scope)
    sep = "&" if "?" in call.url else "?"
    refused = {
        "no key": _call(client, call, _h()),
        "malformed": _call(client, call, _h(raw="Basic dXNlcjpwYXNz")),
        "not a key": _call(client, call, _h(raw="Bearer eml_nothing")),
        "revoked": _call(client, call, _h(keys.revoked)),
        "expired": _call(client, call, _h(keys.expired)),
        "key in query string": _call(client, call, _h(), f"{call.url}{sep}api_key={valid}"),
        "valid key also in query string": _call(client, call, _h(valid), f"{call.url}{sep}token={valid}"),
    }
    if call.scope != ANY:
        refused["wrong scope"] = _call(client, call, _h(keys.wrong))
    if call.scope == "admin":
        everything_else = keys.store.create("all but admin", ["read:*", "produce:*", "dlq:*",
                                                              "schema-write:*"])[0]
        refused["not admin"] = _call(client, call, _h(everything_else))
    for case, r in refused.items():
        expected = 403 if case in ("wrong scope", "not admin") else 401
        assert r.status_code == expected, (case, r.status_code, r.text)
        body = r.json()
        assert set(body) == {"error_code", "message"} and body["error_code"] // 100 == expected
        assert "Traceback" not in r.text and valid not in r.text and keys.revoked not in r.text
        if expected == 401:
            assert r.headers["www-authenticate"].startswith("Bearer")
    r = _call(client, call, _h(valid))
    assert 200 <= r.status_code < 300, (r.status_code, r.text)
    # ApiKey is the other accepted scheme
    assert 200 <= _call(client, call, _h(raw=f"ApiKey {valid}")).status_code < 300 or call.method == "DELETE"


def test_a_refused_write_changes_nothing(client: TestClient, keys: Keys) -> None:
    other = orjson.dumps({"schema": SCHEMA.replace('"U"', '"V"')})
    for headers in (_h(), _h(keys.wrong), _h(keys.revoked), _h(keys.valid("schema-write:s-internal"))):
        r = client.post("/subjects/s/versions", content=other, headers=headers)
        assert r.status_code in (401, 403)
    assert client.get("/subjects/s/versions", headers=_h(keys.admin)).json() == [1]
    for headers in (_h(keys.wrong), _h(keys.valid("schema-write:*"))):
        assert client.put("/config", content=orjson.dumps({"compatibility": "NONE"}),
                          headers=headers).status_code == 403
    assert client.get("/config", headers=_h(keys.admin)).json()["compatibilityLevel"] == "BACKWARD"


def test_refused_replays_and_alias_changes_change_nothing(
        client: TestClient, keys: Keys, served: Served) -> None:
    not_admin = keys.store.create("all but admin", ["read:*", "produce:*", "dlq:*", "schema-write:*"])[0]
    before = served.log.end_offsets("tx")
    for token in (None, keys.revoked, keys.expired, keys.wrong, not_admin, keys.valid("dlq:tx")):
        headers = _h(token, content_type="application/json")
        assert client.post("/v1/topics/tx/dlq/replay", content=REPLAY,
                           headers=headers).status_code in (401, 403)
        assert client.put("/v1/models/fraud/aliases/champion", content=ALIAS,
                          headers=headers).status_code in (401, 403)
    assert served.log.end_offsets("tx") == before
    assert "_models" not in served.log.list_topics()  # no alias change was announced
    assert client.get("/v1/models/fraud", headers=_h(keys.admin)).json()["aliases"] == {}
    admin = _h(keys.admin, content_type="application/json")
    assert client.post("/v1/topics/tx/dlq/replay", content=REPLAY, headers=admin).json()["total"] == 1
    assert sum(served.log.end_offsets("tx").values()) == sum(before.values()) + 1
    assert client.put("/v1/models/fraud/aliases/champion", content=ALIAS, headers=admin).status_code == 200
    assert "_models" in served.log.list_topics()


@pytest.mark.parametrize("prefix", ["", SCHEMAS_PREFIX])
def test_names_are_checked_after_decoding_case_sensitively(
        client: TestClient, keys: Keys, prefix: str) -> None:
    key = keys.valid("read:s")
    assert client.get(f"{prefix}/subjects/s/versions", headers=_h(key)).status_code == 200
    for subject in ("S", "s-internal", "s%2F..", "s%2f..%2fu", "%73", "s%00", "s.."):
        r = client.get(f"{prefix}/subjects/{subject}/versions", headers=_h(key))
        if subject == "%73":  # percent-encoded "s" is "s" once decoded: the same resource
            assert r.status_code == 200
        else:
            assert r.status_code in (403, 404) and r.status_code != 200, subject


def test_a_key_for_tx_reads_tx_and_no_other_topic_or_model(client: TestClient, keys: Keys) -> None:
    key = _h(keys.valid("read:tx"), content_type="application/json")
    assert client.get("/v1/topics/tx", headers=key).status_code == 200
    for url in ("/v1/topics/TX", "/v1/topics/tx-internal", "/v1/topics/tx.dlq", "/v1/topics/%74x.dlq",
                "/v1/topics/tx%2F..%2Ftx.dlq", "/v1/topics/tx/dlq", "/v1/topics", "/v1/models",
                "/v1/models/fraud", "/v1/topics/tx%00/lag?group=apitest"):
        r = client.get(url, headers=key)
        assert r.status_code in (403, 404), (url, r.status_code, r.text)
    dlq = _h(keys.valid("dlq:tx"), content_type="application/json")
    assert client.get("/v1/topics/tx/dlq", headers=dlq).status_code == 200
    for method, url in (("GET", "/v1/topics/tx"), ("POST", "/v1/topics/tx/dlq/replay"),
                        ("GET", "/v1/topics/tx.dlq/dlq")):
        assert client.request(method, url, content=REPLAY, headers=dlq).status_code == 403, url
    assert client.get("/v1/topics/tx/dlq", headers=dlq).json()["dead_letters"][0]["replayed"] is False


def test_the_docs_stay_public(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_a_key_over_its_rate_gets_429_with_retry_after(served: Served, tmp_path: Any) -> None:
    store = KeyStore(tmp_path / "rl.sqlite")
    token, _ = store.create("slow", ["read:*"])
    other, _ = store.create("other", ["read:*"])
    now = [0.0]
    app = create_app(registry=SchemaRegistry(served.log), keys=store, rate_limit=RateLimit(2, 3))
    app.state.authorizer._buckets.clock = lambda: now[0]
    with TestClient(app) as c:
        codes = [c.get("/subjects", headers=_h(token)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/subjects", headers=_h(token))
        assert r.status_code == 429 and r.headers["retry-after"] == "1" and r.json()["error_code"] == 42901
        assert c.get("/subjects", headers=_h(other)).status_code == 200  # per key
        now[0] += 0.5  # 2 a second: one more token
        assert c.get("/subjects", headers=_h(token)).status_code == 200
        assert c.get("/subjects", headers=_h(token)).status_code == 429


def test_a_key_for_orders_appends_to_orders_and_nothing_else(
        client: TestClient, keys: Keys, served: Served) -> None:
    key = keys.valid("produce:orders")

    def ends() -> dict[str, dict[int, int]]:
        return {t: served.log.end_offsets(t) for t in TOPICS}

    before = ends()
    for url in ("/v1/topics/orders-internal/events", "/v1/topics/ORDERS/events",
                "/v1/topics/orders%2F..%2Forders-internal/events", "/v1/topics/orders%2F../events",
                "/v1/topics/orders%00/events", "/v1/topics/orders./events", "/v1/topics/%6Frders-internal/events"):
        r = client.post(url, content=EVENTS, headers=_h(key, content_type="application/json"))
        assert r.status_code in (403, 404), (url, r.status_code, r.text)
    for token in (None, keys.revoked, keys.expired, keys.wrong):
        r = client.post("/v1/topics/orders/events", content=EVENTS,
                        headers=_h(token, content_type="application/json"))
        assert r.status_code in (401, 403)
    assert ends() == before  # nothing was appended anywhere
    r = client.post("/v1/topics/orders/events", content=EVENTS,
                    headers=_h(key, content_type="application/json"))
    assert r.status_code == 202, r.text
    after = ends()
    assert sum(after["orders"].values()) - sum(before["orders"].values()) == 2
    assert {t: after[t] for t in TOPICS[1:]} == {t: before[t] for t in TOPICS[1:]}
    # the producer recorded on each record is the key's id, whatever the client sent
    records = read_all(served.log, "orders")
    assert {dict(rec.headers)["eventml.ingest.producer"] for rec in records} == {key.split("_")[1].encode()}
