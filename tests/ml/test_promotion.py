"""The promotion policy: a paired test on the same labelled events, a margin, and what
each mode does.

The false-promotion check runs the policy over many seeded pairs of *equal* models
(same signal, independent noise); it must promote at most about ``alpha`` of them. A
deliberately broken policy (no significance test: ``alpha=1``, promote whenever the
challenger's log loss is lower) promotes about half of them, and the check catches it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from numpy.typing import NDArray

from eventml.log import Log, open_log
from eventml.ml import ModelRegistry
from eventml.ml.control import alias_changes
from eventml.ml.promotion import (
    PairedEvidence,
    PromotionPolicy,
    judge,
    labelled_predictions,
    paired_evidence,
    read_labelled,
    run_promotion,
    sign_flip_p_value,
)
from eventml.ml.records import LabelledPrediction, Prediction

SCORE = f"{__name__}:row_sum"


def row_sum(x: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray(x, dtype=np.float64).sum(axis=1)


def _scored(
    n: int, champion: float, challenger: float, seed: int, base_rate: float = 0.2,
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64]]:
    """Labels of ``n`` events and each version's scores; a version's signal is how far its
    log-odds move toward the truth (same signal = equally good models)."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < base_rate
    prior = np.log(base_rate / (1 - base_rate))

    def scores(signal: float) -> NDArray[np.float64]:
        logit = prior + signal * np.where(y, 1.0, -1.0) + rng.normal(0, 1.0, n)
        return np.asarray(1 / (1 + np.exp(-logit)))

    return y, scores(champion), scores(challenger)


def _labelled(
    n: int, *, champion: float, challenger: float, seed: int, base_rate: float = 0.2,
    model: str = "fraud", versions: tuple[int, int] = (1, 2), t0: int = 0,
) -> list[LabelledPrediction]:
    """``n`` events, each scored by both versions (primary and shadow), all labelled."""
    y, a, b = _scored(n, champion, challenger, seed, base_rate)
    out = []
    for version, role, s in ((versions[0], "primary", a), (versions[1], "shadow", b)):
        for i in range(n):
            p = Prediction(event_id=f"e{t0 + i}", model=model, version=version, score=float(s[i]),
                           features={}, role=role, time_ms=t0 + i)  # type: ignore[arg-type]
            out.append(LabelledPrediction(p, float(y[i]), t0 + i + 1_000))
    return out


def _false_promotion_rate(policy: PromotionPolicy, trials: int = 400, n: int = 300) -> float:
    """The share of seeded pairs of equal models that ``policy`` promotes."""
    promoted = 0
    for seed in range(trials):
        y, a, b = _scored(n, 1.0, 1.0, seed)
        evidence = PairedEvidence(tuple(map(str, range(n))), y.astype(np.float64), a, b,
                                  a >= 0.5, b >= 0.5)
        v = judge(evidence, model="fraud", champion=1, challenger=2, policy=policy)
        promoted += v.decision == "promote"
    return promoted / trials


FAST = {"min_events": 100, "window": 2000, "resamples": 999}


def test_equal_models_are_promoted_at_most_about_alpha_of_the_time() -> None:
    alpha, trials = 0.05, 400
    rate = _false_promotion_rate(PromotionPolicy(alpha=alpha, margin=0.0, **FAST), trials)
    assert rate <= alpha + 3 * (alpha * (1 - alpha) / trials) ** 0.5  # <= 0.083 (measured: 0.041 of 1,000)


def test_the_false_promotion_check_catches_a_policy_without_a_significance_test() -> None:
    rate = _false_promotion_rate(PromotionPolicy(alpha=1.0, margin=0.0, **FAST))
    assert rate > 0.3  # promotes on noise: about half the equal pairs


def test_a_clearly_better_challenger_is_promoted() -> None:
    for seed in range(10):
        v = judge(_labelled(500, champion=0.8, challenger=1.6, seed=seed), model="fraud",
                  champion=1, challenger=2, policy=PromotionPolicy(resamples=999))
        assert v.decision == "promote", v.reason
        assert v.p_value is not None and v.p_value < 0.01
        assert v.improvement is not None and v.improvement > 0.05
        assert v.challenger_log_loss is not None and v.champion_log_loss is not None
        assert v.challenger_log_loss < v.champion_log_loss
    assert "fraud/2 beats fraud/1" in v.reason and v.command == "eventml models promote fraud 2"
    assert v.alerts is not None and set(v.alerts) == {"fraud/1", "fraud/2"}


