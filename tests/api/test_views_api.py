"""GET /v1/views: rows by key and filter, status, from a table another process writes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from eventml.api import create_app, sqlite_view, stored_view
from eventml.views import ProjectionRunner, ViewStore

from .conftest import Served
from .sample import T0, cards, events
from .test_features_api import _error


@pytest.fixture
def client(served: Served) -> Iterator[TestClient]:
    with TestClient(create_app(views=[sqlite_view(cards, served.db, served.log)])) as c:
        yield c


def test_rows_over_http_equal_the_view_stores(served: Served, client: TestClient) -> None:
    with ViewStore(served.db) as store:
        everything = store.query(limit=1000)
        assert len(everything) > 40
        for key, row in everything:
            r = client.get(f"/v1/views/cards/rows/{key}")
            assert r.status_code == 200, r.text
            assert r.json() == {"view": "cards", "key": key, "row": store.get(key)} == {
                "view": "cards", "key": key, "row": row}
    assert any("/" in key for key, _ in everything)  # keys may hold '/'
    _error(client.get("/v1/views/cards/rows/nobody"), 404, 40452, "'nobody'")
    _error(client.get("/v1/views/nope/rows/c1"), 404, 40451, "'nope'", "served: cards")


def test_filters_on_indexed_fields(served: Served, client: TestClient) -> None:
    with ViewStore(served.db) as store:
        expected = store.query({"merchant": "m2"}, limit=1000)
    r = client.get("/v1/views/cards?merchant=m2&limit=1000")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["filters"] == {"merchant": "m2"} and body["next_offset"] is None
    assert body["rows"] == [{"key": k, "row": row} for k, row in expected] and expected
    # pages
    first = client.get("/v1/views/cards?merchant=m2&limit=3").json()
    assert first["next_offset"] == 3 and first["rows"] == body["rows"][:3]
    second = client.get("/v1/views/cards?merchant=m2&limit=3&offset=3").json()
    assert second["rows"] == body["rows"][3:6]
    assert client.get("/v1/views/cards?merchant=m9").json()["rows"] == []
    with ViewStore(served.db) as store:
        assert len(client.get("/v1/views/cards").json()["rows"]) == store.count()  # no filter: all
    _error(client.get("/v1/views/cards?n=3"), 422, 422, "'n'", "indexed fields: merchant")
    _error(client.get("/v1/views/cards?merchant=m1&merchant=m2"), 422, 422, "twice")
    _error(client.get("/v1/views/cards?limit=1001"), 422, 422, "limit")
    _error(client.get("/v1/views/cards?offset=-1"), 422, 422, "offset")
    _error(client.get("/v1/views/nope?merchant=m1"), 404, 40451)


def test_the_list_and_the_status(served: Served, client: TestClient) -> None:
    with ViewStore(served.db) as store:
        rows = store.count()
    (entry,) = client.get("/v1/views").json()["views"]
    assert entry == {"name": "cards", "topics": ["tx"], "indexed": ["merchant"],
                     "description": "Per card: transactions, total and the last merchant.",
                     "rows": rows}
    status = client.get("/v1/views/cards/status").json()
    assert status["name"] == "cards" and status["rows"] == rows and status["lag"] == 0
    assert "path" not in status  # the server's file layout stays on the server
    assert sum(p["end_offset"] for p in status["partitions"]) == 400
    # another process's runner keeps writing; appended but not yet applied events are lag
    served.log.append("tx", events(25, seed=3, start=T0 + 400_000))
    assert client.get("/v1/views/cards/status").json()["lag"] == 25
    served.catch_up()
    assert client.get("/v1/views/cards/status").json()["lag"] == 0
    after = client.get("/v1/views/cards/rows/c1").json()["row"]
    with ViewStore(served.db) as store:
        assert after == store.get("c1")
    _error(client.get("/v1/views/nope/status"), 404, 40451)


def test_a_view_without_a_table_yet_answers_503(served: Served, tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "cards.sqlite"
    with TestClient(create_app(views=[sqlite_view(cards, missing, served.log)])) as client:
        assert client.get("/v1/views").json()["views"][0]["rows"] is None
        _error(client.get("/v1/views/cards/rows/c1"), 503, 50301, "eventml views run cards")
        _error(client.get("/v1/views/cards/status"), 503, 50301)
        assert not missing.exists()  # reads never create the table


@pytest.mark.postgres
def test_a_view_kept_in_postgresql_is_served_the_same(served: Served, postgres_dsn: str) -> None:
    """`eventml serve --views-db postgresql://...`: the same routes over a PostgreSQL table."""
    import psycopg

    from eventml.testing.postgres import with_search_path

    schema = f"api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    dsn = with_search_path(postgres_dsn, schema)
    try:
        with TestClient(create_app(views=[stored_view(cards, dsn, served.log)])) as client:
            _error(client.get("/v1/views/cards/rows/c1"), 503, 50301)  # not folded yet
            with ProjectionRunner(served.log, cards, dsn) as runner:
                runner.catch_up()
            with ViewStore(served.db) as sqlite:
                everything = sqlite.query(limit=1000)
            assert everything
            for key, row in everything:
                assert client.get(f"/v1/views/cards/rows/{key}").json()["row"] == row
            body = client.get("/v1/views/cards?merchant=m2&limit=1000").json()
            assert body["rows"] == [{"key": k, "row": r} for k, r in everything if r["merchant"] == "m2"]
            status = client.get("/v1/views/cards/status").json()
            assert status["lag"] == 0 and status["rows"] == len(everything)
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
