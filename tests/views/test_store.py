"""The view's SQLite file and the projection registry (no log involved)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eventml.log import TopicPartition
from eventml.views import InvalidProjection, Projection, Views, ViewStore, as_views, projection


def noop(value: Any, meta: Any, table: Any) -> None:
    pass


def test_rows_and_positions_commit_together_and_filters_compare_json(tmp_path: Path) -> None:
    with ViewStore(tmp_path / "v.sqlite", indexed=["city"]) as store:
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
