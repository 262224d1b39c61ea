"""The retraining job: a point-in-time training set from the log, holdout by time, a
registered challenger.

The point-in-time checker (:func:`_violations`) recomputes every row's label and
features from the raw events by brute force, as they were at the row's own time and
the cut-off; a deliberately naive join (features as of the cut-off) and a deliberately
leaky one (labels that arrived after the cut-off) are run through it and caught.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import eventml.ml.retrain as retrain_module
from eventml.events import Event, to_message
from eventml.features import HOUR, MINUTE, FeatureView, count, get_historical_features, since_last
from eventml.log import Log, TopicSpec
from eventml.ml import ModelRegistry
from eventml.ml.records import Label
from eventml.ml.retrain import (
    EventFeatures,
    RetrainError,
    RetrainJob,
    TrainingData,
    TrainingSet,
    build_training_set,
    run_retraining,
)

sklearn = pytest.importorskip("sklearn")

T0 = 1_700_000_000_000
TILE = MINUTE
WAIT = 6 * HOUR  # an event with no label 6 h after it is a negative


@dataclass(frozen=True)
class World:
    """Events on ``source`` (all of them, the future included) and labels on ``labels``."""

    source: str
    labels: str
    events: list[Event]
    label_records: list[Label]
    view: FeatureView


def _world(log: Log, *, n: int = 600, seed: int = 0) -> World:
    rng = np.random.default_rng(seed)
    tag = uuid.uuid4().hex[:8]
    source, labels = f"tx-{tag}", f"labels-{tag}"
    log.create_topic(TopicSpec(source, partitions=3))
    log.create_topic(TopicSpec(labels, partitions=2))
    times = np.sort(rng.choice(48 * HOUR, size=n, replace=False)) + T0
    events = []
    for i, t in enumerate(times.tolist()):
        card = f"c{rng.integers(8)}"
        amount = float(np.round(rng.lognormal(4.5, 0.8), 2))
        events.append(Event(type="tx", key=card, id=f"e{i}", time=datetime.fromtimestamp(t / 1000, UTC),
                            data={"card": card, "amount": amount, "t": t}))
    log.append(source, [to_message(e) for e in events])
    records = []
    for e in events:
        if rng.random() < 0.7:  # 30 % never get a label
            fraud = (e.data["amount"] > 150) != (rng.random() < 0.05)
            records.append(Label(e.id, float(fraud), e.time_ms + int(rng.integers(HOUR, 20 * HOUR))))
    records.sort(key=lambda lab: lab.time_ms)
    log.append(labels, [to_message(Event(
        type="label", key=lab.event_id, id=f"l-{lab.event_id}",
        time=datetime.fromtimestamp(lab.time_ms / 1000, UTC),
        data={"event_id": lab.event_id, "label": lab.label})) for lab in records])
    view = FeatureView("cards", entity="card", source=source, time="t",
                       features=[count("n_1h", HOUR, tile_ms=TILE), since_last("gap_s")])
    return World(source, labels, events, records, view)


def _running_count(events: Sequence[Event]) -> NDArray[np.float64]:
    """A stateful feature function: the card's events so far, this one included."""
    seen: dict[str, int] = {}
    out = []
    for e in events:
        seen[e.data["card"]] = seen.get(e.data["card"], 0) + 1
        out.append([seen[e.data["card"]]])
    return np.array(out, dtype=np.float64)


def _data(w: World, **options: Any) -> TrainingData:
    features = [EventFeatures(["amount"]), w.view, EventFeatures(["card_count"], _running_count)]
    return TrainingData(source=w.source, labels=w.labels, features=features, **options)


# --- the point-in-time checker ---------------------------------------------------------