def test_a_worse_or_marginal_challenger_is_kept() -> None:
    worse = judge(_labelled(500, champion=1.6, challenger=0.8, seed=1), model="fraud",
                  champion=1, challenger=2)
    assert worse.decision == "keep" and "not significantly better" in worse.reason
    assert worse.improvement is not None and worse.improvement < 0
    # significant, but by less than the margin asked
    slight = _labelled(2000, champion=1.0, challenger=1.15, seed=3)
    assert judge(slight, model="fraud", champion=1, challenger=2,
                 policy=PromotionPolicy(margin=0.0)).decision == "promote"
    v = judge(slight, model="fraud", champion=1, challenger=2, policy=PromotionPolicy(margin=0.2))
    assert v.decision == "keep" and "less than the margin" in v.reason


def test_too_little_evidence_waits() -> None:
    few = judge(_labelled(50, champion=0.5, challenger=3.0, seed=0), model="fraud",
                champion=1, challenger=2)
    assert few.decision == "wait" and "needs 200" in few.reason and few.events == 50
    one_class = judge(_labelled(500, champion=0.5, challenger=3.0, seed=0, base_rate=0.004),
                      model="fraud", champion=1, challenger=2)
    assert one_class.decision == "wait" and "of each" in one_class.reason
    same = judge([], model="fraud", champion=2, challenger=2)
    assert same.decision == "keep" and "is the champion already" in same.reason


def test_evidence_pairs_the_two_versions_on_the_same_recent_events() -> None:
    data = _labelled(300, champion=1.0, challenger=1.0, seed=0)
    data += _labelled(100, champion=1.0, challenger=1.0, seed=1, versions=(7, 8))  # other versions
    data += _labelled(100, champion=1.0, challenger=1.0, seed=2, model="churn")  # other model
    data = [lp for lp in data if lp.prediction.event_id != "e5" or lp.prediction.version != 2]
    ev = paired_evidence(data, model="fraud", champion=1, challenger=2, window=250)
    assert len(ev) == 250 and ev.event_ids[0] == "e50" and ev.event_ids[-1] == "e299"
    whole = paired_evidence(data, model="fraud", champion=1, challenger=2)
    assert len(whole) == 299 and "e5" not in whole.event_ids  # scored by one version only
    bad = [LabelledPrediction(Prediction("e1", "fraud", v, 3.5, {}), 1.0, 5) for v in (1, 2)] * 200
    with pytest.raises(ValueError, match="probabilities"):
        judge(bad, model="fraud", champion=1, challenger=2)


def _registry(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "models")
    for _ in range(2):
        registry.register("fraud", SCORE, flavor="callable", features=["a"])
    registry.set_alias("fraud", "champion", 1)
    registry.set_alias("fraud", "challenger", 2)
    return registry


def test_auto_mode_moves_the_champion_and_announces_the_reason(tmp_path: Path) -> None:
    registry, log = _registry(tmp_path), open_log("memory://promotion-auto")
    evidence = _labelled(500, champion=0.8, challenger=1.6, seed=0)
    out = run_promotion(registry, evidence, "fraud", mode="auto", log=log)
    assert out.verdict.decision == "promote" and out.command is None
    assert registry.resolve("fraud@champion").version == 2
    [change] = alias_changes(log)
    assert (change.alias, change.version, change.previous) == ("champion", 2, 1)
    assert change.reason == out.verdict.reason and "beats" in change.reason
    # the challenger is now the champion: nothing more to do
    assert run_promotion(registry, evidence, "fraud", mode="auto", log=log).verdict.decision == "keep"


