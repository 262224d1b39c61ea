"""The view stores' contract, run on SQLite and PostgreSQL, and the projection registry."""

from __future__ import annotations

from typing import Any

import pytest

from eventml.log import TopicPartition
from eventml.views import (
    InvalidProjection,
    Projection,
    RowStore,
    ViewNotFound,
    Views,
    ViewStore,
    as_views,
    open_view_store,
    projection,
)
from tests.views.conftest import ViewDb


def noop(value: Any, meta: Any, table: Any) -> None:
    pass


def test_rows_and_positions_commit_together_and_filters_compare_json(view_db: ViewDb) -> None:
    with view_db.open("v", indexed=("city",)) as store:
        store.commit({"a": {"city": "Oslo", "n": 1, "vip": True, "note": None},
                      "b": {"city": "Rome", "n": 2, "vip": False},
                      "c": {"city": "Oslo", "n": 2.5, "vip": False}},
                     {TopicPartition("t", 0): 10}, now_ms=5)
        store.commit({"c": None}, {TopicPartition("t", 0): 11, TopicPartition("t", 1): 3}, now_ms=6)
        assert store.get("c") is None and store.get("a") == {"city": "Oslo", "n": 1, "vip": True,
                                                            "note": None}
        assert [k for k, _ in store.query({"city": "Oslo"})] == ["a"]
        assert [k for k, _ in store.query({"vip": False})] == ["b"]
        assert [k for k, _ in store.query({"note": None})] == ["a", "b"]  # null or absent
        assert [k for k, _ in store.query({"n": 2})] == ["b"]
        assert [k for k, _ in store.query(limit=1, offset=1)] == ["b"]
        assert store.count() == 2 and store.count({"city": "Rome"}) == 1
        assert {tp: p.next_offset for tp, p in store.positions().items()} == {
            TopicPartition("t", 0): 11, TopicPartition("t", 1): 3}
        assert store.last_update_ms() == 6
        with pytest.raises(ValueError, match="limit"):
            store.query(limit=0)
        with pytest.raises(ValueError, match="only strings"):
            store.query({"city": ["Oslo"]})
        with pytest.raises(InvalidProjection, match="invalid field name"):
            store.query({"x') OR 1=1 --": 1})
        with pytest.raises(TypeError, match="a row must be a dict"):
            store.commit({"d": [1]}, {}, now_ms=7)  # type: ignore[dict-item]
        assert store.count() == 2
        store.reset()
        assert store.count() == 0 and store.positions() == {} and store.last_update_ms() is None


def test_a_reopened_store_has_what_was_committed_and_views_do_not_mix(view_db: ViewDb) -> None:
    keys = ["b", "B", "a", "ä", "a b", "10", "9"]
    with view_db.open("one") as one, view_db.open("two") as two:
        assert isinstance(one, RowStore) and one.count() == 0 and one.last_update_ms() is None
        one.commit({k: {"i": i} for i, k in enumerate(keys)}, {TopicPartition("t", 0): 7},
                   now_ms=1)
        two.commit({"a": {"other": True}}, {TopicPartition("t", 0): 1, TopicPartition("u", 2): 4},
                   now_ms=2)
        one.commit_positions({TopicPartition("t", 1): 3}, now_ms=3)
        two.reset()
    with view_db.open("one") as one, view_db.open("two") as two:
        assert [k for k, _ in one.query(limit=100)] == sorted(keys)  # by code point, both ways
        assert one.get_many(["a", "zzz", "ä"]) == {"a": {"i": 2}, "ä": {"i": 3}}
        assert one.get_encoded("nope") is None and one.get("a b") == {"i": 4}
        assert {tp: p.next_offset for tp, p in one.positions().items()} == {
            TopicPartition("t", 0): 7, TopicPartition("t", 1): 3}
        assert one.last_update_ms() == 3 and one.positions()[TopicPartition("t", 1)].updated_ms == 3
        assert two.count() == 0 and two.positions() == {}
    assert one.location == (str(view_db.target("one")) if view_db.kind == "sqlite"
                            else one.location.split(" ")[0] + " table view_one")


def test_a_view_without_storage_is_not_created_by_readers(view_db: ViewDb) -> None:
    with pytest.raises(ViewNotFound, match="'ghost' has no table"):
        open_view_store(view_db.target("ghost"), "ghost", create=False)
    with view_db.open("ghost"):
        pass
    with open_view_store(view_db.target("ghost"), "ghost", create=False) as store:
        assert store.count() == 0


def test_unknown_store_urls_are_refused(view_db: ViewDb) -> None:
    with pytest.raises(ValueError, match="unsupported view store URL"):
        open_view_store("mysql://x/y", "v")
    assert isinstance(open_view_store(view_db.target("v"), "v"), RowStore)
    if view_db.kind == "sqlite":
        assert isinstance(open_view_store(str(view_db.target("w")), "w"), ViewStore)


@pytest.mark.postgres
def test_postgres_filters_use_the_indexed_fields_expression_index(pg_db: ViewDb) -> None:
    import psycopg

    name = "orders.by-region_" + "x" * 82  # 100 characters: the table name is shortened
    with pg_db.open(name, indexed=("region",)) as store:
        store.commit({f"k{i}": {"region": "eu" if i % 3 else "us", "n": i} for i in range(300)},
                     {}, now_ms=1)
        assert store.count({"region": "us"}) == 100
        assert store.location.startswith("postgresql://postgres@127.0.0.1:")
        with pytest.raises(ValueError, match="NUL character"):
            store.check_encoded("k", '{"a": "\\u0000"}')
    from eventml.views.pg_store import table_name

    table = table_name(name)
    assert len(table) <= 63
    assert isinstance(pg_db.where, str)
    with psycopg.connect(pg_db.where, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT key FROM \"{table}\" WHERE row -> 'region' = '\"us\"'::jsonb"))
    assert "Index Scan" in plan and "Seq Scan" not in plan, plan


def test_projections_check_their_names_and_the_registry_finds_them() -> None:
    with pytest.raises(InvalidProjection, match="invalid view name"):
        Projection("no spaces", ["t"], noop)
    with pytest.raises(InvalidProjection, match="non-empty list"):
        Projection("v", "t", noop)
    with pytest.raises(InvalidProjection, match="invalid field name"):
        Projection("v", ["t"], noop, indexed=["a.b"])

    @projection("deco", ["t"], indexed=["x"])
    def deco(value: Any, meta: Any, table: Any) -> None:
        """Counts things."""

    assert deco.description == "Counts things." and deco.group == "eventml-view-deco"
    v = Projection("v", ["t"], noop)
    assert list(as_views([v, deco]).projections) == ["v", "deco"]
    assert list(as_views({"x": v}).projections) == ["v"]
    assert as_views(v)["v"] is v

    class Holder:
        projections = (v,)

    assert as_views(Holder())["v"] is v
    with pytest.raises(InvalidProjection, match="two views are named"):
        Views(v, v)
    with pytest.raises(InvalidProjection, match="no view named 'w'"):
        Views(v)["w"]
    with pytest.raises(InvalidProjection, match="is not a Projection"):
        as_views([v, 3])


def test_without_psycopg_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "eventml.views.pg_store", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'eventml\[postgres\]'"):
        open_view_store("postgresql://postgres@127.0.0.1:1/eventml", "v")
