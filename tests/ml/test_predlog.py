"""The prediction log: every prediction an event in the batch's transaction, with what it
takes to re-score it; `eventml models explain` re-scores it and says whether it matches."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from eventml.cli.app import main
from eventml.engine import App, Worker
from eventml.log import Log, Message, TopicPartition, open_log
from eventml.ml import Canary, ModelRegistry, read_predictions
from eventml.ml.records import PREDICTION_TYPE, Prediction
from eventml.ml.rollout import canary_share
from eventml.state._tail import read_rows
from eventml.testing import check_predictions

sklearn = pytest.importorskip("sklearn")

FEATURES = ["amount", "velocity"]


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    from sklearn.ensemble import HistGradientBoostingClassifier  # takes NaN (missing values)

    from eventml.ml.scorer import single_threaded

    reg = ModelRegistry(tmp_path / "models")
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(400, 2))
        y = (x @ rng.normal(size=2) > 0).astype(np.int64)
        with single_threaded():
            model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(x, y)
        reg.register("fraud", model, flavor="sklearn", features=FEATURES)
    reg.set_alias("fraud", "champion", 1)
    return reg


def _run(url: str, registry: ModelRegistry, n: int = 300, **options: Any
         ) -> tuple[App, Log, list[tuple[str, int, int]], list[dict[str, Any]]]:
    app = App(f"pl{uuid.uuid4().hex[:8]}", broker=url, max_batch=64, min_batch=16)
    src = app.topic(f"{app.name}-tx", partitions=3, key="card")
    out = app.topic(f"{app.name}-scored", partitions=3)
    app.stream(src).predict("fraud@champion", features=FEATURES, registry=registry,
                            predictions=f"{app.name}-preds", **options).to(out)
    log = open_log(url)
    Worker(app, log=log).close()
    rng = np.random.default_rng(0)
    placed = log.append(src.name, [
        Message(orjson.dumps({"n": i, "card": f"c{i % 17}", "amount": float(rng.normal()),
                              "velocity": None if i % 50 == 0 else float(rng.normal())}),
                f"c{i % 17}".encode(), (("ce_id", f"tx-{i}".encode()),), 1_000 + i)
        for i in range(n)])
    Worker(app, log=log).run(idle_timeout_s=0.5)
    scored = [orjson.loads(v) for _, v in _rows(log, out.name)]
    return app, log, [(f"tx-{i}", m.partition, m.offset) for i, m in enumerate(placed)], scored


def _rows(log: Log, topic: str) -> list[tuple[Any, bytes]]:
    out = []
    for p, end in log.end_offsets(topic).items():
        rows, _ = read_rows(log, TopicPartition(topic, p), 10.0, log.start_offsets(topic)[p], end)
        out += [(h, v) for _, v, h in rows if v is not None]
    return out


def test_every_prediction_is_an_event_written_with_the_batch(log_url: str, registry: ModelRegistry) -> None:
    app, log, events, scored = _run(log_url, registry, shadow="fraud/2", decision=0.5)
    topic = f"{app.name}-preds"
    try:
        preds = read_predictions(log, topic)
        report = check_predictions(events, preds, (), initial=1)
        report.assert_ok()  # exactly one acted-on prediction per event
        assert report.shadow == len(events) and len(preds) == 2 * len(events)
        assert len(log.end_offsets(topic)) == 3  # the source's partitions, keyed like it

        headers = [dict(h) for h, _ in _rows(log, topic)]
        assert {h["ce_type"] for h in headers} == {PREDICTION_TYPE.encode()}
        assert sorted(h["ce_id"] for h in headers) == sorted(
            [f"{e}#0".encode() for e, _, _ in events] + [f"{e}#2".encode() for e, _, _ in events])

        by_event = {(p.event_id, p.role): p for p in preds}
        outputs = {f"tx-{v['n']}": v for v in scored}
        assert len(outputs) == len(scored) == len(events)
        for event_id, _, _ in events:
            primary, shadow = by_event[(event_id, "primary")], by_event[(event_id, "shadow")]
            assert (primary.model, primary.version, shadow.version) == ("fraud", 1, 2)
            assert primary.decision == (primary.score >= 0.5) and shadow.decision == (shadow.score >= 0.5)
            assert list(primary.features) == FEATURES and primary.key == f"c{int(event_id[3:]) % 17}"
            assert primary.time_ms == 1_000 + int(event_id[3:])
            out = outputs[event_id]  # what was acted on is what the log says
            assert out["score"] == primary.score and out["model_version"] == "fraud:1"
            assert out["decision"] == primary.decision and "shadow" not in str(out)
        missing = by_event[("tx-0", "primary")].features
        assert missing == {"amount": missing["amount"], "velocity": None}  # seen as NaN
    finally:
        log.close()


def test_a_canary_scores_and_acts_on_a_stable_share_of_keys(tmp_path: Path, registry: ModelRegistry) -> None:
    url = f"embedded://{tmp_path}/data"
    app, log, events, scored = _run(url, registry, n=400, canary=Canary("fraud/2", 0.4))
    try:
        preds = read_predictions(log, f"{app.name}-preds")
        check_predictions(events, preds, (), initial=1).assert_ok()
        roles: dict[str, set[tuple[str, int | None]]] = {}
        for p in preds:
            assert p.key is not None
            roles.setdefault(p.key, set()).add((p.role, p.version))
        for key, seen in roles.items():  # the same key always goes the same way
            expected = {("canary", 2)} if canary_share(key) < 0.4 else {("primary", 1)}
            assert seen == expected, key
        share = sum(1 for k in roles if canary_share(k) < 0.4) / len(roles)
        assert 0 < share < 1
        by_card = {v["card"]: v["model_version"] for v in scored}
        assert all(by_card[k] == ("fraud:2" if canary_share(k) < 0.4 else "fraud:1") for k in by_card)
        ids = {dict(h)["ce_id"] for h, _ in _rows(log, f"{app.name}-preds")}
        assert any(i.endswith(b"#1") for i in ids) and any(i.endswith(b"#0") for i in ids)
    finally:
        log.close()


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_explain_rescores_the_recorded_versions_and_features(
    tmp_path: Path, registry: ModelRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"embedded://{tmp_path}/data"
    app, log, _, _ = _run(url, registry, n=120, shadow="fraud/2", decision=0.5)
    topic = f"{app.name}-preds"
    common = ["--broker", url, "--registry", str(registry.root), "--predictions", topic]
    try:
        code, out, err = _cli(capsys, "models", "explain", "tx-7", *common)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0] == f"event tx-7: 2 prediction(s) on {topic}"
        assert lines[1].lstrip().startswith("primary  fraud/1  recorded ")
        assert lines[3].lstrip().startswith("shadow   fraud/2  recorded ")
        assert lines[-1] == "every recorded score reproduced"

        code, out, _ = _cli(capsys, "models", "explain", "tx-50", *common, "--json")
        got = orjson.loads(out)
        assert code == 0 and [r["role"] for r in got] == ["primary", "shadow"]
        assert all(r["same"] and r["difference"] <= 1e-12 for r in got)
        assert got[0]["features"]["velocity"] is None  # a missing value, re-scored as NaN

        # a record whose score the model does not give: said, and a non-zero exit
        forged = Prediction(event_id="tx-forged", model="fraud", version=1, score=0.123456,
                            features={"amount": 1.0, "velocity": 2.0}, key="c1")
        log.append(topic, [Message(orjson.dumps(forged.to_dict()), b"c1")])
        code, out, _ = _cli(capsys, "models", "explain", "tx-forged", *common)
        assert code == 1 and "DIFFERENT by" in out and out.endswith("1 of 1 recorded score(s) NOT reproduced\n")
    finally:
        log.close()

    for args, message in (
        (["nope", *common], f"no prediction for event 'nope' on topic '{topic}'"),
        (["tx-7", "--broker", url, "--predictions", "nosuch"], "no topic 'nosuch' on this log"),
        (["tx-7", "--broker", f"embedded://{tmp_path}/none"], "no log at embedded://"),
    ):
        code, out, err = _cli(capsys, "models", "explain", *args)
        assert code != 0 and out == "" and message in err and len(err.splitlines()) == 1, err


def test_alias_and_promote_announce_the_change_on_the_log(
    tmp_path: Path, registry: ModelRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    from eventml.ml.control import alias_changes

    url = f"embedded://{tmp_path}/data"
    open_log(url).close()  # a log exists there
    code, out, err = _cli(capsys, "models", "promote", "fraud", "2", "--broker", url,
                          "--registry", str(registry.root), "--reason", "auc 0.91")
    assert code == 0 and out == "fraud@champion -> 2 (was 1)\n" and "announced" in err
    code, _, _ = _cli(capsys, "models", "alias", "fraud", "challenger", "1", "--broker", url,
                      "--registry", str(registry.root), "--no-publish")
    assert code == 0
    with open_log(url) as log:
        changes = alias_changes(log)
    assert [(c.alias, c.version, c.previous, c.reason) for c in changes] == [
        ("champion", 2, 1, "auc 0.91")]
