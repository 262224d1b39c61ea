"""Replays of a rule app over a window of history: exact, isolated, bounded, and checked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eventml.log import Log, TopicPartition, open_log
from eventml.replay import ReplayError, TimeWindow, _run, diff_decisions, replay
from eventml.replay._bounds import Admission
from eventml.testing import check_delivery

from .helpers import (
    HOUR,
    STEP_MS,
    T0,
    Payment,
    append_labels,
    append_payments,
    payments,
    read,
    run_live,
    unique,
    values,
)
from .rules import rules_app

EVENTS = 3000
START = T0 + 1000 * STEP_MS  # payment 1000 is the first inside: the start is inclusive
END = T0 + 2000 * STEP_MS  # payment 2000 is the first after: the end is exclusive


class History:
    def __init__(self, log: Log) -> None:
        self.log = log
        tag = unique("t")
        self.topics = {"payments": f"{tag}-payments", "alerts": f"{tag}-alerts", "seen": f"{tag}-seen"}
        self.name = f"{tag}-rules"
        self.items = payments(EVENTS)
        append_payments(log, self.topics["payments"], self.items)
        self.live = self.app(100.0)
        run_live(self.live, log, EVENTS)

    def app(self, threshold: float, name: str | None = None) -> object:
        return rules_app(threshold, name=name or self.name, broker=self.log.url, **self.topics)

    def inside(self, start: int = START, end: int = END) -> list[Payment]:
        return [p for p in self.items if start <= p.time_ms < end]


@pytest.fixture
def history(log: Log) -> History:
    return History(log)


@pytest.fixture
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    log = open_log(f"embedded://{tmp_path_factory.mktemp('log')}/data")
    yield log
    log.close()


def check_processed(log: Log, sandbox_seen: str, expected: list[Payment]) -> None:
    """Every payment of the window processed exactly once, in order per card; nothing else."""
    got = [(v["card"], v["n"]) for v in values(log, sandbox_seen)]
    report = check_delivery([(p.card, p.n) for p in expected], got)
    assert report.ok, report.summary()


def test_same_app_reproduces_the_live_alerts_of_the_window_exactly(history: History) -> None:
    log, t = history.log, history.topics
    box = unique("sb")
    result = replay(history.app(100.0), log, start_ms=START, end_ms=END, sandbox=box)

    expected = history.inside()
    assert len(expected) == 1000
    assert result.read == {t["payments"]: 1000}
    check_processed(log, f"{box}.{t['seen']}", expected)
    alerts = [p for p in expected if p.amount >= 100.0]
    assert result.written[f"{box}.{t['alerts']}"] == len(alerts)
    assert result.written[f"{box}.{t['seen']}"] == 1000
    assert result.topics == {t["alerts"]: f"{box}.{t['alerts']}", t["seen"]: f"{box}.{t['seen']}"}
    assert result.sandbox_app == f"{box}.{history.name}" and result.events_per_s > 0

    diff = diff_decisions(log, t["alerts"], f"{box}.{t['alerts']}", start_ms=START, end_ms=END)
    assert (diff.added, diff.removed, diff.common) == (0, 0, len(alerts))
    assert diff.identical and diff.baseline.events == diff.candidate.events == len(alerts)
    assert diff.baseline.outside == sum(1 for p in history.items if p.amount >= 100) - len(alerts)
    assert diff.candidate.outside == 0


def test_candidate_diff_matches_a_direct_computation(embedded: Log) -> None:
    history = History(embedded)
    log, t = history.log, history.topics
    labels = f"{t['payments']}-chargebacks"
    append_labels(log, labels, history.items)
    box = unique("sb")
    replay(history.app(60.0), log, start_ms=START, end_ms=END, sandbox=box)

    inside = history.inside()
    base = {p.id for p in inside if p.amount >= 100.0}
    cand = {p.id for p in inside if p.amount >= 60.0}
    positives = {p.id for p in inside if p.fraud}
    diff = diff_decisions(log, t["alerts"], f"{box}.{t['alerts']}", start_ms=START, end_ms=END,
                          labels_topic=labels)
    assert diff.added == len(cand - base) > 0 and diff.removed == len(base - cand) == 0
    assert diff.common == len(base & cand)
    assert set(diff.added_examples) <= cand - base
    assert diff.positives == len(positives)
    for side, ids in ((diff.baseline, base), (diff.candidate, cand)):
        tp = len(ids & positives)
        precision, recall = tp / len(ids), tp / len(positives)
        assert side.true_positives == tp
        assert side.precision == pytest.approx(precision)
        assert side.recall == pytest.approx(recall)
        assert side.f1 == pytest.approx(2 * precision * recall / (precision + recall))
    # the candidate against the live run, swapped: what it adds is what the live run lacks
    swapped = diff_decisions(log, f"{box}.{t['alerts']}", t["alerts"], start_ms=START, end_ms=END)
    assert (swapped.added, swapped.removed) == (0, len(cand - base))


def test_a_replay_leaves_the_live_topics_and_offsets_alone(embedded: Log) -> None:
    history = History(embedded)
    log, t = history.log, history.topics
    topics = sorted(log.list_topics())
    ends = {topic: log.end_offsets(topic) for topic in topics}
    tps = [TopicPartition(t["payments"], p) for p in range(3)]

    def committed() -> dict[TopicPartition, int | None]:
        consumer = log.consumer(history.name, [t["payments"]])
        try:
            return consumer.committed(tps)
        finally:
            consumer.close()

    before = committed()
    assert before == {tp: log.end_offsets(t["payments"])[tp.partition] for tp in tps}
    box = unique("sb")
    replay(history.app(60.0), log, start_ms=START, end_ms=END, sandbox=box)
    assert {topic: log.end_offsets(topic) for topic in topics} == ends
    assert committed() == before
    new = sorted(set(log.list_topics()) - set(topics))
    assert new and all(topic.startswith(f"{box}.") for topic in new), new


def test_a_used_sandbox_is_refused_then_reset(embedded: Log) -> None:
    history = History(embedded)
    log, t = history.log, history.topics
    box = unique("sb")
    replay(history.app(100.0), log, start_ms=START, end_ms=END, sandbox=box)
    with pytest.raises(ReplayError, match=r"was used before .* --reset"):
        replay(history.app(100.0), log, start_ms=START, end_ms=END, sandbox=box)
    later = T0 + 2 * HOUR + 5 * 60_000
    again = replay(history.app(100.0), log, start_ms=later, end_ms=END, sandbox=box, reset=True)
    expected = history.inside(later, END)
    assert again.events == len(expected)
    check_processed(log, f"{box}.{t['seen']}", expected)  # only this run's outputs


def test_an_empty_window_and_one_past_the_end_read_nothing(embedded: Log) -> None:
    history = History(embedded)
    far = T0 + 100 * HOUR
    result = replay(history.app(100.0), embedded, start_ms=far, end_ms=far + HOUR, sandbox=unique("sb"))
    assert result.events == 0 and sum(result.written.values()) == 0


def test_records_inside_the_offset_range_but_outside_the_window_are_skipped(embedded: Log) -> None:
    history = History(embedded)
    t = history.topics
    late = Payment(EVENTS, "tx-late", "card-01", 500.0, START - HOUR, False)  # out of order
    after = Payment(EVENTS + 1, "tx-after", "card-01", 500.0, END + 1, False)
    append_payments(embedded, t["payments"], [late, after])
    box = unique("sb")
    result = replay(history.app(100.0), embedded, start_ms=START, end_ms=T0 + 100 * HOUR, sandbox=box)
    expected = [p for p in history.items if p.time_ms >= START] + [after]
    assert result.read == {t["payments"]: len(expected)}
    assert result.skipped == {t["payments"]: 1}
    check_processed(embedded, f"{box}.{t['seen']}", expected)


def test_a_replay_that_ignores_its_end_bound_is_caught(
    embedded: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = History(embedded)

    class PastTheEnd(Admission):  # deliberately wrong: one record too many per partition
        def __init__(self, window: TimeWindow, starts: dict[TopicPartition, int],
                     ends: dict[TopicPartition, int], tables: frozenset[str] = frozenset()) -> None:
            wide = TimeWindow(window.start_ms, window.end_ms + HOUR)
            super().__init__(wide, starts, {tp: e + 1 for tp, e in ends.items()}, tables)

    monkeypatch.setattr(_run, "Admission", PastTheEnd)
    box = unique("sb")
    replay(history.app(100.0), embedded, start_ms=START, end_ms=END, sandbox=box)
    with pytest.raises(AssertionError, match="unexpected"):
        check_processed(embedded, f"{box}.{history.topics['seen']}", history.inside())


def test_bad_requests_are_one_line_errors(embedded: Log) -> None:
    history = History(embedded)
    app = history.app(100.0)
    with pytest.raises(ReplayError, match="must be before"):
        replay(app, embedded, start_ms=END, end_ms=START, sandbox="sb")
    with pytest.raises(ReplayError, match="invalid sandbox name"):
        replay(app, embedded, start_ms=START, end_ms=END, sandbox="a.b")
    with pytest.raises(ReplayError, match="prefix of live topic"):
        replay(rules_app(1.0, payments="live.payments"), embedded, start_ms=START, end_ms=END,
               sandbox="live")
    with pytest.raises(ReplayError, match="does not exist"):
        replay(rules_app(1.0, payments="nope"), embedded, start_ms=START, end_ms=END, sandbox="sb")
    with pytest.raises(ReplayError, match="does not exist"):
        diff_decisions(embedded, "nope", history.topics["alerts"])


def test_live_alerts_cover_every_payment_over_the_threshold(embedded: Log) -> None:
    """The baseline itself, counted: the live run alerted each payment >= 100 once."""
    history = History(embedded)
    got = sorted(str(v["transaction_id"]) for v in values(embedded, history.topics["alerts"]))
    assert got == sorted(p.id for p in history.items if p.amount >= 100.0)
    assert len(read(embedded, history.topics["seen"])) == EVENTS
