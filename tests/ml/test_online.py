"""Online learning from delayed labels: the label join's outcomes, exactly-once learning on
every backend, progressive metrics against a plain reference, snapshots in the registry."""

from __future__ import annotations

import pickle
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from eventml.engine import App, Worker, WorkerFailed
from eventml.events import Event, to_message
from eventml.log import Log, Message, TopicPartition, open_log
from eventml.ml import ModelRegistry
from eventml.ml._labels import JoinStats, on_due, on_label, on_prediction
from eventml.ml._learner import Learning, chain_digest
from eventml.ml.online import (
    OnlineLearner,
    ProgressiveMetrics,
    label_join,
    learn_online,
    progressive_metrics,
    publish_checkpoint,
    read_checkpoint,
    read_progressive_metrics,
)
from eventml.ml.records import PREDICTION_TYPE, LabelledPrediction, Prediction
from eventml.state._tail import read_rows

river = pytest.importorskip("river")
from river import linear_model, preprocessing  # noqa: E402

PROBE = [{"amount": a / 10, "velocity": v / 10} for a in range(0, 30, 7) for v in range(0, 30, 9)]


def new_model() -> Any:
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


# -- events ---------------------------------------------------------------------------------

def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def prediction_message(
    event_id: str, time_ms: int, *, model: str = "fraud", version: int = 1, role: str = "primary",
    score: float = 0.5, features: dict[str, float | None] | None = None,
    decision: bool | None = None, ce_id: str | None = None,
) -> Message:
    p = Prediction(event_id=event_id, model=model, version=version, score=score,
                   features=features or {"amount": 1.0}, decision=decision,
                   role=role, time_ms=time_ms, key=f"card-{hash(event_id) % 5}")  # type: ignore[arg-type]
    return to_message(Event(type=PREDICTION_TYPE, data=p.to_dict(), key=p.key, time=_time(time_ms),
                            id=ce_id or f"p-{event_id}-{model}-{version}-{role}"))


def chargeback_message(event_id: str, time_ms: int, *, ce_id: str | None = None) -> Message:
    """A card.chargeback as the fraud demo writes it: the transaction id in the data and the
    subject, no label field (a chargeback is a positive)."""
    return to_message(Event(type="card.chargeback", data={"transaction_id": event_id},
                            subject=event_id, key="card", time=_time(time_ms),
                            id=ce_id or f"cb-{event_id}-{time_ms}"))


def label_message(event_id: str, time_ms: int, label: float) -> Message:
    return to_message(Event(type="tx.reviewed", data={"event_id": event_id, "label": label},
                            key="card", time=_time(time_ms), id=f"lab-{event_id}-{time_ms}"))


def read_values(log: Log, topic: str) -> list[Any]:
    """Every committed value of ``topic``, partition by partition, in offset order."""
    out: list[Any] = []
    for p, end in sorted(log.end_offsets(topic).items()):
        rows, _ = read_rows(log, TopicPartition(topic, p), 30.0, log.start_offsets(topic)[p], end)
        out += [orjson.loads(v) for _, v, _ in rows if v is not None]
    return out


def learner_examples(log: Log, learner: OnlineLearner) -> list[dict[str, Any]]:
    """The examples that went through the learner's one-partition topic, in its order."""
    tp = TopicPartition(learner.topic, 0)
    end = log.end_offsets(learner.topic)[0]
    rows, _ = read_rows(log, tp, 30.0, log.start_offsets(learner.topic)[0], end)
    return [pickle.loads(v) for _, v, _ in rows if v is not None]


def check_learning(
    log: Log, learner: OnlineLearner, expected: set[str], make_model: Callable[[], Any] = new_model
) -> list[str]:
    """Everything wrong with the learner's committed checkpoint: its count against the
    distinct labelled examples, its digest against the examples of its topic in order, its
    model against one trained once, in that order, on them. Empty when right."""
    cp = read_checkpoint(log, learner)
    if cp is None:
        return ["no checkpoint"]
    examples = learner_examples(log, learner)
    ids = [ex["e"] for ex in examples]
    problems = []
    if cp.learned != len(expected):
        problems.append(f"learned {cp.learned} examples, {len(expected)} distinct labelled events")
    if len(set(ids)) != len(ids):
        problems.append(f"{len(ids) - len(set(ids))} events twice in the learner's topic")
    if set(ids) != expected:
        problems.append(f"{len(expected - set(ids))} labelled events never reached the learner, "
                        f"{len(set(ids) - expected)} unexpected")
    if cp.digest != chain_digest(ids).hex():
        problems.append("the digest is not that of the learner's examples in order")
    reference = make_model()
    for ex in examples:
        reference.learn_one(ex["x"], ex["y"])
    learned = cp.load_model()
    if [learned.predict_proba_one(x) for x in PROBE] != [reference.predict_proba_one(x) for x in PROBE]:
        problems.append("the model differs from one trained once, in order, on the examples")
    return problems


