"""The retraining job: a point-in-time training set replayed from the log, a fit, an
evaluation on the most recent part, a registered version and the ``challenger`` alias.

:func:`build_training_set` reads the source topic and the labels as they were at the
job's cut-off ``cutoff_ms`` (event time, exclusive) and nothing later:

* rows are the source's events dated before the cut-off (from ``start_ms``);
* a row's label is the earliest label for its event *known* before the cut-off
  (``Label.time_ms``: for a labels topic, the label event's time). A label that
  arrived later is not used (counted in ``labels_after_cutoff``): the job must not
  know what the world did not know yet;
* with ``unlabelled=None`` (labels of both classes arrive) the rows are the events
  with a label known then. With ``unlabelled`` set (e.g. 0.0 on a topic of positives
  only, such as chargebacks) the rows are the events at least ``label_wait_ms`` old
  at the cut-off, each with its known label or ``unlabelled``; younger events are left
  out *even when labelled*, since their unlabelled peers cannot be told apart from
  future positives yet, and keeping only their positives would skew the most recent
  rows (the holdout) toward positives;
* features are as of each event's time: a :class:`~eventml.features.FeatureView`'s
  values by point-in-time retrieval at ``(entity, event time)``, and
  :class:`EventFeatures` from the event itself, or from a function over the events
  in event-time order (a stateful extractor, which must only look back).

:func:`run_retraining` then holds out the most recent ``holdout`` share of the rows by event
time (never a random split: the model is judged on data newer than any it learned
from), calls ``train(x, y)``, scores the holdout through the flavor's save/load round
trip (what a worker will score), registers the version with its training range
(topic offsets read and times), features, metrics and reason, and points
``challenger`` at it, announcing the change on the log (:func:`eventml.ml.control.move_alias`).
The result says what every step cost.

Metrics (scikit-learn): ``average_precision`` (area under the precision-recall curve,
the one that matters when positives are rare), ``roc_auc``, ``log_loss`` and ``brier``
(calibration), and ``precision/recall_at_threshold`` at the decision threshold (the
job's, else the champion's ``threshold`` metric, else 0.5), which is registered too.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from eventml.events import Event
from eventml.features import FeatureView, get_historical_features
from eventml.log.base import Log
from eventml.ml import _alias
from eventml.ml._events import EventsError, read_events
from eventml.ml._events import label_from_event as label_from_event
from eventml.ml._matrix import feature_matrix
from eventml.ml.flavors import flavor_for
from eventml.ml.records import AliasChange, Label
from eventml.ml.registry import ModelRegistry, ModelVersion, RegistryError, TrainingRange
from eventml.ml.scorer import single_threaded

__all__ = [
    "EventFeatures",
    "RetrainError",
    "RetrainJob",
    "RetrainResult",
    "TrainingData",
    "TrainingSet",
    "build_training_set",
    "label_from_event",
    "run_retraining",
]

Train = Callable[[NDArray[np.float64], NDArray[np.float64]], object]


class RetrainError(ValueError):
    """The job cannot run as asked (no such topic, too few rows or labels...); one line."""


@dataclass(frozen=True)
class EventFeatures:
    """Features read from the events themselves.

    Without ``compute``, each name is a field of the event's data (missing → NaN).
    With it, ``compute(events)`` gets every source event before the cut-off in
    event-time order and returns one row per event (an array, or mappings with
    ``names`` as keys); row ``i`` must depend on events ``0..i`` only.
    """

    names: Sequence[str]
    compute: Callable[[Sequence[Event]], Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        if not self.names:
            raise ValueError("EventFeatures needs at least one feature name")

    def columns(self, events: Sequence[Event]) -> NDArray[np.float64]:
        if self.compute is None:
            return feature_matrix([e.data for e in events], self.names)
        out = self.compute(events)
        if len(out) and isinstance(out[0], Mapping):
            return feature_matrix(list(out), self.names)
        x = np.asarray(out, dtype=np.float64).reshape(len(out), -1)
        if x.shape != (len(events), len(self.names)):
            raise RetrainError(f"the feature function returned shape {x.shape} for {len(events)} "
                               f"events: want one row per event and {len(self.names)} columns")
        return x


Features = FeatureView | EventFeatures


@dataclass(frozen=True)
class TrainingData:
    """Where a training set comes from (see the module's docstring).

    ``labels``: a labels topic (each event read by ``label_of``, default
    :func:`label_from_event`) or :class:`~eventml.ml.records.Label` records.
    ``event_type``: keep only the source's events of this type.
    """

    source: str
    features: Sequence[Features]
    labels: str | Sequence[Label]
    label_of: Callable[[Event], Label | None] = label_from_event
    unlabelled: float | None = None
    label_wait_ms: int = 0
    event_type: str | None = None
    start_ms: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        if not self.features:
            raise ValueError("TrainingData needs at least one feature view or EventFeatures")
        names = self.feature_names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature names appear twice: {dupes}")
        if self.label_wait_ms < 0:
            raise ValueError(f"label_wait_ms must be >= 0, got {self.label_wait_ms}")

    @property
    def feature_names(self) -> list[str]:
        return [n for f in self.features for n in (f.feature_names if isinstance(f, FeatureView) else f.names)]


@dataclass(frozen=True)
class TrainingSet:
    """Rows in event-time order: features ``x``, labels ``y``, and where they came from."""

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    event_ids: tuple[str, ...]
    times_ms: NDArray[np.int64]
    features: tuple[str, ...]
    range: TrainingRange
    cutoff_ms: int
    labelled: int  # rows whose label was known before the cut-off
    defaulted: int  # rows given the ``unlabelled`` value
    waiting: int  # events left out: no label known, or (with ``unlabelled``) too recent
    labels_after_cutoff: int  # labels read that became known at or after the cut-off
    events_read: int

    def __len__(self) -> int:
        return len(self.y)

    def summary(self) -> dict[str, Any]:
        return {
            "rows": len(self), "positives": int((self.y > 0.5).sum()), "labelled": self.labelled,
            "defaulted": self.defaulted, "waiting": self.waiting,
            "labels_after_cutoff": self.labels_after_cutoff, "events_read": self.events_read,
            "cutoff_ms": self.cutoff_ms, "range": self.range.to_dict(),
        }


def known_labels(labels: Iterable[Label], cutoff_ms: int) -> tuple[dict[str, Label], int]:
    """Per event, the earliest label known before ``cutoff_ms``; and how many labels were
    known only at or after it (left out: the future)."""
    known: dict[str, Label] = {}
    later = 0
    for label in labels:
        if label.time_ms >= cutoff_ms:
            later += 1
            continue
        first = known.get(label.event_id)
        if first is None or label.time_ms < first.time_ms:
            known[label.event_id] = label
    return known, later


def _labels(log: Log, data: TrainingData, timeout_s: float) -> list[Label]:
    if not isinstance(data.labels, str):
        return list(data.labels)
    out = []
    for event in read_events(log, data.labels, timeout_s=timeout_s).events:
        label = data.label_of(event)
        if label is not None:
            out.append(label)
    return out


def view_columns(log: Log, view: FeatureView, events: Sequence[Event]) -> NDArray[np.float64]:
    """``view``'s values at each event's time for the event's entity (point in time)."""
    try:
        rows = [(view.key_of(e.data), e.time_ms) for e in events]
    except (KeyError, TypeError) as e:
        raise RetrainError(f"an event has no entity for view {view.name!r} ({e!r})") from None
    found = get_historical_features(log, view, rows)
    x = np.array([row[2:] for row in found.rows], dtype=np.float64)  # None -> nan
    return x.reshape(len(events), len(view.feature_names))


def build_training_set(
    log: Log,
    data: TrainingData,
    *,
    cutoff_ms: int,
    from_offsets: Mapping[int, int] | None = None,
    end_offsets: Mapping[int, int] | None = None,
    timeout_s: float = 120.0,
) -> TrainingSet:
    """The point-in-time training set of ``data`` at ``cutoff_ms`` (see the module's docstring).

    The source is read from ``from_offsets`` (default: its start) to ``end_offsets``
    (default: its end now). Run at the trigger's time, that is exactly what was known
    then; for an earlier cut-off, rows are kept by event time, and ``end_offsets``
    also cuts by position (an event dated before the cut-off but appended after it).
    """
    try:
        source = read_events(log, data.source, from_offsets=from_offsets,
                             end_offsets=end_offsets, timeout_s=timeout_s)
        labels = _labels(log, data, timeout_s)
    except EventsError as e:
        raise RetrainError(str(e)) from None
    known, later = known_labels(labels, cutoff_ms)
    history = sorted(
        (ev for ev in source.events
         if ev.time_ms < cutoff_ms and (data.event_type is None or ev.type == data.event_type)),
        key=lambda ev: ev.time_ms,
    )
    start = data.start_ms
    picked: list[int] = []
    ys: list[float] = []
    labelled = defaulted = waiting = 0
    for i, ev in enumerate(history):
        if start is not None and ev.time_ms < start:
            continue
        label = known.get(ev.id)
        if data.unlabelled is not None:
            if ev.time_ms + data.label_wait_ms > cutoff_ms:
                waiting += 1  # too recent to tell its label (labelled or not: see above)
                continue
            if label is None:
                defaulted += 1
                ys.append(data.unlabelled)
            else:
                labelled += 1
                ys.append(label.label)
        elif label is not None:
            labelled += 1
            ys.append(label.label)
        else:
            waiting += 1
            continue
        picked.append(i)
    rows = [history[i] for i in picked]
    parts: list[NDArray[np.float64]] = []
    for f in data.features if rows else ():
        if isinstance(f, FeatureView):
            parts.append(view_columns(log, f, rows))
        else:
            parts.append(f.columns(history)[picked] if f.compute is not None else f.columns(rows))
    names = tuple(data.feature_names)
    x = np.hstack(parts) if rows else np.empty((0, len(names)))
    times = np.array([e.time_ms for e in rows], dtype=np.int64)
    span = TrainingRange(
        topic=data.source, start_offsets=source.start_offsets, end_offsets=source.end_offsets,
        start_ms=start if start is not None else (int(times[0]) if len(times) else None),
        end_ms=cutoff_ms,
    )
    return TrainingSet(
        x=np.ascontiguousarray(x, dtype=np.float64), y=np.array(ys, dtype=np.float64),
        event_ids=tuple(e.id for e in rows), times_ms=times, features=names, range=span,
        cutoff_ms=cutoff_ms, labelled=labelled, defaulted=defaulted, waiting=waiting,
        labels_after_cutoff=later, events_read=source.records,
    )


@dataclass(frozen=True)
class RetrainJob:
    """What :func:`run_retraining` does: build ``data``'s training set, hold out the most recent
    ``holdout`` share by event time, fit ``train(x, y)``, register it as ``model``
    (``flavor``) and point ``alias`` at it. ``refit``: after the evaluation, fit again
    on every row and register that (the metrics are then the recipe's, on the holdout).
    ``threshold``: the decision threshold registered and evaluated (default: the
    champion's ``threshold`` metric, else 0.5)."""

    model: str
    data: TrainingData
    train: Train
    flavor: str = "sklearn"
    holdout: float = 0.2
    threshold: float | None = None
    refit: bool = False
    alias: str = "challenger"
    champion_alias: str = "champion"
    code_version: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.holdout < 1:
            raise ValueError(f"holdout must be a share between 0 and 1, got {self.holdout}")


@dataclass(frozen=True)
class RetrainResult:
    """The registered version, its holdout metrics, the champion's on the same rows (when
    it reads the same features), the alias change, and seconds per step."""

    version: ModelVersion
    metrics: Mapping[str, float]
    training: Mapping[str, Any]  # TrainingSet.summary()
    train_rows: int
    holdout_rows: int
    holdout_start_ms: int
    reason: str
    seconds: Mapping[str, float]
    alias_change: AliasChange | None = None
    champion: int | None = None
    champion_metrics: Mapping[str, float] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version.to_dict(), "metrics": dict(self.metrics),
            "training": dict(self.training), "train_rows": self.train_rows,
            "holdout_rows": self.holdout_rows, "holdout_start_ms": self.holdout_start_ms,
            "reason": self.reason, "seconds": dict(self.seconds),
            "alias_change": None if self.alias_change is None else self.alias_change.to_dict(),
            "champion": self.champion,
            "champion_metrics": None if self.champion_metrics is None else dict(self.champion_metrics),
            "notes": list(self.notes),
        }


