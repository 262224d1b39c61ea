"""GET /metrics: every request counted and timed by route template, never by raw path."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from eventml.api import create_app, online_stores, sqlite_view
from eventml.features import materialized
from eventml.security import KeyStore

from .conftest import Served
from .sample import cards


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_template_and_status(served: Served) -> None:
    app = create_app(features=online_stores(served.log, materialized(served.app)),
                     views=[sqlite_view(cards, served.db, served.log)])
    with TestClient(app) as client:
        for key in ("c1", "c2", "secret-card-9"):
            assert client.get(f"/v1/features/card_activity?keys={key}").status_code == 200
        assert client.get("/v1/views/cards/rows/c1").status_code == 200
        assert client.get("/v1/views/cards/rows/nobody").status_code == 404
        assert client.get("/no/such/path").status_code == 404
        r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    s = _samples(r.text)
    feature = "/v1/features/{view}"
    assert _value(s, "eventml_http_requests_total", method="GET", route=feature, status="200") == 3
    row = "/v1/views/{view}/rows/{key}"
    assert _value(s, "eventml_http_requests_total", method="GET", route=row, status="200") == 1
    assert _value(s, "eventml_http_requests_total", method="GET", route=row, status="404") == 1
    assert _value(s, "eventml_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert _value(s, "eventml_http_request_seconds_count", method="GET", route=feature) == 3
    assert _value(s, "eventml_http_requests_in_flight") == 1  # the /metrics request itself
    assert "secret-card-9" not in r.text and "/no/such/path" not in r.text


def test_metrics_need_a_read_key_and_count_refusals(served: Served, tmp_path: Any) -> None:
    store = KeyStore(tmp_path / "keys.sqlite")
    scraper, _ = store.create("prometheus", ["read:*"])
    narrow, _ = store.create("narrow", ["read:cards"])
    app = create_app(features=online_stores(served.log, materialized(served.app)), keys=store)
    with TestClient(app) as client:
        assert client.get("/v1/features/card_activity?keys=c1").status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {narrow}"}).status_code == 403
        r = client.get("/metrics", headers={"Authorization": f"Bearer {scraper}"})
    assert r.status_code == 200
    s = _samples(r.text)
    assert _value(s, "eventml_http_requests_total", method="GET", route="/v1/features/{view}",
                  status="401") == 1
    assert _value(s, "eventml_http_requests_total", method="GET", route="/metrics", status="403") == 1
    assert scraper not in r.text and narrow not in r.text