@dataclass
class Scenario:
    predictions: list[Message]
    labels: list[Message]
    learnable: set[str]  # events of model fraud, primary or canary, with at least one label
    records: list[Prediction]  # every prediction (duplicates included)


def scenario(n: int, seed: int = 7) -> Scenario:
    """``n`` scored events: primary (version 1) or canary (version 2) scores of ``fraud``,
    a shadow (version 3) for every third, another model for every seventh, a resent
    prediction for every eleventh; chargebacks for the fraud (a second one for every fifth),
    explicit negative labels for half of the rest, none for the others."""
    rng = random.Random(seed)
    preds: list[Message] = []
    labels: list[Message] = []
    learnable: set[str] = set()
    records: list[Prediction] = []

    def add(event: str, t: int, **kw: Any) -> None:
        preds.append(prediction_message(event, t, **kw))
        data = orjson.loads(preds[-1].value or b"null")
        records.append(Prediction.from_dict(data))

    for i in range(n):
        event, t = f"tx{i}", 1_000 + 10 * i
        amount, velocity = rng.uniform(0, 3), rng.uniform(0, 3)
        fraud = amount + velocity + rng.gauss(0, 0.5) > 4.0
        feats: dict[str, float | None] = {"amount": amount, "velocity": velocity,
                                          "note": None if i % 4 else 1.0}
        score = min(0.99, max(0.01, (amount + velocity) / 6))
        canary = i % 10 == 0
        add(event, t, version=2 if canary else 1, role="canary" if canary else "primary",
            score=score, features=feats, decision=None if i % 2 else score > 0.6)
        if i % 3 == 0:
            add(event, t, version=3, role="shadow", score=rng.random(), features=feats)
        if i % 7 == 0:
            add(event, t, model="other", score=0.5, features=feats)
        if i % 11 == 0:
            add(event, t, version=2 if canary else 1, role="canary" if canary else "primary",
                score=score, features=feats, ce_id=f"resent-{event}")
        if fraud:
            labels.append(chargeback_message(event, t + rng.randint(50, 900)))
            if i % 5 == 0:
                labels.append(chargeback_message(event, t + 1_000, ce_id=f"again-{event}"))
            learnable.add(event)
        elif i % 2 == 0:
            labels.append(label_message(event, t + rng.randint(50, 900), 0.0))
            learnable.add(event)
    return Scenario(preds, labels, learnable, records)


def _names() -> tuple[str, str, str]:
    u = uuid.uuid4().hex[:8]
    return f"online{u}", f"predictions-{u}", f"labels-{u}"


def _run(app: App, log: Log, idle_s: float = 0.3) -> None:
    Worker(app, log=log).run(idle_timeout_s=idle_s)


# -- the join's outcomes ----------------------------------------------------------------------

def test_the_join_rules_for_one_event_id() -> None:
    stats, state = JoinStats(), dict[str, Any]()
    p1 = {"event_id": "e", "model": "m", "version": 1, "role": "primary", "score": 0.2}
    assert on_label(state, 1.0, 50, stats) == []  # label first: kept
    assert on_prediction(state, p1, stats) == [
        {"prediction": p1, "label": 1.0, "label_time_ms": 50, "imputed": False}]
    assert on_prediction(state, dict(p1), stats) == []  # the same prediction again
    assert on_label(state, 0.0, 60, stats) == []  # a second label: the first one stands
    assert (stats.joined, stats.early, stats.duplicate_predictions, stats.duplicate_labels) == (1, 1, 1, 1)
    other: dict[str, Any] = {}
    assert on_prediction(other, p1, stats) == []
    assert on_due(other, ["nobody"], 99, 0.0, stats) == []
    [lp] = on_due(other, ["m\x1f1\x1fprimary", "m\x1f1\x1fprimary"], 99, 0.0, stats)
    assert LabelledPrediction.from_dict(lp).imputed and lp["label"] == 0.0
    assert on_label(other, 1.0, 120, stats) == [] and stats.late_labels == 1