def holdout_split(times_ms: NDArray[np.int64], share: float) -> int:
    """The first holdout row of rows sorted by time: the most recent ``share`` of them,
    moved forward past rows sharing the boundary time (no instant on both sides)."""
    n = len(times_ms)
    split = n - max(1, math.ceil(n * share))
    if split <= 0:
        return 0
    return int(np.searchsorted(times_ms, times_ms[split - 1], side="right"))


def score_metrics(y: NDArray[np.float64], scores: NDArray[np.float64], threshold: float) -> dict[str, float]:
    """Holdout metrics of binary labels ``y`` and scores (scikit-learn; see the module)."""
    from sklearn import metrics

    positives = y > 0.5
    alerts = scores >= threshold
    tp = float((alerts & positives).sum())
    out = {
        "rows": float(len(y)), "positives": float(positives.sum()), "threshold": float(threshold),
        "average_precision": float(metrics.average_precision_score(positives, scores)),
        "roc_auc": float(metrics.roc_auc_score(positives, scores)),
        "recall_at_threshold": tp / max(1.0, float(positives.sum())),
        "alert_rate": float(alerts.mean()),
    }
    if alerts.any():  # no alerts: no precision (NaN would not survive the registry's JSON)
        out["precision_at_threshold"] = tp / float(alerts.sum())
    if len(scores) and float(scores.min()) >= 0.0 and float(scores.max()) <= 1.0:  # probabilities
        out["log_loss"] = float(metrics.log_loss(positives, scores, labels=[False, True]))
        out["brier"] = float(metrics.brier_score_loss(positives, scores))
    return out


