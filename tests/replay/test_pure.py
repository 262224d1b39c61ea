"""The pure cores: times, sandbox re-targeting, the window filter, the decision diff."""

from __future__ import annotations

import pytest

from eventml.engine import App, graph
from eventml.log import Record, TopicPartition
from eventml.replay import ReplayError, TimeWindow, parse_time, sandbox_app
from eventml.replay._bounds import Admission
from eventml.replay._diff import Decisions, compare
from eventml.windows import Count, Tumbling

NOW = 1_764_028_800_000  # 2025-11-25T00:00:00Z


@pytest.mark.parametrize(("text", "ms"), [
    ("2025-11-25T00:00:00Z", NOW),
    ("2025-11-25T01:00:00+01:00", NOW),
    ("2025-11-25T00:00:00.250Z", NOW + 250),
    ("1764028800000", NOW),
    ("now", NOW),
    ("-24h", NOW - 86_400_000),
    ("-30m", NOW - 1_800_000),
    ("-90s", NOW - 90_000),
    ("-2d", NOW - 172_800_000),
    ("-500ms", NOW - 500),
])
def test_parse_time(text: str, ms: int) -> None:
    assert parse_time(text, NOW) == ms


@pytest.mark.parametrize(("text", "why"), [
    ("yesterday", "cannot read time"),
    ("-24x", "cannot read time"),
    ("+3h", "cannot read time"),
    ("2025-11-25T00:00:00", "no timezone"),
])
def test_unreadable_times_say_what_is_accepted(text: str, why: str) -> None:
    with pytest.raises(ReplayError, match=why):
        parse_time(text, NOW)


def test_a_window_must_not_be_empty() -> None:
    with pytest.raises(ReplayError, match="must be before"):
        TimeWindow(5, 5)
    assert 5 in TimeWindow(5, 6) and 6 not in TimeWindow(5, 6)


def pipeline() -> App:
    app = App("shop", broker="memory://")
    orders = app.topic("orders", partitions=2, key="user")
    users = app.topic("users", partitions=2, compact=True)
    enriched = app.stream(orders).join_table(users).map(lambda pair: pair[0]).to(app.topic("enriched"))
    assert enriched.app is app
    app.stream("enriched").filter(bool).to(app.topic("checked"))
    (app.stream(orders).key_by("sku")
        .window(Tumbling(size_ms=1000), late_to=app.topic("late-orders"))
        .aggregate(Count()).to(app.topic("sku-counts")))
    app.stream(orders).process(lambda v, s: v, state="seen").sink(lambda items: None)
    return app


def test_the_sandbox_renames_every_written_topic_and_nothing_read() -> None:
    app = pipeline()
    before = app.topology()
    box = sandbox_app(app, "wi")
    assert app.topology() == before  # the live app is untouched
    assert box.app.name == "wi.shop"
    assert dict(box.renamed) == {t: f"wi.{t}" for t in
                                 ("checked", "enriched", "late-orders", "shop-keyby-9-repartition", "sku-counts")}
    assert box.sources == ("orders",) and box.tables == ("users",)
    assert box.internal == ("wi.enriched", "wi.shop-keyby-9-repartition")
    assert [s.name for s in box.stores] == ["table-users", "window-10", "seen"]
    assert box.sinks_disabled == 1
    nodes = box.app.topology().nodes
    named = {r.name for n in nodes for r in (getattr(n, a, None) for a in ("topic", "repartition", "late", "table"))
             if isinstance(r, graph.TopicRef)}
    assert named == {"orders", "users", *box.renamed.values()}
    to_checked = next(n for n in nodes if isinstance(n, graph.To) and n.topic.name == "wi.checked")
    assert to_checked.topic.event_type == "shop.checked"  # the live type, not the sandbox's
    assert box.dead_letter_topic("orders") == "wi.orders.dlq"
    assert box.dead_letter_topic("wi.enriched") == "wi.enriched.dlq"
    assert "wi.orders.dlq" in box.output_topics() and "wi.users.dlq" in box.output_topics()
    assert [n.id for n in nodes] == [n.id for n in before.nodes]


@pytest.mark.parametrize(("name", "why"), [
    ("", "invalid sandbox name"), ("a.b", "invalid sandbox name"), ("a b", "invalid sandbox name"),
    ("orders", "prefix of live topic"),
])
def test_bad_sandbox_names(name: str, why: str) -> None:
    with pytest.raises(ReplayError, match=why):
        sandbox_app(pipeline(), name)


def rec(topic: str, partition: int, offset: int, ts: int) -> Record:
    return Record(topic, partition, offset, ts, None, b"{}")


def test_admission_keeps_the_window_of_sources_everything_of_tables_before_the_end() -> None:
    a = TopicPartition("a", 0)
    t = TopicPartition("t", 0)
    admit = Admission(TimeWindow(100, 200), {a: 10, t: 0}, {a: 20, t: 5}, frozenset({"t"}))
    records = [rec("a", 0, 9, 99), rec("a", 0, 10, 100), rec("a", 0, 11, 50), rec("a", 0, 19, 199),
               rec("a", 0, 20, 200), rec("t", 0, 0, 1), rec("t", 0, 4, 150), rec("t", 0, 5, 199),
               rec("sb.x", 0, 0, 5)]
    kept = admit(records)
    assert [(r.topic, r.offset) for r in kept] == [("a", 10), ("a", 19), ("t", 0), ("t", 4), ("sb.x", 0)]
    assert admit.read == {"a": 2, "t": 2} and admit.skipped == {"a": 3, "t": 1}


def test_compare_counts_duplicates_and_scores_both_sides() -> None:
    base = Decisions("live", ("a", "b", "c", "c"), unreadable=1, outside=2)
    cand = Decisions("sb", ("b", "c", "d", "e"))
    d = compare(base, cand, positives={"c", "d", "z"}, labels_topic="labels")
    assert (d.common, d.added, d.removed) == (2, 2, 1)
    assert d.added_examples == ("d", "e") and d.removed_examples == ("a",)
    assert (d.baseline.events, d.baseline.decisions, d.baseline.duplicates) == (4, 3, 1)
    assert d.baseline.duplicate_examples == ("c",) and not d.identical
    assert d.baseline.true_positives == 1 and d.baseline.precision == pytest.approx(1 / 3)
    assert d.candidate.true_positives == 2 and d.candidate.recall == pytest.approx(2 / 3)
    assert d.candidate.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert d.to_json()["baseline"]["unreadable"] == 1 and d.positives == 3
    empty = compare(Decisions("x", ()), Decisions("y", ()), positives=set())
    assert empty.identical and empty.baseline.precision is None and empty.baseline.recall is None
