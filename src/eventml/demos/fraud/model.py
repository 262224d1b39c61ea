"""The fraud model: trained on a generated history with the serving feature function.

scikit-learn is an optional dependency (``eventml[ml]``), imported only when a
model is trained. The alert threshold is chosen on the history too: the model is
fitted on its first part and the threshold on the later part (out of time).

With a feature view (:func:`~eventml.demos.fraud.views.card_activity`) the model also
reads the view's values: for training they come from point-in-time retrieval
(:func:`~eventml.features.get_historical_features`) over the history put on a log,
for scoring from the same view materialized in the pipeline: one definition, and
the skew check proves both paths agree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from eventml.demos.fraud.events import transaction_event
from eventml.demos.fraud.features import FEATURE_NAMES, FeatureExtractor
from eventml.demos.fraud.generator import GeneratedTransactions
from eventml.events import to_message
from eventml.features import FeatureView, get_historical_features
from eventml.log import TopicSpec, open_log


class MissingDependency(ImportError):
    """An optional dependency is not installed; the message gives the install command."""


@dataclass(frozen=True, slots=True)
class Threshold:
    value: float
    precision: float  # on the validation part of the history
    recall: float


@dataclass(frozen=True, slots=True)
class FraudModel:
    """A fitted classifier over :data:`FEATURE_NAMES` and its alert threshold."""

    estimator: Any
    threshold: Threshold
    feature_names: tuple[str, ...] = FEATURE_NAMES
    view_features: tuple[str, ...] = ()  # of the card_activity view, after FEATURE_NAMES

    @property
    def name(self) -> str:
        return type(self.estimator).__name__

    def score_many(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Fraud probability per row (one batched ``predict_proba`` call)."""
        if len(features) == 0:
            return np.empty(0, dtype=np.float64)
        with _one_thread():
            proba = self.estimator.predict_proba(features)
        return np.asarray(proba[:, 1], dtype=np.float64)


def training_set(
    history: GeneratedTransactions, view: FeatureView | None = None
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Features (the serving feature function, in event order) and labels of ``history``;
    with ``view``, its values at each transaction (missing ones as NaN) as more columns."""
    x = FeatureExtractor().update_many(history.transactions)
    if view is not None:
        x = np.hstack([x, view_columns(history, view)])
    return x, history.labels


def view_columns(history: GeneratedTransactions, view: FeatureView) -> NDArray[np.float64]:
    """``view``'s values at each transaction of ``history``, by point-in-time retrieval:
    the history goes to a log (as the live stream does), each transaction is a row."""
    with open_log(f"memory://history-{uuid.uuid4().hex[:8]}") as log:
        log.create_topic(TopicSpec(view.source, partitions=4))
        txs = history.transactions
        for first in range(0, len(txs), 5000):
            log.append(view.source, [to_message(transaction_event(tx)) for tx in txs[first:first + 5000]])
        rows = get_historical_features(log, view, [(tx.card_id, tx.time_ms) for tx in txs], workers=1)
    out = np.array([row[2:] for row in rows.rows], dtype=np.float64)  # None -> nan
    return out.reshape(len(txs), len(view.feature_names))


def train_fraud_model(
    history: GeneratedTransactions,
    *,
    random_state: int = 0,
    validation_fraction: float = 0.25,
    target_precision: float = 0.9,
    view: FeatureView | None = None,
) -> FraudModel:
    """Fit on the first part of ``history``, choose the threshold on the rest; with
    ``view``, on its features too (see :func:`view_columns`)."""
    x, y = training_set(history, view)
    split = int(len(y) * (1 - validation_fraction))
    if y[:split].sum() == 0 or y[split:].sum() == 0:
        raise ValueError("the history holds too little fraud to train on: generate more events")
    view_features = tuple(view.feature_names) if view is not None else ()
    validation = np.arange(len(y)) >= split
    return fit_fraud_model(x, y, validation, random_state=random_state,
                           target_precision=target_precision, view_features=view_features)


def fit_fraud_model(
    x: NDArray[np.float64],
    y: NDArray[np.bool_],
    validation: NDArray[np.bool_],
    *,
    random_state: int = 0,
    target_precision: float = 0.9,
    view_features: tuple[str, ...] = (),
) -> FraudModel:
    """Fit on the rows of ``x`` not in ``validation``, choose the alert threshold on the
    others (the lowest with ``target_precision``). Columns: :data:`FEATURE_NAMES`, then
    ``view_features``."""
    estimator = fit_estimator(x[~validation], y[~validation], random_state=random_state)
    names = FEATURE_NAMES + view_features
    model = FraudModel(estimator, Threshold(0.5, float("nan"), float("nan")), names, view_features)
    threshold = choose_threshold(model.score_many(x[validation]), y[validation], target_precision)
    return FraudModel(estimator, threshold, names, view_features)


def fit_estimator(x: NDArray[np.float64], y: NDArray[Any], *, random_state: int = 0) -> Any:
    """The demo's classifier fitted on ``x`` and ``y`` (0/1 or booleans); the
    retraining job's ``train`` too."""
    estimator = _sklearn_ensemble().HistGradientBoostingClassifier(
        max_iter=60,  # 60 small trees score 4x faster than 200 larger ones, same precision/recall
        learning_rate=0.25,
        max_leaf_nodes=15,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=random_state,
    )
    with _one_thread():  # 0.23 s instead of 2.6-3.7 s with OpenMP's threads on 2 busy cores
        estimator.fit(x, np.asarray(y) > 0.5)
    return estimator


def choose_threshold(
    scores: NDArray[np.float64], labels: NDArray[np.bool_], target_precision: float
) -> Threshold:
    """The lowest threshold whose precision is >= ``target_precision`` (most recall);
    if none reaches it, the threshold with the best F1."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(np.float64)
    tp = np.cumsum(y)
    alerts = np.arange(1, len(y) + 1, dtype=np.float64)
    last_of_tie = np.r_[s[1:] != s[:-1], True]  # a threshold alerts on all equal scores
    precision = (tp / alerts)[last_of_tie]
    recall = (tp / max(1.0, float(y.sum())))[last_of_tie]
    candidates = s[last_of_tie]
    ok = np.flatnonzero(precision >= target_precision)
    if len(ok):
        i = int(ok[-1])
    else:
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        i = int(np.argmax(f1))
    return Threshold(float(candidates[i]), float(precision[i]), float(recall[i]))


def _one_thread() -> Any:
    """Score on the calling thread only. Workers are the unit of parallelism (one per
    core); OpenMP threads spinning beside them (and beside the worker's other threads)
    made small batches ~50x slower in measurements here."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]  # via scikit-learn

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="openmp")


_CONTROLLER: Any = None


def _sklearn_ensemble() -> Any:
    try:
        from sklearn import ensemble
    except ImportError as e:
        raise MissingDependency(
            f"the fraud demo's model needs scikit-learn ({e}): pip install 'eventml[ml]'"
        ) from None
    return ensemble