@pytest.mark.parametrize("backend", ["memory", "embedded"])
def test_each_join_outcome_on_the_stream(backend: str, tmp_path: Path) -> None:
    """Phase by phase, each worker restarting from the committed join and window state."""
    url = f"memory://{uuid.uuid4().hex[:8]}" if backend == "memory" else f"embedded://{tmp_path}/d"
    log = open_log(url)
    app_name, preds, labels = _names()
    app = App(app_name, broker=url, max_batch=50, min_batch=5)
    join = label_join(app, preds, labels, label_horizon_ms=1_000)
    Worker(app, log=log).close()  # creates the topics

    def outputs() -> list[tuple[str, int | None, str, float, bool, int]]:
        got = [LabelledPrediction.from_dict(v) for v in read_values(log, join.output.name)]
        return sorted((lp.prediction.event_id, lp.prediction.version, lp.prediction.role,
                       lp.label, lp.imputed, lp.label_time_ms) for lp in got)

    # 1: predictions without labels yet, and a label before its prediction
    log.append(preds, [
        prediction_message("A", 1_000), prediction_message("C", 1_200),
        prediction_message("C", 1_200, ce_id="C-resent"),  # the same prediction again
        prediction_message("D", 1_300), prediction_message("D", 1_300, version=2, role="shadow"),
        prediction_message("E", 1_400), prediction_message("F", 1_450),
    ])
    log.append(labels, [chargeback_message("B", 1_100)])
    _run(app, log)
    assert outputs() == []
    # 2: labels come (one of them twice, with another value); B's prediction comes after its label
    log.append(labels, [chargeback_message("A", 1_500), label_message("C", 1_700, 1.0),
                        label_message("C", 1_800, 0.0), chargeback_message("D", 1_750),
                        chargeback_message("G", 1_760)])  # G: never predicted
    log.append(preds, [prediction_message("B", 1_600)])
    _run(app, log)
    joined = [("A", 1, "primary", 1.0, False, 1_500), ("B", 1, "primary", 1.0, False, 1_100),
              ("C", 1, "primary", 1.0, False, 1_700), ("D", 1, "primary", 1.0, False, 1_750),
              ("D", 2, "shadow", 1.0, False, 1_750)]
    assert outputs() == joined
    # 3: stream time 2399: E's horizon (1400 + 1000) not reached yet
    log.append(preds, [prediction_message("H", 2_399)])
    _run(app, log)
    assert outputs() == joined
    # 4: stream time 2500: E and F are decided negative, H is not
    log.append(preds, [prediction_message("I", 2_500)])
    _run(app, log)
    imputed = [("E", 1, "primary", 0.0, True, 2_400), ("F", 1, "primary", 0.0, True, 2_450)]
    assert outputs() == sorted(joined + imputed)
    # 5: E's label after its horizon joins nothing; a prediction already past its horizon is
    # decided at once; bad records are dead-lettered
    log.append(labels, [chargeback_message("E", 2_600), label_message("K", 2_600, "x")])  # type: ignore[arg-type]
    log.append(preds, [prediction_message("J", 1_000),
                       Message(orjson.dumps({"event_id": "L"}), b"k", (("ce_id", b"bad"),), 2_600)])
    _run(app, log)
    assert outputs() == sorted([*joined, *imputed, ("J", 1, "primary", 0.0, True, 2_000)])
    s = join.stats
    assert (s.joined, s.early, s.duplicate_labels, s.duplicate_predictions, s.imputed, s.late_labels) == (
        5, 1, 1, 1, 3, 1)
    assert len(read_rows(log, TopicPartition(f"{preds}.dlq", 0), 5, 0, 10)[0]) == 1
    assert len(read_rows(log, TopicPartition(f"{labels}.dlq", 0), 5, 0, 10)[0]) == 1
    log.close()


# -- learning ---------------------------------------------------------------------------------

def _learning_app(url: str, names: tuple[str, str, str], *, partitions: int = 3, **options: Any
                  ) -> tuple[App, OnlineLearner, str]:
    app_name, preds, labels = names
    app = App(app_name, broker=url, max_batch=60, min_batch=10)
    app.topic(preds, partitions=partitions)
    app.topic(labels, partitions=partitions)
    join = label_join(app, preds, labels)
    initial = options.pop("initial", None) or new_model()
    learner = learn_online(app, join, model="fraud", initial=initial, **options)
    metrics = progressive_metrics(app, join, window=50)
    return app, learner, metrics.name


