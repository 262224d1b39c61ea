"""Fraud detection on card transactions: ``eventml demo fraud``.

A seeded generator of card transactions with injected fraud
(:func:`generate_transactions`) feeds the ``transactions`` topic, keyed by card;
a consumer computes per-card rolling features (:class:`FeatureExtractor`), scores
each batch with a scikit-learn model trained on a separately generated history
(:func:`train_demo_model`), and appends ``fraud.alert`` events to ``fraud-alerts``.
:func:`run_fraud_demo` runs it all on any :class:`~eventml.log.Log` and evaluates
the alerts against the generator's ground truth.

With ``lifecycle=True`` (:func:`run_lifecycle`) the model is ``fraud@champion`` in a
model registry, shadowed by ``fraud@challenger``: fraudsters change tactics mid-stream
(:class:`DriftScenario`), chargebacks arrive days later during the stream, a drift alarm
on the champion's miss rate launches a retraining from the log, and the promotion
policy promotes the challenger on the shadow's evidence.
"""

from eventml.demos.fraud.features import FEATURE_NAMES, FeatureExtractor
from eventml.demos.fraud.generator import (
    GeneratedTransactions,
    GeneratorConfig,
    generate_transactions,
)
from eventml.demos.fraud.lifecycle import LifecycleConfig, run_lifecycle
from eventml.demos.fraud.model import FraudModel, MissingDependency, train_fraud_model
from eventml.demos.fraud.result import FraudDemoResult
from eventml.demos.fraud.run import run_fraud_demo, train_demo_model
from eventml.demos.fraud.scenario import DriftScenario
from eventml.demos.fraud.transaction import Transaction

__all__ = [
    "FEATURE_NAMES",
    "DriftScenario",
    "FeatureExtractor",
    "FraudDemoResult",
    "FraudModel",
    "GeneratedTransactions",
    "GeneratorConfig",
    "LifecycleConfig",
    "MissingDependency",
    "Transaction",
    "generate_transactions",
    "run_fraud_demo",
    "run_lifecycle",
    "train_demo_model",
    "train_fraud_model",
]