def _violations(ts: TrainingSet, w: World, *, unlabelled: float | None, wait_ms: int) -> list[str]:
    """Every row checked against the raw events: label as known at the cut-off, and each
    feature as of the row's own time. Returns what is wrong (empty: point-in-time)."""
    cutoff = ts.cutoff_ms
    by_id = {e.id: e for e in w.events}
    first: dict[str, Label] = {}
    for lab in w.label_records:
        if lab.time_ms < cutoff and (lab.event_id not in first or lab.time_ms < first[lab.event_id].time_ms):
            first[lab.event_id] = lab
    if unlabelled is None:  # the events labelled before the cut-off
        expected_rows = [e.id for e in w.events if e.time_ms < cutoff and e.id in first]
    else:  # the events old enough at the cut-off, labelled or not
        expected_rows = [e.id for e in w.events if e.time_ms + wait_ms <= cutoff]
    problems = []
    if list(ts.event_ids) != expected_rows:
        extra = sorted(set(ts.event_ids) - set(expected_rows))[:3]
        problems.append(f"rows differ: {len(ts.event_ids)} vs {len(expected_rows)} expected, extra {extra}")
    cols = {name: i for i, name in enumerate(ts.features)}
    for row, event_id in enumerate(ts.event_ids):
        e = by_id[event_id]
        t, card = e.time_ms, e.data["card"]
        lab = first.get(event_id)
        want_y = lab.label if lab is not None else unlabelled
        if ts.y[row] != want_y:
            problems.append(f"{event_id}: label {ts.y[row]} but {want_y} was known at the cut-off")
        mine = [o.time_ms for o in w.events if o.data["card"] == card and o.time_ms <= t]
        n_1h = sum(1 for s in mine if s // TILE >= t // TILE - HOUR // TILE + 1)
        before = [s for s in mine if s < t]
        gap = (t - max(before)) / 1000 if before else np.nan
        got = ts.x[row]
        if got[cols["amount"]] != e.data["amount"]:
            problems.append(f"{event_id}: amount {got[cols['amount']]} != {e.data['amount']}")
        if got[cols["n_1h"]] != n_1h:
            problems.append(f"{event_id}: n_1h {got[cols['n_1h']]} but {n_1h} at its time")
        if not np.allclose(got[cols["gap_s"]], gap, equal_nan=True):
            problems.append(f"{event_id}: gap_s {got[cols['gap_s']]} but {gap} at its time")
        if got[cols["card_count"]] != len(mine):
            problems.append(f"{event_id}: card_count {got[cols['card_count']]} but {len(mine)}")
    return problems


def test_the_training_set_is_point_in_time_correct(log: Log) -> None:
    w = _world(log)
    cutoff = T0 + 36 * HOUR  # a quarter of the events, and many labels, come after it
    ts = build_training_set(log, _data(w, unlabelled=0.0, label_wait_ms=WAIT), cutoff_ms=cutoff)
    assert _violations(ts, w, unlabelled=0.0, wait_ms=WAIT) == []
    assert ts.labels_after_cutoff > 50  # the future existed on the log and was left out
    assert ts.labelled > 100 and ts.defaulted > 20 and ts.waiting > 10
    young_and_labelled = [i for i, t in zip(ts.event_ids, ts.times_ms.tolist(), strict=True)
                          if t + WAIT > cutoff]
    assert young_and_labelled == []  # labelled or not, too recent to be a row
    assert ts.features == ("amount", "n_1h", "gap_s", "card_count")
    assert np.all(np.diff(ts.times_ms) >= 0) and ts.times_ms.max() < cutoff
    assert ts.range.topic == w.source and ts.range.end_ms == cutoff
    assert ts.range.end_offsets == log.end_offsets(w.source)
    # without a default label, only events labelled before the cut-off are rows
    strict = build_training_set(log, _data(w), cutoff_ms=cutoff)
    assert _violations(strict, w, unlabelled=None, wait_ms=0) == []
    assert len(strict) == strict.labelled > ts.labelled  # young labelled events are rows here


def test_the_checker_catches_a_latest_value_feature_join(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _world(log)
    cutoff = T0 + 36 * HOUR

    def latest(log: Log, view: FeatureView, events: Sequence[Event]) -> NDArray[np.float64]:
        """Naive: each entity's values as of the cut-off (its latest), not the event's time."""
        rows = get_historical_features(log, view, [(e.data["card"], cutoff - 1) for e in events]).rows
        return np.array([r[2:] for r in rows], dtype=np.float64).reshape(len(events), -1)

    monkeypatch.setattr(retrain_module, "view_columns", latest)
    ts = build_training_set(log, _data(w, unlabelled=0.0, label_wait_ms=WAIT), cutoff_ms=cutoff)
    problems = _violations(ts, w, unlabelled=0.0, wait_ms=WAIT)
    assert sum("n_1h" in p or "gap_s" in p for p in problems) > len(ts) // 2


def test_the_checker_catches_labels_that_arrived_after_the_cutoff(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _world(log)
    cutoff = T0 + 36 * HOUR
    honest = retrain_module.known_labels
    monkeypatch.setattr(retrain_module, "known_labels",
                        lambda labels, cutoff_ms: honest(labels, 2**62))  # every label, known or not
    ts = build_training_set(log, _data(w, unlabelled=0.0, label_wait_ms=WAIT), cutoff_ms=cutoff)
    problems = _violations(ts, w, unlabelled=0.0, wait_ms=WAIT)
    mature = {e.id for e in w.events if e.time_ms + WAIT <= cutoff}
    leaked = {lab.event_id for lab in w.label_records  # each event has at most one label here
              if lab.time_ms >= cutoff and lab.label == 1.0 and lab.event_id in mature}
    assert len(leaked) >= 5  # mature events whose positive label came after the cut-off
    assert sum("was known at the cut-off" in p for p in problems) == len(leaked)
    strict = build_training_set(log, _data(w), cutoff_ms=cutoff)  # only labelled events as rows
    problems = _violations(strict, w, unlabelled=None, wait_ms=0)
    assert problems[0].startswith("rows differ")  # events whose label was not known yet


# --- the job ---------------------------------------------------------------------------


def _train(x: NDArray[np.float64], y: NDArray[np.float64]) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=500).fit(np.nan_to_num(x, nan=-1.0), y)


def _job(w: World, **options: Any) -> RetrainJob:
    data = TrainingData(source=w.source, labels=w.labels, unlabelled=0.0, label_wait_ms=WAIT,
                        features=[EventFeatures(["amount"]), EventFeatures(["card_count"], _running_count)])
    return RetrainJob(model="fraud", data=data, train=_train, holdout=0.25, **options)


@pytest.mark.parametrize("log_url", ["memory", "embedded"], indirect=True)
def test_the_job_registers_a_challenger_evaluated_on_the_latest_events(
    log: Log, tmp_path: Path
) -> None:
    from eventml.ml.control import alias_changes

    w = _world(log, n=1500)
    registry = ModelRegistry(tmp_path / "models")
    cutoff = T0 + 40 * HOUR
    result = run_retraining(_job(w, code_version="abc123"), log, registry, cutoff_ms=cutoff,
                     reason="psi drift on amount")
    v = result.version
    assert (v.name, v.version, v.aliases) == ("fraud", 1, ("challenger",))
    assert v.features == ("amount", "card_count") and v.code_version == "abc123"
    assert "psi drift on amount" in v.description
    t = v.training
    assert t is not None and t.topic == w.source and t.end_ms == cutoff
    assert t.end_offsets == log.end_offsets(w.source) and t.start_offsets == log.start_offsets(w.source)
    # the holdout is the most recent quarter by event time, after every training row
    ts = build_training_set(log, _job(w).data, cutoff_ms=cutoff)
    assert result.train_rows + result.holdout_rows == len(ts)
    assert result.holdout_rows == pytest.approx(len(ts) * 0.25, abs=3)
    assert ts.times_ms[result.train_rows - 1] < result.holdout_start_ms == ts.times_ms[result.train_rows]
    m = v.metrics
    base_rate = m["positives"] / m["rows"]
    # recent labels are partly missing (still in flight: defaulted to 0), as they are live
    assert m["rows"] == result.holdout_rows and m["average_precision"] > 2.5 * base_rate
    assert m["roc_auc"] > 0.75 and 0 < m["log_loss"] < 0.5 and m["threshold"] == 0.5
    assert 0 < m["recall_at_threshold"] <= 1
    assert set(result.seconds) == {"build", "train", "evaluate", "register", "total"}
    # the alias moved, and the move was announced on the control topic
    assert registry.resolve("fraud@challenger").version == 1
    assert [(c.model, c.alias, c.version) for c in alias_changes(log)] == [("fraud", "challenger", 1)]
    assert result.alias_change is not None and result.alias_change.reason == "psi drift on amount"

    # the next job is compared with the champion on its own holdout, at its threshold
    registry.set_alias("fraud", "champion", 1)
    registry_v1 = registry.get("fraud", 1)
    assert registry_v1.metrics["threshold"] == 0.5
    later = run_retraining(_job(w, refit=True, threshold=0.3), log, registry, cutoff_ms=T0 + 46 * HOUR,
                    announce=False)
    assert later.version.version == 2 and later.champion == 1
    assert later.champion_metrics is not None and later.champion_metrics["rows"] == later.holdout_rows
    assert later.version.metrics["threshold"] == 0.3 and later.version.metrics["refit"] == 1.0
    assert len(alias_changes(log)) == 1  # announce=False: registry only
    assert registry.resolve("fraud@challenger").version == 2


@pytest.mark.parametrize("log_url", ["memory"], indirect=True)
def test_bad_input_is_a_one_line_error(log: Log, tmp_path: Path) -> None:
    w = _world(log, n=200)
    registry = ModelRegistry(tmp_path / "models")
    with pytest.raises(RetrainError, match="topic 'nope' does not exist"):
        run_retraining(RetrainJob("fraud", TrainingData("nope", [EventFeatures(["amount"])], w.labels), _train),
                log, registry, cutoff_ms=T0 + HOUR)
    with pytest.raises(RetrainError, match="both classes are needed") as e:
        run_retraining(_job(w), log, registry, cutoff_ms=T0 + 2 * HOUR)  # hardly any labels known yet
    assert "\n" not in str(e.value)
    assert registry.list_models() == []  # nothing registered
    with pytest.raises(ValueError, match="appear twice"):
        TrainingData(w.source, [EventFeatures(["amount"]), EventFeatures(["amount"])], w.labels)


def test_event_features_take_fields_arrays_or_mappings() -> None:
    events = [Event(type="tx", data={"amount": float(i)}) for i in range(3)]
    fields = EventFeatures(["amount", "missing"]).columns(events)
    assert fields[:, 0].tolist() == [0.0, 1.0, 2.0] and np.isnan(fields[:, 1]).all()
    doubled = EventFeatures(["a2"], lambda evs: [{"a2": 2 * e.data["amount"]} for e in evs])
    assert doubled.columns(events)[:, 0].tolist() == [0.0, 2.0, 4.0]
    with pytest.raises(RetrainError, match="one row per event"):
        EventFeatures(["a", "b"], lambda evs: np.zeros((len(evs), 3))).columns(events)
