"""Retraining triggers: drift, schedule, new labels, and the cool-down between jobs."""

from __future__ import annotations

import pytest

from eventml.ml.records import DriftDetected
from eventml.ml.triggers import RetrainRequest, RetrainTrigger, TriggerLogic

MIN = 60_000


def _drift(at_ms: int, feature: str = "amount") -> DriftDetected:
    return DriftDetected(model="fraud", kind="feature", statistic="psi", value=0.4,
                         threshold=0.2, alpha=0.01, feature=feature, window_end_ms=at_ms)


def _requests(logic: TriggerLogic, calls: list[tuple[str, int, int]]) -> list[RetrainRequest]:
    """Feed ``(signal, time, count)`` and collect the requests made."""
    out = []
    for signal, at, n in calls:
        if signal == "drift":
            r = logic.on_drift(_drift(at))
        elif signal == "labels":
            r = logic.on_labels(n, at)
        else:
            r = logic.on_time(at)
        if r is not None:
            out.append(r)
    return out


def test_a_burst_of_drift_events_launches_one_job() -> None:
    logic = RetrainTrigger(cooldown_ms=30 * MIN).build()
    burst = [("drift", 100 * MIN + i * MIN, 0) for i in range(20)]  # 20 detectors over 20 min
    got = _requests(logic, burst)
    assert [(r.cause, r.at_ms) for r in got] == [("drift", 100 * MIN)]
    assert logic.suppressed == 19
    assert "psi=0.4" in got[0].reason and got[0].drift is not None
    # after the cool-down, drift launches a job again
    later = logic.on_drift(_drift(131 * MIN))
    assert later is not None and later.at_ms == 131 * MIN


def test_without_a_cooldown_every_drift_event_launches_a_job() -> None:
    """The control for the test above: the cool-down is what merges the burst."""
    logic = RetrainTrigger(cooldown_ms=0).build()
    assert len(_requests(logic, [("drift", i * MIN, 0) for i in range(20)])) == 20


def test_the_schedule_fires_every_period_of_event_time_since_the_last_training() -> None:
    logic = RetrainTrigger(on_drift=False, every_ms=60 * MIN).build(last_trained_ms=0)
    ticks = [("time", t * MIN, 0) for t in range(0, 185, 5)]
    got = _requests(logic, ticks)
    assert [r.at_ms for r in got] == [60 * MIN, 120 * MIN, 180 * MIN]
    assert all(r.cause == "schedule" for r in got)
    # a drift-caused training restarts the period (on_drift on)
    logic = RetrainTrigger(every_ms=60 * MIN).build(last_trained_ms=0)
    got = _requests(logic, [("drift", 50 * MIN, 0), ("time", 60 * MIN, 0), ("time", 110 * MIN, 0)])
    assert [(r.cause, r.at_ms) for r in got] == [("drift", 50 * MIN), ("schedule", 110 * MIN)]


def test_n_new_labels_fire_once_and_restart_the_count() -> None:
    logic = RetrainTrigger(new_labels=100).build()
    got = _requests(logic, [("labels", i, 30) for i in range(1, 8)])  # 30 labels per step
    assert [(r.cause, r.at_ms, r.labels_since) for r in got] == [("labels", 4, 120)]
    assert logic.labels_since == 90  # 3 more steps since
    assert logic.on_labels(10, 8) is not None


def test_labels_met_inside_the_cooldown_fire_when_it_ends_not_before() -> None:
    logic = RetrainTrigger(new_labels=10, cooldown_ms=1_000).build(last_trained_ms=0)
    assert logic.on_labels(50, 500) is None  # threshold met, but in the cool-down
    assert logic.on_time(999) is None
    r = logic.on_time(1_000)
    assert r is not None and r.cause == "labels" and r.labels_since == 50 and r.at_ms == 1_000


def test_time_only_moves_forward_and_config_is_checked() -> None:
    logic = RetrainTrigger(on_drift=False, every_ms=100).build(last_trained_ms=0)
    assert logic.on_time(150) is not None
    assert logic.on_time(120) is None  # an older signal does not move time back
    assert logic.now_ms == 150
    for bad in ({"every_ms": 0}, {"new_labels": -1}, {"cooldown_ms": -5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RetrainTrigger(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        logic.on_labels(-1, 200)


def test_the_module_example_runs() -> None:
    import doctest

    import eventml.ml.triggers

    assert doctest.testmod(eventml.ml.triggers).failed == 0
