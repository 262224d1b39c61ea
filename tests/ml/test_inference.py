"""The inference operator: batched scoring on the stream engine, bisection, stats."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
from numpy.typing import NDArray

from eventml.deadletter import parse_dead_letter
from eventml.engine import App, Worker
from eventml.log import ConsumerConfig, Log, Message, Record, TopicPartition, open_log
from eventml.ml.inference import (
    FeatureMismatch,
    InferenceStats,
    Scorer,
    feature_matrix,
    predict,
)

sklearn = pytest.importorskip("sklearn")

FEATURES = [f"f{i}" for i in range(5)]


def _data(n: int, seed: int = 0) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0, 1.5]) + rng.normal(size=n) > 0).astype(np.int64)
    return x, y


def _events(x: NDArray[np.float64]) -> list[dict[str, Any]]:
    return [{"i": i, **dict(zip(FEATURES, row.tolist(), strict=True))} for i, row in enumerate(x)]


@pytest.fixture(params=["memory", "embedded"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Log]]:
    url = f"memory://{uuid.uuid4().hex[:6]}" if request.param == "memory" else f"embedded://{tmp_path}/data"
    log = open_log(url)
    try:
        yield url, log
    finally:
        log.close()


def _read_all(log: Log, topic: str) -> list[Record]:
    ends = {TopicPartition(topic, p): o for p, o in log.end_offsets(topic).items()}
    c = log.consumer(f"r{uuid.uuid4().hex[:8]}", [topic], config=ConsumerConfig(auto_offset_reset="earliest"))
    out: list[Record] = []
    try:
        for _ in range(200):
            out += c.poll(10_000, 0.05)
            owned = c.assignment()
            if len(owned) == len(ends) and all(c.position(tp) >= ends[tp] for tp in owned):
                break
    finally:
        c.close()
    return out


def _run(url: str, log: Log, events: list[dict[str, Any]], model: Any, *, max_batch: int = 97,
         **options: Any) -> tuple[App, list[dict[str, Any]], list[Record]]:
    app = App(f"t{uuid.uuid4().hex[:8]}", broker=url, max_batch=max_batch, min_batch=min(10, max_batch))
    src = app.topic("tx", partitions=3, key="k")
    out = app.topic("scored", partitions=3)
    app.stream(src).predict(model, features=FEATURES, **options).to(out)
    Worker(app, log=log).close()  # creates the topics
    log.append("tx", [
        Message(orjson.dumps({"k": f"c{e['i'] % 7}", **e}), f"c{e['i'] % 7}".encode(),
                (("ce_id", f"e{e['i']}".encode()),), 1_000 + e["i"])
        for e in events
    ])
    Worker(app, log=log).run(idle_timeout_s=0.3)
    scored = [orjson.loads(r.value or b"null") for r in _read_all(log, "scored")]
    dlq = _read_all(log, "tx.dlq") if "tx.dlq" in log.list_topics() else []
    return app, scored, dlq


@pytest.mark.parametrize("kind", ["logreg", "hgb"])
def test_scores_equal_the_models_own_predict_proba_and_each_event_is_scored_once(
    log_url: tuple[str, Log], kind: str
) -> None:
    url, log = log_url
    x, y = _data(1_500)
    est = (sklearn.linear_model.LogisticRegression() if kind == "logreg"
           else sklearn.ensemble.HistGradientBoostingClassifier(max_iter=20))
    est.fit(x, y)
    stats = InferenceStats()
    _, scored, dlq = _run(url, log, _events(x), est, stats=stats, version_of="m:1")
    assert dlq == []
    ids = sorted(v["i"] for v in scored)
    assert ids == list(range(len(x)))  # every event scored exactly once
    expected = est.predict_proba(x)[:, 1]
    got = np.array([v["score"] for v in sorted(scored, key=lambda v: v["i"])])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert {v["model_version"] for v in scored} == {"m:1"}
    s = stats.versions["m:1"]
    assert s.events == len(x) and s.batches >= len(x) // 97  # batched, not per event
    assert sum(s.sizes.values()) == s.batches and s.max_batch <= 97
    assert s.percentile_ms(0.5) is not None and s.seconds > 0


def test_input_values_are_not_mutated_and_missing_fields_are_nan() -> None:
    seen: list[NDArray[np.float64]] = []

    def model(x: NDArray[np.float64]) -> NDArray[np.float64]:
        seen.append(x.copy())
        return np.asarray(np.nan_to_num(x).sum(axis=1), dtype=np.float64)

    scorer = Scorer(model, features=["a", "b"], output="s")
    values = [{"a": 1, "b": 2}, {"a": 3}, {"a": None, "b": 4.5}]
    out = scorer(values)
    assert [v["s"] for v in out] == [3.0, 3.0, 4.5]
    assert values[1] == {"a": 3} and "s" not in values[0]  # type: ignore[operator]  # new dicts
    assert len(seen) == 1 and seen[0].dtype == np.float64 and np.isnan(seen[0][1, 1])
    assert "model_version" not in out[0]
    with pytest.raises(KeyError, match="'b'"):
        feature_matrix([{"a": 1}], ["a", "b"], missing="raise")


class _Declares:
    feature_names = ("f0", "f1", "f2", "amount")

    def predict_batch(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(x[:, 0], dtype=np.float64)


def test_feature_mismatch_names_the_fields_when_the_pipeline_is_built() -> None:
    app = App("mismatch", broker="memory://")
    stream = app.stream(app.topic("tx"))
    with pytest.raises(FeatureMismatch, match="missing from features=: amount") as info:
        stream.predict(_Declares(), features=["f0", "f1", "f2", "f3"])
    assert info.value.missing == ("amount",) and info.value.extra == ("f3",)
    assert "not known to the model: f3" in str(info.value)

    # sklearn's feature_names_in_ (fitted on a DataFrame-like with names) counts too
    x, y = _data(200)
    est = sklearn.linear_model.LogisticRegression().fit(x, y)
    est.feature_names_in_ = np.array([*FEATURES[:4], "other"], dtype=object)
    with pytest.raises(FeatureMismatch, match="missing from features=: other"):
        predict(stream, est, features=FEATURES)

    # the same names in another order: the model's order is used
    scorer = Scorer(_Declares(), features=["amount", "f2", "f1", "f0"])
    assert scorer.features == ("f0", "f1", "f2", "amount")


class _Version:
    name, version, features = "fraud", 3, ("a",)


class _Loaded:
    """A registry entry as the registry's ``load`` returns it (it scores by delegating)."""

    def __init__(self, model: Any) -> None:
        self.model, self.version = model, _Version()

    def predict_batch(self, x: NDArray[np.float64]) -> Any:
        return self.model(x)


