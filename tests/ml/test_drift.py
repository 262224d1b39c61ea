"""Drift detectors (pure cores): statistics against hand computations and scipy, calibration
on stationary data, detection delay after injected drift, error-rate drift."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from eventml.bench.drift import FEATURES, Regime, transactions
from eventml.ml.drift import (
    AdwinErrorDetector,
    ErrorRateDetector,
    FeatureDriftDetector,
    alpha_for_run_length,
    bin_counts,
    check_false_alarms,
    ks_threshold,
    outcome,
    per_test_alpha,
    psi,
    psi_threshold,
    quantile_edges,
)
from eventml.ml.drift._psi import psi_many
from eventml.ml.drift.calibrate import ks_statistic
from eventml.ml.records import DriftDetected, Label, LabelledPrediction, Prediction, join_labels

stats = pytest.importorskip("scipy.stats")


def _stream(n_before: int, n_after: int, regime: Regime, seed: int) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    return np.vstack([transactions(n_before, rng), transactions(n_after, rng, regime)])


# -- statistics --------------------------------------------------------------------------------


def test_psi_equals_a_hand_computation() -> None:
    # proportions .5/.5 vs .25/.75: (.25-.5)ln(.25/.5) + (.75-.5)ln(.75/.5)
    hand = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert psi([50, 50], [25, 75], smoothing=0.0) == pytest.approx(hand, rel=1e-12)
    # with the default smoothing (0.5 per bin, both sides)
    e = np.array([10.5, 0.5, 30.5]) / 41.5
    a = np.array([2.5, 4.5, 3.5]) / 10.5
    assert psi([10, 0, 30], [2, 4, 3]) == pytest.approx(float(((a - e) * np.log(a / e)).sum()), rel=1e-12)
    assert psi([7, 7, 7], [7, 7, 7]) == 0.0
    rows = psi_many(np.array([50, 50]), np.array([[25, 75], [50, 50]]), smoothing=0.0)
    assert rows.tolist() == pytest.approx([hand, 0.0])


def test_quantile_bins_put_missing_values_in_a_bin_of_their_own() -> None:
    edges = quantile_edges(np.arange(100.0), bins=4)
    assert edges.tolist() == [24.75, 49.5, 74.25]
    counts = bin_counts(np.array([0.0, 24.75, 30.0, 60.0, 99.0, np.nan, np.nan]), edges)
    assert counts.tolist() == [1, 2, 1, 1, 2]  # x < e0 | e0 <= x < e1 | ... | NaN
    # a discrete feature: one bin per value, not collapsed quantiles
    cats = np.array([0.0] * 50 + [1.0] * 30 + [2.0] * 20)
    assert quantile_edges(cats, bins=10).tolist() == [1.0, 2.0]
    assert bin_counts(cats, quantile_edges(cats, bins=10)).tolist() == [50, 30, 20, 0]
    assert quantile_edges(np.array([np.nan, np.nan]), bins=4).size == 0


def test_ks_values_and_thresholds_are_scipys() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(2_000, 1))
    window = rng.normal(loc=0.4, size=(400, 1))
    window[::50] = np.nan  # left out of KS (8 values)
    det = FeatureDriftDetector(["x"], reference=ref, window=400, alpha=0.01, statistics=["ks"])
    (found,) = det.update_many(window, times=np.arange(400) + 1_000)
    present = window[~np.isnan(window)]
    expected = stats.ks_2samp(ref[:, 0], present, method="asymp")
    assert ks_statistic(np.sort(ref[:, 0]), present) == expected.statistic
    assert found.statistic == "ks" and found.feature == "x"
    assert found.value == pytest.approx(expected.statistic, rel=1e-12)
    assert found.evidence["ks_p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    en = round(2_000 * present.size / (2_000 + present.size))
    assert found.threshold == pytest.approx(stats.kstwo.isf(0.01, en), rel=1e-12)
    assert found.threshold == ks_threshold(2_000, present.size, 0.01)
    assert found.alpha == 0.01 and found.evidence["ks_p_value"] < found.alpha
    assert (found.window_start_ms, found.window_end_ms, found.window_events) == (1_000, 1_399, 400)
    assert found.evidence["window_missing_rate"] == pytest.approx(8 / 400)
    assert found.evidence["wasserstein"] == pytest.approx(
        stats.wasserstein_distance(ref[:, 0], present), rel=1e-12)


def test_psi_threshold_has_the_stated_false_alarm_rate_under_its_null() -> None:
    counts = np.array([500, 500, 500, 500, 1_000, 0])  # uneven bins, no missing values
    alpha = 0.01
    t = psi_threshold(counts, 300, alpha, seed=1)
    assert t.source == "quantile" and t.draws == 20_000
    # fresh draws from the same null (another seed) exceed it at about alpha
    rng = np.random.default_rng(99)
    p = (counts + 0.5) / (counts.sum() + 0.5 * counts.size)
    n = 40_000
    fresh = psi_many(rng.multinomial(counts.sum(), p, size=n), rng.multinomial(300, p, size=n))
    exceed = int((fresh > t.value).sum())
    lo, hi = stats.binom.ppf([0.0005, 0.9995], n, alpha)
    assert lo <= exceed <= hi
    assert t.chi2 == pytest.approx(t.value, rel=0.3)  # the large-sample value is close
    tail = psi_threshold(counts, 300, 1e-6, seed=1)  # beyond what draws reach: fitted tail
    assert tail.source == "chi2-fit" and tail.value > t.value
    assert per_test_alpha(0.01, 10) == pytest.approx(0.001)
    assert alpha_for_run_length(1_000, 1_000_000) == pytest.approx(0.001)


# -- calibration on stationary data --------------------------------------------------------------


def test_stationary_data_raises_no_more_false_alarms_than_alpha_allows() -> None:
    rng = np.random.default_rng(11)
    reference = transactions(5_000, rng)
    x = transactions(100_000, rng)
    det = FeatureDriftDetector(FEATURES, reference=reference, window=100, alpha=0.2,
                               after_drift="keep", seed=4)
    assert det.update_many(x) != []  # alpha is large: some false alarms are expected
    assert det.windows_tested == 1_000
    check = check_false_alarms(det.windows_alarmed, det.windows_tested, det.alpha)
    assert check.ok, check
    for f in FEATURES:  # and each test within what its Bonferroni share allows
        for s in ("psi", "ks"):
            n = det.alarms.get(f"{f}/{s}", 0)
            assert check_false_alarms(n, det.windows_tested, det.alpha_test).ok, (f, s, n)


def test_a_folk_psi_threshold_on_small_windows_is_caught_by_the_same_check() -> None:
    rng = np.random.default_rng(12)
    reference = transactions(5_000, rng)
    x = transactions(50_000, rng)
    folk = FeatureDriftDetector(FEATURES, reference=reference, window=50, alpha=0.001,
                                statistics=["psi"], psi_threshold=0.1, after_drift="keep")
    folk.update_many(x)
    assert not check_false_alarms(folk.windows_alarmed, folk.windows_tested, folk.alpha).ok
    calibrated = FeatureDriftDetector(FEATURES, reference=reference, window=50, alpha=0.001,
                                      statistics=["psi"], after_drift="keep")
    calibrated.update_many(x)
    assert check_false_alarms(calibrated.windows_alarmed, calibrated.windows_tested, 0.001).ok
    assert folk.windows_alarmed > 20 * max(calibrated.windows_alarmed, 1)


# -- detection delay --------------------------------------------------------------------------------

STATED_DELAY = 2  # windows after the change


@pytest.mark.parametrize(
    ("regime", "feature"),
    [
        (Regime(z_loc=0.5), "z"),
        (Regime(z_scale=1.5), "z"),
        (Regime(amount_mu=3.8), "amount"),
        (Regime(distance_missing=0.20), "distance_km"),
        (Regime(night_factor=3.0), "hour"),
    ],
    ids=["mean+0.5sd", "sd*1.5", "amount*1.35", "missing5to20pct", "night*3"],
)
def test_injected_drift_alarms_within_the_stated_delay(regime: Regime, feature: str) -> None:
    window, change = 500, 10_250  # the change falls mid-window
    x = _stream(change, 5_000, regime, seed=21)
    rng = np.random.default_rng(22)
    det = FeatureDriftDetector(FEATURES, reference=transactions(5_000, rng), window=window,
                               alpha=0.001)
    found = det.update_many(x, times=np.arange(len(x)))
    assert [f for f in found if f.events_seen <= change] == []  # nothing before the change
    first = min(f.events_seen for f in found)
    assert first - change <= STATED_DELAY * window
    assert feature in {f.feature for f in found if f.events_seen == first}
    f = next(f for f in found if f.feature == feature)
    assert f.kind == "feature" and f.value > f.threshold and f.alpha == pytest.approx(0.0001)
    assert f.window_end_ms == f.events_seen - 1 >= change  # times are event indexes here
    assert f.window_end_ms - f.window_start_ms == window - 1
    ev = f.evidence
    assert len(ev["reference_quantiles"]) == len(ev["window_quantiles"]) == 5
    assert ev["tests_per_window"] == 10 and ev["alpha_window"] == 0.001
    assert DriftDetected.from_dict(f.to_dict()) == f


def test_after_an_alarm_the_detector_rebases_and_is_silent_on_the_new_normal() -> None:
    x = _stream(5_250, 20_000, Regime(z_loc=1.0), seed=31)
    rng = np.random.default_rng(32)
    reference = transactions(3_000, rng)
    rebase = FeatureDriftDetector(FEATURES, reference=reference, window=500, alpha=0.001,
                                  reference_size=3_000)
    found = rebase.update_many(x)
    assert {f.events_seen for f in found} == {5_500}  # one window alarmed, then the new normal
    assert rebase.references_built == 2 and rebase.windows_alarmed == 1
    keep = FeatureDriftDetector(FEATURES, reference=reference, window=500, alpha=0.001,
                                after_drift="keep")
    keep.update_many(x)
    assert keep.windows_alarmed == 40  # every window after the change


def test_the_reference_can_be_the_streams_first_events() -> None:
    x = _stream(6_250, 2_000, Regime(z_loc=1.0), seed=41)
    det = FeatureDriftDetector(FEATURES, window=500, reference_size=4_000, alpha=0.001)
    assert det.collecting
    assert det.update_many(x[:4_000]) == [] and not det.collecting
    assert det.windows_tested == 0 and det.references[0].n == 4_000
    found = det.update_many(x[4_000:])
    assert min(f.events_seen for f in found) == 6_500
    assert {f.reference_events for f in found} == {4_000}


def test_one_event_at_a_time_gives_the_same_alarms_as_a_matrix() -> None:
    x = _stream(2_750, 1_000, Regime(amount_mu=4.5), seed=51)
    times = np.arange(len(x)) * 7
    many = FeatureDriftDetector(FEATURES, window=250, reference_size=1_500, alpha=0.01)
    one = FeatureDriftDetector(FEATURES, window=250, reference_size=1_500, alpha=0.01)
    expected = many.update_many(x, times)
    got = [f for i, row in enumerate(x.tolist()) for f in one.update_one(row, int(times[i]))]
    assert got == expected and got != []
    assert one.summary() == many.summary()


def test_a_pickled_detector_is_sealed_and_changes_only_through_a_copy() -> None:
    det = FeatureDriftDetector(["x"], window=10, reference_size=20)
    det.update_one([1.0])
    blob = pickle.dumps(det)
    assert det.sealed
    copy = det.writable()
    assert copy is not det and not copy.sealed and copy.writable() is copy
    copy.update_one([2.0])
    assert (det.events_seen, copy.events_seen) == (1, 2)
    assert pickle.loads(blob).sealed and pickle.loads(blob).events_seen == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": []}, "features= must be a non-empty list"),
        ({"features": ["a", "a"]}, "names a field twice"),
        ({"alpha": 1.5}, "alpha must be in (0, 1)"),
        ({"window": 5}, "window must be >= 10"),
        ({"statistics": ["chi2"]}, "statistics must be among"),
        ({"after_drift": "reset"}, "after_drift must be"),
        ({"reference": {"a": [1.0] * 20}}, "reference has no column 'b'"),
        ({"reference": np.zeros((20, 3))}, "one column per feature (2)"),
        ({"reference": {"a": [1.0] * 5, "b": [1.0] * 5}}, "at least 10"),
    ],
)
def test_bad_settings_fail_with_one_line_that_says_what_to_fix(kwargs: dict[str, Any], message: str) -> None:
    args = {"features": ["a", "b"]} | kwargs
    with pytest.raises(ValueError) as e:
        FeatureDriftDetector(**args)
    assert message in str(e.value) and "\n" not in str(e.value)


# -- error-rate drift -------------------------------------------------------------------------------


def test_error_rate_jump_alarms_within_the_stated_delay_and_matches_fishers_test() -> None:
    rng = np.random.default_rng(61)
    change = 2_000 + 10 * 500 + 250
    outcomes = np.concatenate([rng.random(change) < 0.05, rng.random(5_000) < 0.20])
    det = ErrorRateDetector(window=500, reference_size=2_000, alpha=0.001)
    found = det.update_many(outcomes, times=np.arange(len(outcomes)))
    assert found and all(f.events_seen > change for f in found)
    f = found[0]
    assert f.events_seen - change <= STATED_DELAY * 500
    assert f.kind == "error" and f.statistic == "error_rate" and f.value >= f.threshold
    ref_errors, win_errors = f.evidence["reference_errors"], f.evidence["window_errors"]
    table = [[win_errors, 500 - win_errors], [ref_errors, 2_000 - ref_errors]]
    assert f.evidence["p_value"] == pytest.approx(
        stats.fisher_exact(table, alternative="greater").pvalue, rel=1e-9)
    assert f.evidence["p_value"] <= 0.001 and f.evidence["reference_rate"] == ref_errors / 2_000
    low, high = f.evidence["critical_errors"]  # of the reference it was tested against
    assert win_errors >= high and low == -1 and f.threshold == high / 500


def test_error_rate_false_alarms_on_stationary_outcomes_are_within_the_bound() -> None:
    rng = np.random.default_rng(62)
    det = ErrorRateDetector(window=200, reference_size=2_000, alpha=0.05, after_drift="keep",
                            alternative="two-sided")
    det.update_many(rng.random(202_000) < 0.05)
    assert det.windows_tested == 1_000
    assert check_false_alarms(det.windows_alarmed, det.windows_tested, 0.05).ok
    # an uncalibrated rule (alarm at 1.5x the reference's rate), said to mean 1 %, is caught
    rates = (rng.random((1_000, 200)) < 0.05).mean(axis=1)
    naive = int((rates > 1.5 * 0.05).sum())
    assert not check_false_alarms(naive, 1_000, 0.01).ok


def test_adwin_sees_the_jump_too() -> None:
    pytest.importorskip("river")
    rng = np.random.default_rng(63)
    outcomes = np.concatenate([rng.random(20_000) < 0.05, rng.random(5_000) < 0.20])
    found = AdwinErrorDetector().update_many(outcomes)
    assert found and found[0].events_seen > 20_000 and found[0].events_seen - 20_000 <= 1_000
    assert found[0].statistic == "adwin" and found[0].evidence["error_rate_after"] > 0.05


def test_outcomes_of_labelled_predictions() -> None:
    p = Prediction(event_id="e1", model="fraud", version=1, score=0.9, features={}, decision=None)
    (lp,) = join_labels([p], [Label("e1", 0.0)])
    assert outcome(lp) is True  # score 0.9 >= 0.5 says fraud, the label says not
    assert outcome(lp, threshold=0.95) is False
    nested = {"prediction": {"score": 0.1, "decision": True}, "label": 1.0}
    assert outcome(nested) is False  # the prediction's own decision wins
    assert outcome({"score": 0.2, "label": 1.0}, metric="fnr") is True
    assert outcome({"score": 0.2, "label": 0.0}, metric="fnr") is None
    assert outcome({"score": 0.7, "label": 0.0}, metric="fpr") is True
    assert isinstance(lp, LabelledPrediction)
    with pytest.raises(ValueError, match="needs a 'label' field"):
        outcome({"score": 0.2})
    with pytest.raises(TypeError, match="labelled predictions"):
        outcome(0.3)


def test_the_docstring_examples_run() -> None:
    import doctest

    from eventml.ml.drift import _error, _features, _psi, calibrate

    for module in (_psi, calibrate, _features, _error):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
