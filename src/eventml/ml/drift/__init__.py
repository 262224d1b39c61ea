"""Drift detection: feature distributions and error rates, calibrated to a false-alarm rate.

Pure cores (numpy, scipy; river for ADWIN) behind thin stream adapters:

- :func:`detect_drift` / :class:`FeatureDriftDetector`: each tumbling window of events
  against a reference, per feature, with PSI (quantile bins, missing values binned) and
  the two-sample KS test;
- :func:`detect_error_drift` / :class:`ErrorRateDetector` (Fisher's exact test per
  window) and :class:`AdwinErrorDetector` (river's ADWIN): the error rate of labelled
  predictions;
- :mod:`eventml.ml.drift.calibrate`: thresholds for a stated false-alarm probability per
  window (``alpha``; :func:`alpha_for_run_length` turns "one false alarm per N events"
  into it) and :func:`check_false_alarms`, the verdict on alarms counted on stationary
  data.

Every alarm is a :class:`~eventml.ml.records.DriftDetected` (``model.drift``) with its
evidence. On a stream::

    from eventml.ml import detect_drift
    detect_drift(app.stream(tx), model="fraud", features=["amount", "hour"],
                 reference=training_frame, to="model.drift")
"""

from eventml.ml.drift._error import (
    AdwinErrorDetector,
    Alternative,
    ErrorRateDetector,
    Metric,
    outcome,
)
from eventml.ml.drift._features import AfterDrift, FeatureDriftDetector, Statistic
from eventml.ml.drift._psi import bin_counts, psi, quantile_edges
from eventml.ml.drift._reference import FeatureReference
from eventml.ml.drift.calibrate import (
    FalseAlarmCheck,
    PsiThreshold,
    alpha_for_run_length,
    check_false_alarms,
    ks_threshold,
    per_test_alpha,
    psi_threshold,
)
from eventml.ml.drift.operator import detect_drift, detect_error_drift

__all__ = [
    "AdwinErrorDetector",
    "AfterDrift",
    "Alternative",
    "ErrorRateDetector",
    "FalseAlarmCheck",
    "FeatureDriftDetector",
    "FeatureReference",
    "Metric",
    "PsiThreshold",
    "Statistic",
    "alpha_for_run_length",
    "bin_counts",
    "check_false_alarms",
    "detect_drift",
    "detect_error_drift",
    "ks_threshold",
    "outcome",
    "per_test_alpha",
    "psi",
    "psi_threshold",
    "quantile_edges",
]