def test_a_registry_entry_without_predict_batch_is_unwrapped() -> None:
    entry = _Loaded(lambda x: x[:, 0] * 2)
    bare = SimpleNamespace(model=entry.model, version=entry.version)
    scorer = Scorer(bare, features=["a"])
    assert scorer.version == "fraud:3" and scorer([{"a": 2.0}])[0]["score"] == 4.0


def test_string_references_resolve_and_registry_metadata_gives_version_and_features() -> None:
    loads: list[str] = []

    def resolve(ref: str) -> _Loaded:
        loads.append(ref)
        return _Loaded(lambda x: x[:, 0] + 1)

    scorer = Scorer("fraud@champion", features=["a"], resolve=resolve)
    assert loads == ["fraud@champion"] and scorer.version == "fraud:3"
    assert scorer([{"a": 1.0}]) == [{"a": 1.0, "score": 2.0, "model_version": "fraud:3"}]
    with pytest.raises(FeatureMismatch, match="missing from features=: a"):
        Scorer("fraud@champion", features=["b"], resolve=resolve)
    with pytest.raises(ValueError, match="resolve="):
        Scorer("fraud@champion", features=["a"])


class _Poisoned:
    """Fails any batch that holds a poisoned row (column 0 == 13 or 666)."""

    def __init__(self) -> None:
        self.calls = 0

    def predict_batch(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        self.calls += 1
        if np.isin(x[:, 0], (13.0, 666.0)).any():
            raise ValueError("cannot score row")
        return x[:, 1] / 10


def test_a_model_raising_on_some_rows_dead_letters_exactly_those_events(log_url: tuple[str, Log]) -> None:
    url, log = log_url
    n = 2_000
    poisoned = {13, 666, 1_500}
    events: list[dict[str, Any]] = [{"i": i, "f0": 13.0 if i in poisoned else float(i % 10), "f1": float(i),
               "f2": 0.0, "f3": 0.0, "f4": 0.0} for i in range(n)]
    events[1_500]["f0"] = 666.0
    events[900]["f1"] = "not a number"  # its features cannot be read: fails alone too
    model = _Poisoned()
    stats = InferenceStats()
    _, scored, dlq = _run(url, log, events, model, max_batch=500, stats=stats)
    bad = poisoned | {900}
    assert sorted(v["i"] for v in scored) == sorted(set(range(n)) - bad)  # the rest, once each
    assert all(v["score"] == v["i"] / 10 for v in scored)
    assert len(dlq) == len(bad)
    dead = sorted(orjson.loads(parse_dead_letter(r).value or b"null")["i"] for r in dlq)
    assert dead == sorted(bad)
    assert {parse_dead_letter(r).error_class for r in dlq} == {"builtins.ValueError"}
    # bisection: a few calls per failing batch, not one per event
    assert stats.versions[None].failed_events == len(bad)
    assert model.calls < 250


def test_single_failing_event_is_retried_on_its_own_with_a_fresh_model_call() -> None:
    model = _Poisoned()
    scorer = Scorer(model, features=["f0", "f1"])
    values = [{"f0": 1.0, "f1": float(i)} for i in range(8)]
    values[5]["f0"] = 13.0
    with pytest.raises(Exception, match="some events"):
        scorer(values)
    # the engine then asks for each event alone: answered from the bisection
    calls = model.calls
    assert scorer([values[0]]) == [{**values[0], "score": 0.0}]
    with pytest.raises(ValueError, match="cannot score row"):
        scorer([values[5]])
    assert model.calls == calls
    with pytest.raises(ValueError, match="cannot score row"):  # a retry: the model again
        scorer([values[5]])
    assert model.calls == calls + 1


def test_stats_keep_batch_sizes_per_version() -> None:
    stats = InferenceStats()
    ticks = iter(range(100))
    scorer = Scorer(lambda x: x[:, 0], features=["a"], stats=stats, version_of="v7",
                    timer=lambda: float(next(ticks)) / 1000)
    for size in (1, 3, 4, 100):
        scorer([{"a": 1.0}] * size)
    s = stats.versions["v7"]
    assert s.batches == 4 and s.events == 108 and s.max_batch == 100
    assert s.sizes == {1: 1, 4: 2, 128: 1}
    assert s.percentile_ms(0.5) == pytest.approx(1.0) and s.percentile_ms(0.99) == pytest.approx(1.0)
    report = stats.as_dict()["v7"]
    assert report["batch_sizes"] == {"<=1": 1, "<=4": 2, "<=128": 1} and report["mean_batch"] == 27


# -- decisions, shadow, canary, the data contract -------------------------------------------


def test_decision_is_a_threshold_or_a_function_of_the_score() -> None:
    by_threshold = Scorer(lambda x: x[:, 0], features=["a"], decision=0.5)
    assert [o["decision"] for o in by_threshold([{"a": 0.2}, {"a": 0.5}, {"a": 0.9}])] == [
        False, True, True]
    by_fn = Scorer(lambda x: x[:, 0], features=["a"], decision=lambda s: 0.3 < s < 0.6)
    assert [o["decision"] for o in by_fn([{"a": 0.2}, {"a": 0.5}, {"a": 0.9}])] == [
        False, True, False]
    assert "decision" not in Scorer(lambda x: x[:, 0], features=["a"])([{"a": 1.0}])[0]
    with pytest.raises(ValueError, match="decision="):
        Scorer(lambda x: x[:, 0], features=["a"], decision="high")  # type: ignore[arg-type]


def _tag(values: list[dict[str, Any]]) -> list[Any]:
    return [(v, f"e{i}", f"k{i}", 1_000 + i, 0) for i, v in enumerate(values)]


class _FailsOnTwo:
    version = "shadow-v"

    def predict_batch(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if (x[:, 0] == 2.0).any():
            raise ValueError("shadow cannot score 2")
        return np.asarray(x[:, 0] * 10, dtype=np.float64)


def test_a_shadow_is_logged_never_acted_on_and_its_failures_fail_nothing() -> None:
    scorer = Scorer(lambda x: x[:, 0] + 1, features=["a"], shadow=_FailsOnTwo(), predictions=True)
    out = scorer(_tag([{"a": 1.0}, {"a": 2.0}, {"a": 3.0}]))
    assert [o["score"] for o, _ in out] == [2.0, 3.0, 4.0]  # the primary's: acted on
    assert all(set(o) == {"a", "score"} for o, _ in out)  # nothing of the shadow's
    slots = [p for _, p in out]
    assert [s[0]["role"] for s in slots] == ["primary"] * 3 and all(s[1] is None for s in slots)
    assert [s[2] and s[2]["score"] for s in slots] == [10.0, None, 30.0]  # 2.0: no shadow record
    assert slots[0][2]["role"] == "shadow" and slots[0][2]["event_id"] == "e0"
    assert scorer.stats.versions["shadow-v"].failed_events == 1


def test_a_canary_needs_a_fraction_and_features_the_stream_has() -> None:
    from eventml.ml import Canary, ContractMismatch

    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
        Canary("m@challenger", 1.5)
    app = App("canary-build", broker="memory://")
    stream = app.stream(app.topic("tx"))
    with pytest.raises(FeatureMismatch, match=r"missing from features=: f1, f2, amount.*only use"):
        stream.predict(lambda x: x[:, 0], features=["f0"], canary=(_Declares(), 0.1))
    scored = stream.predict(lambda x: x[:, 0], features=["f0"], canary=(lambda x: x[:, 0] * 0, 1.0))
    from eventml.ml.inference import scored_values

    assert [v["score"] for v in scored_values(scored, [{"f0": 3.0}])] == [3.0]  # no key: primary

    typed = app.topic("typed", schema={"type": "object", "properties": {"f0": {"type": "number"}}})
    with pytest.raises(ContractMismatch, match="does not define: f1 \\(it defines: f0\\)"):
        app.stream(typed).filter(lambda v: True).predict(lambda x: x[:, 0], features=["f0", "f1"])
    app.stream(typed).predict(lambda x: x[:, 0], features=["f0"])  # in the contract: fine
