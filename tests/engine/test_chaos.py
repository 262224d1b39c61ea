"""Exactly-once under crashes, and zombie fencing, on the embedded log and on Kafka.

Each test runs the chaos app (``eventml.testing._chaos_app``) in worker processes
and counts every event of its output (:mod:`eventml.testing.chaos`). Sizes are cut
down for CI; ``python -m eventml.testing.chaos --events 500000 --duration 60`` is
the full run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from eventml.testing.chaos import ChaosReport, EventPlan, check_output, run_chaos, run_zombie
from eventml.testing.checkers import check_sequences

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills workers found in /proc"),
]

EVENTS = 24_000
DURATION_S = 12.0  # of producing, with a SIGKILL every 2 s
KILLS = 5


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "embedded":
        return f"embedded://{tmp_path}/data"
    return f"kafka://{request.getfixturevalue('kafka_bootstrap')}"


def test_check_sequences_counts_gaps_repeats_and_state_mismatches() -> None:
    clean = check_sequences([("a", 1, 0), ("b", 1, None), ("a", 2, 1), ("b", 2, 1)])
    assert clean.ok and clean.keys == 2 and clean.received == 4
    # a: 3 is missing (gap at 4), b: 2 is repeated after a rewind whose state was not
    # rolled back (repeat + state), c: state lost (state)
    bad = check_sequences([("a", 1, 0), ("a", 2, 1), ("a", 4, 3),
                           ("b", 1, 0), ("b", 2, 1), ("b", 2, 2), ("b", 3, 2),
                           ("c", 1, 0), ("c", 2, 0)])
    assert (bad.gaps, bad.repeats, bad.state_mismatches) == (1, 1, 2)
    assert [(v.kind, v.key, v.seq) for v in bad.examples] == [
        ("gap", "a", 4), ("repeat", "b", 2), ("state", "b", 2), ("state", "c", 2)]
    assert not bad.ok and "1 gaps" in bad.summary()


def test_check_output_counts_every_id() -> None:
    from eventml.testing.chaos import _Output

    plan = EventPlan("r", 6, 2)  # k0: seq 1..3 (events 0, 2, 4), k1: seq 1..3 (1, 3, 5)
    outs = [_Output(plan.key(i), plan.seq(i), plan.seq(i) - 1, plan.event_id(i))
            for i in (0, 2, 1, 5)]  # 4 and 3 missing
    outs.insert(2, _Output("k0", 2, 2, plan.event_id(2)))  # 2 again, from advanced state
    outs.append(_Output("k0", 1, 0, "other-0"))  # right payload, wrong id
    c = check_output(plan, 6, outs, complete=True)
    assert (c.events, c.outputs, c.missing, c.duplicates, c.unexpected) == (6, 6, 2, 1, 1)
    assert (c.gaps, c.repeats, c.state_mismatches) == (1, 1, 1)


def _described(r: ChaosReport) -> str:
    return (f"{r.broker} {r.guarantee}: {r.events} events, {r.outputs} outputs, {r.missing} "
            f"missing, {r.duplicates} duplicates, {r.sequence_violations} sequence violations, "
            f"{r.kills} kills ({r.busy_kills} busy), caught up {r.caught_up}, examples "
            f"{list(r.examples[:5])}, log {r.log}")


def test_exactly_once_keeps_every_event_once_while_workers_are_killed(
    broker: str, tmp_path: Path
) -> None:
    r = run_chaos(broker, guarantee="exactly_once", events=EVENTS, duration_s=DURATION_S,
                  workdir=tmp_path, seed=1, catch_up_timeout_s=90)
    why = _described(r)
    assert r.kills >= KILLS and r.busy_kills >= 1, why
    assert r.caught_up and r.complete, why
    assert (r.missing, r.duplicates, r.unexpected) == (0, 0, 0), why
    assert (r.gaps, r.repeats, r.state_mismatches, r.out_of_order_keys) == (0, 0, 0, 0), why
    assert r.outputs == r.events == EVENTS and r.ok, why


@pytest.mark.kafka
def test_exactly_once_on_kafka_with_static_membership(kafka_bootstrap: str, tmp_path: Path) -> None:
    # a restarted worker takes its predecessor's place (and partitions) at once, with no
    # rebalance: nearly every kill lands on a worker in the middle of a transaction
    r = run_chaos(f"kafka://{kafka_bootstrap}", guarantee="exactly_once", events=EVENTS,
                  duration_s=DURATION_S, workdir=tmp_path, seed=4, catch_up_timeout_s=90,
                  app_settings={"STATIC": "1"})
    why = _described(r)
    assert r.kills >= KILLS and r.busy_kills >= KILLS - 1, why
    assert r.caught_up and r.complete, why
    assert (r.missing, r.duplicates, r.unexpected, r.sequence_violations) == (0, 0, 0, 0), why
    assert r.outputs == r.events == EVENTS and r.ok, why


def test_at_least_once_loses_nothing_while_workers_are_killed(broker: str, tmp_path: Path) -> None:
    r = run_chaos(broker, guarantee="at_least_once", events=EVENTS, duration_s=DURATION_S,
                  workdir=tmp_path, seed=2, catch_up_timeout_s=90)
    why = _described(r)
    assert r.kills >= KILLS, why
    assert r.caught_up and r.complete, why
    assert r.missing == 0 and r.unexpected == 0, why
    assert r.outputs == r.events + r.duplicates, why  # duplicates are counted, and allowed
    assert r.ok, why


def test_the_checker_catches_events_lost_by_committing_offsets_first(
    broker: str, tmp_path: Path
) -> None:
    # unsafe_commit_first: offsets are committed before the batch is processed (and the
    # app sleeps after that commit), so a kill mid-batch loses the batch
    r = run_chaos(broker, broken=True, events=EVENTS, duration_s=DURATION_S,
                  workdir=tmp_path, seed=3, catch_up_timeout_s=90)
    why = _described(r)
    assert r.kills >= KILLS and r.busy_kills >= 1, why
    assert r.complete, why
    assert r.missing > 0, why
    assert r.gaps > 0, why  # the per-key sequence check sees the holes too
    assert not r.ok


def test_a_frozen_worker_cannot_commit_after_another_took_its_partitions(
    broker: str, tmp_path: Path
) -> None:
    z = run_zombie(broker, events=3000, keys=200, workdir=tmp_path)
    why = f"{z}"
    assert z.stopped_s > 0 and z.second.get("records", 0) > 0, why
    assert z.first.get("commits_refused", 0) >= 1, why  # its commit was refused (or fenced)
    assert z.complete, why
    assert (z.missing, z.duplicates, z.unexpected, z.sequence_violations) == (0, 0, 0, 0), why
    assert z.outputs == z.events, why
    assert z.ok, why