def test_learned_count_equals_the_distinct_labelled_examples(log_url: str, log: Log) -> None:
    names = _names()
    app, learner, _ = _learning_app(log_url, names)
    Worker(app, log=log).close()
    s = scenario(400)
    half = len(s.predictions) // 2
    log.append(names[1], s.predictions[:half])
    log.append(names[2], s.labels)  # labels before, with and after their predictions
    log.append(names[1], s.predictions[half:])
    _run(app, log, 1.0 if log_url.startswith("kafka") else 0.5)
    assert check_learning(log, learner, s.learnable) == []
    cp = read_checkpoint(log, learner)
    assert cp is not None and cp.learned == len(s.learnable) > 100
    assert cp.features == ("amount", "note", "velocity")
    ends = log.end_offsets(learner.labelled)
    assert set(cp.offsets) == set(ends) and all(cp.offsets[p] <= ends[p] for p in ends)


def test_a_rolled_back_batch_is_learned_again_from_the_committed_model() -> None:
    """The in-memory model is used only while the state holds the bytes it was pickled into;
    an example below the checkpoint's position in the learner's topic is never learned again."""

    class State(dict[str, Any]):
        key = "k"

    def ex(i: int) -> dict[str, Any]:
        return {"e": f"e{i}", "x": {"amount": i % 7, "velocity": i % 3}, "y": float(i % 2),
                "t": i, "p": 0, "o": i, "r": 100 + i}

    learning = Learning("l", "fraud", pickle.dumps(new_model()), target=None, publish_every=None)
    committed = State()
    learning.learn([ex(i) for i in range(20)], committed)
    attempt = State(committed)  # the batch's writes, never committed (a rollback)
    learning.learn([ex(i) for i in range(20, 40)], attempt)
    again = State(committed)
    learning.learn([ex(i) for i in range(20, 40)], again)
    assert again["n"] == 40 and again["h"] == chain_digest([f"e{i}" for i in range(40)])
    redelivered = State(again)  # at-least-once: a committed batch read again
    assert learning.learn([ex(i) for i in range(30, 41)], redelivered)["batch"] == 1
    assert redelivered["n"] == 41 and redelivered["r"] == 141
    reference = new_model()
    for i in range(40):
        reference.learn_one(ex(i)["x"], ex(i)["y"])
    got = pickle.loads(again["m"])
    assert [got.predict_proba_one(x) for x in PROBE] == [reference.predict_proba_one(x) for x in PROBE]


def test_a_learning_failure_stops_the_worker_and_commits_nothing(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path}/data?durability=fast"
    log = open_log(url)
    names = _names()
    app, learner, _ = _learning_app(url, names, partitions=1, initial=Refusing())
    Worker(app, log=log).close()
    log.append(names[1], [prediction_message(f"e{i}", 1_000 + i, features={"amount": float(i)})
                          for i in range(3)])
    log.append(names[2], [chargeback_message(f"e{i}", 2_000 + i) for i in range(3)])
    with pytest.raises(WorkerFailed, match="learn_one failed on event e1"):
        _run(app, log)
    cp = read_checkpoint(log, learner)  # nothing of e1's batch, nor after it, committed
    assert cp is None or (cp.learned, cp.digest) == (1, chain_digest(["e0"]).hex())
    log.close()


class Refusing:
    """A model that cannot learn from the example whose amount is 1."""

    def learn_one(self, x: dict[str, float], y: Any) -> None:
        if x.get("amount") == 1.0:
            raise ValueError("cannot learn this one")


