"""GET /v1/features: values over HTTP equal the online store's, lookups never read the log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from eventml.api import create_app, online_stores
from eventml.features import OnlineStore, materialized

from .conftest import Served
from .sample import T0, VIEW, events


def _client(served: Served, **kwargs: Any) -> TestClient:
    return TestClient(create_app(features=online_stores(served.log, materialized(served.app)), **kwargs))


@pytest.fixture
def client(served: Served) -> Iterator[TestClient]:
    with _client(served) as c:
        yield c


def _reference(served: Served) -> OnlineStore:
    (view, topics), = materialized(served.app).values()
    store = OnlineStore(served.log, view, topics.online)
    store.refresh()
    return store


def _error(r: Any, status: int, code: int, *needles: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    for needle in needles:
        assert needle in body["message"], body["message"]
    message: str = body["message"]
    return message


def test_values_over_http_equal_the_online_stores(served: Served, client: TestClient) -> None:
    store = _reference(served)
    keys = [*sorted({orjson.loads(m.value or b"")["card"] for m in events(400)}), "nobody"]
    assert len(keys) > 40
    r = client.get("/v1/features/card_activity", params={"keys": keys})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["view"] == "card_activity" and body["stream_time_ms"] == store.stream_time_ms
    expected = store.get_online_features(keys)
    assert body["rows"] == [{"key": k, **v} for k, v in zip(keys, expected, strict=True)]
    assert body["rows"][-1] == {"key": "nobody", **dict.fromkeys(VIEW.feature_names)}
    assert any(row["tx_1h"] for row in body["rows"])
    # as of another time, some features, comma-separated keys
    at = T0 + 10 * 60_000
    r = client.get(f"/v1/features/card_activity?keys={','.join(keys[:5])}&at_ms={at}"
                   "&features=tx_1h,secs_since_last")
    expected = store.get_online_features(keys[:5], at_ms=at, features=["tx_1h", "secs_since_last"])
    assert r.json()["rows"] == [{"key": k, **v} for k, v in zip(keys[:5], expected, strict=True)]


def test_the_list_of_feature_views(client: TestClient) -> None:
    (entry,) = client.get("/v1/features").json()["features"]
    assert entry["name"] == "card_activity" and entry["entity"] == "card" and entry["source"] == "tx"
    assert entry["features"] == VIEW.feature_names and entry["entities"] > 40
    assert entry["refreshed_s_ago"] is not None


def test_bad_requests(client: TestClient) -> None:
    _error(client.get("/v1/features/nope?keys=a"), 404, 40441, "'nope'", "served: card_activity")
    _error(client.get("/v1/features/card_activity"), 422, 422, "at least one key")
    _error(client.get("/v1/features/card_activity?keys=,"), 422, 422, "at least one key")
    _error(client.get("/v1/features/card_activity", params={"keys": ",".join(["k"] * 1001)}),
           422, 422, "too many keys: 1001", "1000")
    _error(client.get("/v1/features/card_activity?keys=a&features=tx_1h,nope"), 422, 422,
           "nope", "tx_1h, amount_1h, secs_since_last")
    message = _error(client.get("/v1/features/card_activity?keys=a&at_ms=soon"), 422, 422, "at_ms")
    assert "Traceback" not in message
    _error(client.get("/v1/nothing"), 404, 404, "/docs")


def test_lookups_never_read_the_log_the_refresher_does(served: Served) -> None:
    stores = online_stores(served.log, materialized(served.app))
    (store,) = stores.values()
    calls = []
    refresh = store.refresh

    def counted() -> int:
        calls.append(1)
        return refresh()

    store.refresh = counted  # type: ignore[method-assign]
    with TestClient(create_app(features=stores, refresh_interval_s=3600)) as client:
        assert len(calls) == 1  # at start-up
        before = client.get("/v1/features/card_activity?keys=c1").json()
        served.add(50, seed=9, start=T0 + 400_000)
        for _ in range(20):
            assert client.get("/v1/features/card_activity?keys=c1").json() == before
        assert len(calls) == 1
    # with a short interval the new events arrive in the background
    with TestClient(create_app(features=online_stores(served.log, materialized(served.app)),
                               refresh_interval_s=0.05)) as client:
        stream_time = client.get("/v1/features/card_activity?keys=c1").json()["stream_time_ms"]
        served.add(10, seed=10, start=T0 + 500_000)
        import time

        deadline = time.monotonic() + 10
        while client.get("/v1/features/card_activity?keys=c1").json()["stream_time_ms"] == stream_time:
            assert time.monotonic() < deadline, "the refresher never caught up"
            time.sleep(0.02)


def test_the_refresher_reads_only_stores_whose_topic_grew(served: Served) -> None:
    from eventml.api import FeatureRefresher

    refresher = FeatureRefresher(online_stores(served.log, materialized(served.app)))
    assert refresher.changed() == ["card_activity"]  # first look
    assert refresher.refresh() > 0
    assert refresher.changed() == []  # nothing new: no refresh on the loop
    served.add(5, seed=11, start=T0 + 600_000)
    assert refresher.changed() == ["card_activity"]
    assert refresher.refresh(["card_activity"]) > 0 and refresher.changed() == []