def _scorer(flavor: str, model: object, features: Sequence[str]) -> Any:
    """The model as a worker will score it: saved and loaded back by its flavor."""
    fl = flavor_for(flavor)
    with tempfile.TemporaryDirectory(prefix="eventml-retrain-") as tmp:
        saved = fl.save(model, Path(tmp))
        return fl.load(Path(tmp), features, saved.options)


def _score(scorer: Any, x: NDArray[np.float64]) -> NDArray[np.float64]:
    with single_threaded():
        return np.asarray(scorer.predict_batch(x), dtype=np.float64)


def _champion(
    registry: ModelRegistry, job: RetrainJob, features: Sequence[str]
) -> tuple[ModelVersion | None, str | None]:
    try:
        v = registry.resolve(f"{job.model}@{job.champion_alias}")
    except RegistryError:
        return None, None
    if tuple(v.features) != tuple(features):
        return v, f"champion {v.ref} reads other features {list(v.features)}: not scored on the holdout"
    return v, None


def run_retraining(
    job: RetrainJob,
    log: Log,
    registry: ModelRegistry,
    *,
    cutoff_ms: int,
    reason: str = "",
    announce: bool = True,
    from_offsets: Mapping[int, int] | None = None,
    end_offsets: Mapping[int, int] | None = None,
    timeout_s: float = 120.0,
) -> RetrainResult:
    """Run ``job`` in this process at cut-off ``cutoff_ms`` (e.g. a
    :class:`~eventml.ml.triggers.RetrainRequest`'s ``at_ms`` and ``reason``).

    ``announce``: move the alias through :func:`eventml.ml.control.move_alias` on
    ``log`` (workers switch); else in the registry only. Raises :class:`RetrainError`
    when the range holds too few rows or labels to train and evaluate on.
    """
    clock = time.perf_counter
    t0 = clock()
    ts = build_training_set(log, job.data, cutoff_ms=cutoff_ms, from_offsets=from_offsets,
                            end_offsets=end_offsets, timeout_s=timeout_s)
    t1 = clock()
    y = ts.y
    if not np.isin(y, (0.0, 1.0)).all():
        raise RetrainError("the retraining job evaluates binary labels (0 or 1): "
                           f"found {sorted(set(np.unique(y).tolist()) - {0.0, 1.0})[:5]}")
    split = holdout_split(ts.times_ms, job.holdout)
    for part, ys in (("training", y[:split]), ("holdout", y[split:])):
        if len(ys) == 0 or ys.min() == ys.max():
            raise RetrainError(
                f"the {part} part has {len(ys)} rows and {int(ys.sum())} positives: both classes are "
                f"needed ({ts.summary()['positives']} positives in {len(ts)} rows before the cut-off); "
                "widen the range, wait for more labels, or set unlabelled=")
    features = list(ts.features)
    fitted = job.train(ts.x[:split], y[:split])
    t2 = clock()
    scores = _score(_scorer(job.flavor, fitted, features), ts.x[split:])
    champion, note = _champion(registry, job, features)
    threshold = job.threshold
    if threshold is None:
        threshold = float(champion.metrics.get("threshold", 0.5)) if champion is not None else 0.5
    metrics = score_metrics(y[split:], scores, threshold)
    champion_metrics = None
    if champion is not None and note is None:
        champion_scores = _score(registry.load(champion.ref).model, ts.x[split:])
        champion_metrics = score_metrics(y[split:], champion_scores, threshold)
    t3 = clock()
    final = job.train(ts.x, y) if job.refit else fitted
    t4 = clock()
    when = f"cut-off {cutoff_ms}"
    description = f"retrained ({reason or 'by hand'}); {when}; labels from " + (
        job.data.labels if isinstance(job.data.labels, str) else "records")
    metrics = {**metrics, "train_rows": float(split), "refit": float(job.refit)}
    version = registry.register(
        job.model, final, flavor=job.flavor, features=features, metrics=metrics,
        training=ts.range, code_version=job.code_version, description=description,
    )
    change = _alias.move(registry, log if announce else None, job.model, job.alias,
                         version.version, reason or description)
    t5 = clock()
    seconds = {"build": t1 - t0, "train": (t2 - t1) + (t4 - t3), "evaluate": t3 - t2,
               "register": t5 - t4, "total": t5 - t0}
    return RetrainResult(
        version=registry.get(job.model, version.version), metrics=metrics, training=ts.summary(),
        train_rows=split, holdout_rows=len(y) - split, holdout_start_ms=int(ts.times_ms[split]),
        reason=reason, seconds=seconds, alias_change=change,
        champion=None if champion is None else champion.version, champion_metrics=champion_metrics,
        notes=() if note is None else (note,),
    )