def test_snapshots_go_to_the_registry_and_publishing_is_idempotent(tmp_path: Path) -> None:
    url = f"memory://{uuid.uuid4().hex[:8]}"
    log = open_log(url)
    names = _names()
    registry = ModelRegistry(tmp_path / "models")
    app, learner, _ = _learning_app(url, names, registry=registry, publish_every=40,
                                    publish_as="fraud-online")
    Worker(app, log=log).close()
    s = scenario(300)
    log.append(names[1], s.predictions)
    log.append(names[2], s.labels)
    _run(app, log)
    cp = read_checkpoint(log, learner)
    assert cp is not None
    versions = registry.list_versions("fraud-online")
    counts = [int(v.metrics["learned_examples"]) for v in versions]
    assert counts and all(c // 40 > p // 40 for p, c in zip([0, *counts], counts, strict=False))
    assert counts[-1] // 40 == cp.learned // 40  # every multiple of 40 passed was published
    latest = publish_checkpoint(registry, cp, name="fraud-online", labelled=learner.labelled)
    assert publish_checkpoint(registry, cp, name="fraud-online").version == latest.version
    assert len(registry.list_versions("fraud-online")) == len(counts) + (counts[-1] != cp.learned)
    assert latest.training is not None and dict(latest.training.end_offsets) == dict(cp.offsets)
    assert latest.features == cp.features == ("amount", "note", "velocity")
    loaded = registry.load(f"fraud-online/{latest.version}")
    x = np.array([[p["amount"], 1.0, p["velocity"]] for p in PROBE])
    model = cp.load_model()
    expected = [model.predict_proba_one({"amount": a, "note": n, "velocity": v})[True] for a, n, v in x]
    np.testing.assert_allclose(loaded.predict_batch(x), expected, rtol=1e-12)
    log.close()


# -- progressive metrics ----------------------------------------------------------------------

def test_progressive_metrics_equal_a_plain_reference_per_version() -> None:
    from sklearn.metrics import confusion_matrix, log_loss, precision_score, recall_score

    url = f"memory://{uuid.uuid4().hex[:8]}"
    log = open_log(url)
    names = _names()
    app, _, metrics_topic = _learning_app(url, names, partitions=1)
    Worker(app, log=log).close()
    s = scenario(500, seed=3)
    log.append(names[1], s.predictions)
    log.append(names[2], s.labels)
    _run(app, log)
    labelled = [LabelledPrediction.from_dict(v) for v in read_values(log, f"{names[1]}.labelled")]
    got = read_progressive_metrics(log, metrics_topic)
    by_version: dict[tuple[str, int | None], list[LabelledPrediction]] = {}
    for lp in labelled:  # one partition: the metrics saw them in this order
        by_version.setdefault((lp.prediction.model, lp.prediction.version), []).append(lp)
    assert set(got) == set(by_version) == {("fraud", 1), ("fraud", 2), ("fraud", 3), ("other", 1)}
    for key, lps in by_version.items():
        m = got[key]
        y = [int(lp.label >= 0.5) for lp in lps]
        decided = [int(lp.prediction.decision if lp.prediction.decision is not None
                       else lp.prediction.score >= 0.5) for lp in lps]
        tn, fp, fn, tp = confusion_matrix(y, decided, labels=[0, 1]).ravel()
        assert (m.n, m.positives, m.tp, m.fp, m.fn, m.tn) == (len(lps), sum(y), tp, fp, fn, tn)
        assert m.precision == pytest.approx(precision_score(y, decided, zero_division=0) if tp + fp else None)
        assert m.recall == pytest.approx(recall_score(y, decided) if tp + fn else None)
        assert m.log_loss == pytest.approx(log_loss(y, [lp.prediction.score for lp in lps], labels=[0, 1]))
        yw, dw = y[-50:], decided[-50:]
        assert m.window_recall == pytest.approx(recall_score(yw, dw) if sum(yw) else None)
        assert m.window_precision == pytest.approx(precision_score(yw, dw) if sum(dw) else None)
        assert m.last_time_ms == max(lp.label_time_ms for lp in lps)
    log.close()


def test_progressive_metrics_round_trip_and_refuse_a_bad_window() -> None:
    m = ProgressiveMetrics("m", None, window=3)
    for score, label in [(0.9, 1.0), (0.1, 0.0), (0.6, 0.0), (0.4, 1.0), (0.8, 1.0)]:
        m.update(score, None, label)
    again = ProgressiveMetrics.from_dict(orjson.loads(orjson.dumps(m.to_dict())))
    assert again == m and bytes(m.recent) == b"\x01\x02\x03"
    with pytest.raises(ValueError, match="window must be >= 1"):
        ProgressiveMetrics("m", 1, window=0)


# -- configuration errors ---------------------------------------------------------------------

@pytest.mark.parametrize(("call", "message"), [
    (lambda app: learn_online(app, "l", model="m", initial=object()), "must have learn_one"),
    (lambda app: learn_online(app, "l", model="m", initial=new_model(), publish_every=5),
     "give both registry= and publish_every="),
    (lambda app: label_join(app, "p", "l", label_horizon_ms=10, keep_ms=10), "must exceed"),
    (lambda app: label_join(app, "p", "l", label_horizon_ms=0), "label_horizon_ms must be >= 1"),
    (lambda app: progressive_metrics(app, "l", window=0), "window must be >= 1"),
])
def test_bad_configuration_is_one_clear_error(call: Callable[[App], Any], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        call(App("bad", broker="memory://"))