def test_manual_mode_moves_nothing_and_gives_the_command(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    out = run_promotion(registry, _labelled(500, champion=0.8, challenger=1.6, seed=0), "fraud")
    assert out.mode == "manual" and out.verdict.decision == "promote"
    assert out.command == "eventml models promote fraud 2" and out.alias_change is None
    assert registry.resolve("fraud@champion").version == 1
    equal = run_promotion(registry, _labelled(500, champion=1.0, challenger=1.0, seed=4), "fraud")
    assert equal.verdict.decision == "keep" and equal.command is None
    registry.delete_alias("fraud", "challenger")
    missing = run_promotion(registry, [], "fraud", mode="auto")
    assert missing.verdict.decision == "wait" and "no alias 'challenger'" in missing.verdict.reason


def test_labelled_predictions_from_topics(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from eventml.events import Event, to_message
    from eventml.log import TopicSpec

    log: Log = open_log("memory://promotion-topics")
    for topic in ("predictions", "chargebacks", "labelled"):
        log.create_topic(TopicSpec(topic, partitions=2))
    preds = [Prediction(f"e{i}", "fraud", 1, 0.1 * (i % 10), {}, time_ms=i * 1000) for i in range(100)]

    def at(ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, UTC)

    log.append("predictions", [to_message(Event("model.prediction", p.to_dict(), key=p.event_id,
                                                time=at(p.time_ms))) for p in preds])
    # chargebacks name their transaction by subject and carry no label: positives
    log.append("chargebacks", [to_message(Event("card.chargeback", {"amount": 1}, key=f"e{i}",
                                                subject=f"e{i}", time=at(i * 1000 + 500)))
                               for i in range(0, 100, 10)])
    joined = labelled_predictions(log, "predictions", "chargebacks", unlabelled=0.0, label_wait_ms=50_000)
    positives = [lp for lp in joined if lp.label == 1.0]
    assert len(positives) == 10 and all(not lp.imputed for lp in positives)
    # events 0..49 are 50 s old by the newest time seen (99.5 s): their silence is a negative
    negatives = [lp for lp in joined if lp.label == 0.0]
    assert {lp.prediction.event_id for lp in negatives} == {f"e{i}" for i in range(50) if i % 10}
    assert all(lp.imputed for lp in negatives)
    log.append("labelled", [to_message(Event("model.labelled", lp.to_dict(), key=lp.prediction.event_id))
                            for lp in joined])
    def by_id(lps: list[LabelledPrediction]) -> list[LabelledPrediction]:
        return sorted(lps, key=lambda lp: lp.prediction.event_id)

    assert by_id(read_labelled(log, "labelled")) == by_id(joined)


@pytest.mark.parametrize("shift", [0.0, 0.1])
def test_the_sign_flip_p_value_agrees_with_scipy(shift: float) -> None:
    stats = pytest.importorskip("scipy.stats")
    t = np.random.default_rng(7).standard_t(3, size=300) * 0.5  # heavy tails
    d = t - t.mean() + shift  # p near 0.5, then near 0.02
    ours = sign_flip_p_value(d, resamples=20_000, seed=1)
    ref = stats.permutation_test((d,), lambda x, axis: np.mean(x, axis=axis), vectorized=True,
                                 permutation_type="samples", alternative="greater",
                                 n_resamples=4_000, random_state=2).pvalue
    p = max(ref, 0.002)
    assert abs(ours - ref) < 4 * (p * (1 - p) * (1 / 4_000 + 1 / 20_000)) ** 0.5
    assert sign_flip_p_value(np.zeros(10), resamples=999, seed=0) == 1.0


def test_the_evaluate_command_prints_the_verdict_and_promotes_with_auto(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from eventml.cli.app import main
    from eventml.events import Event, to_message
    from eventml.log import TopicSpec

    monkeypatch.delenv("EVENTML_MODELS", raising=False)
    broker, reg = f"embedded://{tmp_path}/data", str(tmp_path / "models")
    _registry(tmp_path)
    with open_log(broker) as log:
        log.create_topic(TopicSpec("labelled", partitions=1))
        log.append("labelled", [to_message(Event("model.labelled", lp.to_dict(),
                                                 time=datetime.fromtimestamp(1, UTC)))
                                for lp in _labelled(500, champion=0.8, challenger=1.6, seed=0)])

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["models", "evaluate", "fraud", "--labelled", "labelled", "-r", reg,
                     "--broker", broker, *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run()
    assert code == 0 and out.startswith("PROMOTE: fraud/2 beats fraud/1")
    assert f"to promote: eventml models promote fraud 2 --registry {reg} --broker {broker}" in out
    assert ModelRegistry(reg).resolve("fraud@champion").version == 1  # manual: nothing moved
    code, out, _ = run("--auto", "--json")
    verdict = orjson.loads(out)
    assert code == 0 and verdict["alias_change"]["version"] == 2 and verdict["mode"] == "auto"
    assert ModelRegistry(reg).resolve("fraud@champion").version == 2
    code, _, err = run("--alpha", "2")
    assert code == 2 and err.count("\n") == 1 and "alpha must be in (0, 1]" in err
    code, _, err = run("--labelled", "nope")
    assert code == 2 and "topic 'nope' does not exist" in err and err.count("\n") == 1
