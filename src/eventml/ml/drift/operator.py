"""Drift detection on a stream: the detectors as keyed state of a pipeline, exactly-once.

``detect_drift(stream, model=..., features=[...])`` and
``detect_error_drift(labelled, model=...)`` add to the app::

    stream ─ map: the features (or the outcome) ─ key_by: the model (1 partition)
           ─ process: the detector, in keyed state ─ flat_map: its alarms ─ to: drift topic

All events of one model meet in one partition of a repartition topic, in one order, so
one detector sees them all (per-partition detectors would each see a share, and multiply
the false alarms). The detector is that key's state: it commits with the batch's outputs
and input offsets, so a crash or a refused commit replays the batch from the committed
detector, and each alarm is written once (its id derives from the event that closed the
window). Values are projected to the features before the repartition: a list of floats
per event crosses the log, not the whole event.

Costs: one more log write per event (the repartition topic), a per-event Python call,
and the detector pickled once per batch (``8 * features * (reference_size + window)``
bytes; on Kafka keep it under the broker's ``message.max.bytes``, 1 MB by default).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from eventml.ml.drift._error import (
    AdwinErrorDetector,
    Alternative,
    ErrorRateDetector,
    Metric,
    outcome,
)
from eventml.ml.drift._features import STATISTICS, AfterDrift, FeatureDriftDetector, Statistic
from eventml.ml.records import DRIFT_TYPE
from eventml.observe import _current

if TYPE_CHECKING:
    from eventml.deadletter.retry import RetryPolicy
    from eventml.engine.app import Stream
    from eventml.engine.graph import TopicRef
    from eventml.engine.items import Item
    from eventml.engine.state import KeyState

__all__ = ["detect_drift", "detect_error_drift"]

_STATE = "detector"


def detect_drift(
    stream: Stream,
    *,
    model: str,
    features: Sequence[str],
    reference: Any = None,
    window: int = 1_000,
    reference_size: int = 5_000,
    alpha: float = 1e-3,
    bins: int = 10,
    statistics: Sequence[Statistic] = STATISTICS,
    psi_threshold: float | None = None,
    after_drift: AfterDrift = "rebase",
    seed: int = 0,
    sample: float = 1.0,
    to: str | TopicRef | None = None,
    name: str | None = None,
    retry: RetryPolicy | None = None,
) -> Stream:
    """Test each window of ``window`` events of ``stream`` (mapping values) against a
    reference, per feature (PSI and KS); returns the stream of alarms, each a
    :class:`~eventml.ml.records.DriftDetected` as a dict, written to ``to`` if given (a
    topic name or ref; a new name is declared with CloudEvents type ``model.drift``).

    A field that is missing or ``None`` counts as missing (NaN); a value that is not a
    number fails the event (retried, then dead-lettered). ``alpha`` is the probability
    that a window of a stationary stream alarms: one false alarm per
    ``window / alpha`` events on average. The reference and the rest are as in
    :class:`FeatureDriftDetector` (built, and its thresholds calibrated, here). ``name``
    names the state store (``drift-<name>``, default the model's name): give two
    detectors of one model in one app different names.

    ``sample`` < 1 feeds the detector that share of the events, chosen by a hash of the
    event id (the same events on every run and replay): the cost per event shrinks in
    proportion, the calibration holds (the choice ignores the values), and delays in
    stream events grow by ``1 / sample``.
    """
    if not 0.0 < sample <= 1.0:
        raise ValueError(f"sample must be in (0, 1], got {sample}")
    detector = FeatureDriftDetector(
        features, reference=reference, model=model, window=window,
        reference_size=reference_size, alpha=alpha, bins=bins, statistics=statistics,
        psi_threshold=psi_threshold, after_drift=after_drift, seed=seed,
    )
    _check_name(model, name)
    if sample < 1.0:
        projected = stream.map(_Features(detector.features, sample), metadata=True, retry=retry)
        projected = projected.filter(_counted)
    else:
        projected = stream.map(_Features(detector.features), retry=retry)
    return _detect(projected, model, _Step(detector, name or model), f"drift-{name or model}", to)


def detect_error_drift(
    stream: Stream,
    *,
    model: str,
    metric: Metric = "error",
    threshold: float = 0.5,
    method: Literal["fisher", "adwin"] = "fisher",
    window: int = 500,
    reference_size: int = 2_000,
    reference: tuple[int, int] | None = None,
    alpha: float = 1e-3,
    alternative: Alternative = "greater",
    after_drift: AfterDrift = "rebase",
    delta: float = 0.002,
    to: str | TopicRef | None = None,
    name: str | None = None,
    retry: RetryPolicy | None = None,
) -> Stream:
    """Watch the error rate of labelled predictions (``LabelledPrediction`` values, their
    dict shape, or mappings with ``label`` and ``decision``/``score``): returns the stream
    of alarms (``kind="error"``), written to ``to`` if given.

    ``method="fisher"``: :class:`ErrorRateDetector`, windows of ``window`` outcomes
    against a reference period, a false-alarm probability of at most ``alpha`` per
    window. ``"adwin"``: :class:`AdwinErrorDetector` (river, ``delta``). ``metric`` says
    what an error is (``"error"``, ``"fnr"``: missed positives, ``"fpr"``), ``threshold``
    turns a score into a decision when the prediction has none.
    """
    if method == "fisher":
        detector: ErrorRateDetector | AdwinErrorDetector = ErrorRateDetector(
            model=model, window=window, reference_size=reference_size, reference=reference,
            alpha=alpha, alternative=alternative, after_drift=after_drift, metric=metric,
        )
    elif method == "adwin":
        detector = AdwinErrorDetector(model=model, delta=delta, metric=metric)
    else:
        raise ValueError(f"method must be 'fisher' or 'adwin', got {method!r}")
    _check_name(model, name)
    outcomes = stream.map(_Outcome(metric, threshold), retry=retry).filter(_counted)
    label = f"{name or model}-{metric}"
    return _detect(outcomes, model, _Step(detector, label), f"drift-{label}", to)


def _detect(stream: Stream, model: str, step: _Step, store: str, to: str | TopicRef | None) -> Stream:
    found = stream.key_by(_Model(model), partitions=1).process(step, state=store).flat_map(_each)
    if to is None:
        return found
    if isinstance(to, str):
        known = stream.app.topics.get(to)
        to = known if known is not None else stream.app.topic(to, event_type=DRIFT_TYPE)
    return found.to(to)


def _check_name(model: str, name: str | None) -> None:
    for what, value in (("model", model), ("name", name)):
        if value is not None and (not value or not all(c.isascii() and (c.isalnum() or c in "._-") for c in value)):
            raise ValueError(f"invalid {what} {value!r} for a drift detector: use [a-zA-Z0-9._-]")


class _Step:
    """The ``process`` function: the key's detector (copied once per batch, see
    :mod:`eventml.ml.drift._cow`) fed with one event; returns its alarms as dicts.

    Each tested window (and each alarm) is reported to the running worker's metrics, if
    any (:mod:`eventml.observe._current`), as detector ``name``."""

    def __init__(self, detector: FeatureDriftDetector | ErrorRateDetector | AdwinErrorDetector,
                 name: str = "") -> None:
        detector.seal()  # the template is never changed: each key starts from a copy
        self.template = detector
        self.name = name or detector.model
        self.__qualname__ = f"drift[{type(detector).__name__}]"

    def __call__(self, value: Any, state: KeyState) -> list[dict[str, Any]]:
        current = state.get(_STATE)
        detector = (self.template if current is None else current).writable()
        tested = getattr(detector, "windows_tested", 0)  # ADWIN has no windows: alarms only
        found = detector.update_one(value, state.time_ms)
        state[_STATE] = detector
        if found or getattr(detector, "windows_tested", 0) != tested:
            observer = _current.current()
            if observer is not None:
                observer.drift_window(detector.model, self.name, found)
        return [f.to_dict() for f in found]


class _Features:
    """Event value -> its feature values (floats; missing or None: NaN); with a
    ``sample`` share, called with the item too, and ``None`` for events left out."""

    def __init__(self, features: Sequence[str], sample: float = 1.0) -> None:
        self.features = tuple(features)
        self.cut = int(sample * 2**32)
        self.__qualname__ = f"drift_features{list(self.features)}"

    def __call__(self, value: Any, item: Item | None = None) -> list[float] | None:
        if item is not None and zlib.crc32(item.id.encode()) >= self.cut:
            return None
        if not isinstance(value, Mapping):
            raise TypeError(f"detect_drift needs mapping values (dicts), got {type(value).__name__}")
        out = []
        for f in self.features:
            v = value.get(f)
            out.append(math.nan if v is None else float(v))
        return out


class _Outcome:
    def __init__(self, metric: Metric, threshold: float) -> None:
        self.metric: Metric = metric
        self.threshold = threshold
        self.__qualname__ = f"drift_outcome[{metric}]"

    def __call__(self, value: Any) -> bool | None:
        return outcome(value, metric=self.metric, threshold=self.threshold)


class _Model:
    def __init__(self, model: str) -> None:
        self.model = model
        self.__qualname__ = f"model[{model}]"

    def __call__(self, value: Any) -> str:
        return self.model


def _counted(value: Any) -> bool:
    return value is not None


def _each(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return found
