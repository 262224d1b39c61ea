"""The prediction log read back: every logged prediction, and a decision re-scored.

``stream.predict(..., predictions="predictions")`` writes one ``model.prediction`` event
per prediction (see :mod:`eventml.ml.inference`): the event id, the model's name and
registry version, the features as the model saw them (name → value; ``None`` for a
missing value, which the model saw as NaN), the score, the decision, the role, the
event's time and key. That is enough to re-score it: :func:`explain` loads the recorded
version from the registry, scores the recorded features and compares
(``eventml models explain EVENT_ID``).

Reading is bulk and group-free (Kafka: ``read_committed``, so only predictions of
committed batches), in chunks of offsets so memory stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from eventml.log import Log, TopicPartition
from eventml.log.base import UnknownTopic
from eventml.ml.records import Prediction

__all__ = [
    "DEFAULT_TOPIC",
    "PredictionLogError",
    "Rescored",
    "explain",
    "iter_prediction_rows",
    "iter_predictions",
    "read_predictions",
    "rescore",
]

#: The prediction log's topic when none is named (the CLI's default).
DEFAULT_TOPIC = "predictions"
#: Scores that differ by no more than this (relative) are the same up to float rounding:
#: a model may sum in another order for a batch of 1 than for a batch of 5,000.
TOLERANCE = 1e-9
_CHUNK = 50_000
_TIMEOUT_S = 60.0


class PredictionLogError(LookupError):
    """No such prediction topic, or no prediction for the event: one line, what to do."""


def iter_prediction_rows(log: Log, topic: str) -> Iterator[tuple[int, bytes]]:
    """``(partition, value)`` of every record of ``topic``, in partition order then log
    order (committed records only, on Kafka)."""
    from eventml.state._tail import read_rows

    try:
        starts, ends = log.start_offsets(topic), log.end_offsets(topic)
    except UnknownTopic:
        raise PredictionLogError(
            f"no topic {topic!r} on this log: name the prediction log with --predictions "
            "(the predictions= of stream.predict)"
        ) from None
    for partition in sorted(ends):
        tp = TopicPartition(topic, partition)
        position, end = starts.get(partition, 0), ends[partition]
        while position < end:
            stop = min(position + _CHUNK, end)
            rows, reached = read_rows(log, tp, _TIMEOUT_S, position, stop)
            for _key, value, _headers in rows:
                if value is not None:
                    yield partition, value
            if reached <= position:
                break  # the rest is not committed yet (a transaction in flight)
            position = reached


def iter_predictions(log: Log, topic: str = DEFAULT_TOPIC, *, event_id: str | None = None
                     ) -> Iterator[Prediction]:
    """Every prediction on ``topic`` (or only those of ``event_id``), partition by partition
    in log order, decoded one at a time (a million records need no million objects).

    Offsets are not positions of events (Kafka puts transaction markers between batches),
    so use the records' ``event_id`` to relate a prediction to its event."""
    needle = orjson.dumps(event_id) if event_id is not None else None
    for _partition, value in iter_prediction_rows(log, topic):
        if needle is not None and needle not in value:
            continue
        try:
            p = Prediction.from_dict(orjson.loads(value))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # not a prediction record
        if event_id is None or p.event_id == event_id:
            yield p


def read_predictions(log: Log, topic: str = DEFAULT_TOPIC, *, event_id: str | None = None
                     ) -> list[Prediction]:
    """:func:`iter_predictions` as a list."""
    return list(iter_predictions(log, topic, event_id=event_id))


@dataclass(frozen=True)
class Rescored:
    """A logged prediction and its score recomputed now (``None``: see ``problem``)."""

    prediction: Prediction
    rescored: float | None
    problem: str | None = None

    @property
    def difference(self) -> float | None:
        if self.rescored is None:
            return None
        return abs(self.rescored - self.prediction.score)

    @property
    def identical(self) -> bool:
        return self.rescored is not None and self.rescored == self.prediction.score

    @property
    def same(self) -> bool:
        """Identical, or equal up to float rounding (:data:`TOLERANCE`, relative)."""
        if self.rescored is None:
            return False
        return math.isclose(self.rescored, self.prediction.score, rel_tol=TOLERANCE, abs_tol=1e-12)

    def to_dict(self) -> dict[str, Any]:
        p = self.prediction
        return {
            "event_id": p.event_id, "model": p.model, "version": p.version, "role": p.role,
            "recorded_score": p.score, "rescored": self.rescored, "same": self.same,
            "identical": self.identical, "difference": self.difference,
            "decision": p.decision, "features": dict(p.features), "time_ms": p.time_ms,
            "key": p.key, "problem": self.problem,
        }


def rescore(registry: Any, prediction: Prediction) -> Rescored:
    """Score ``prediction``'s recorded features with its recorded version, from ``registry``."""
    from eventml.ml.registry import RegistryError
    from eventml.ml.scorer import as_batch_model, single_threaded

    p = prediction
    if p.version is None:
        return Rescored(p, None, f"{p.model} has no registry version: it cannot be loaded again")
    try:
        loaded = registry.load(f"{p.model}/{p.version}")
    except (RegistryError, ImportError, OSError, ValueError) as e:
        return Rescored(p, None, f"cannot load {p.model}/{p.version}: {e}")
    order = tuple(loaded.version.features) or tuple(p.features)
    missing = [f for f in order if f not in p.features]
    if missing:
        return Rescored(p, None, f"the record lacks features {', '.join(missing)} of {p.model}/{p.version}")
    x = np.asarray([[_number(p.features[f]) for f in order]], dtype=np.float64)
    try:
        with single_threaded():
            score = float(as_batch_model(loaded)(x)[0])
    except Exception as e:
        return Rescored(p, None, f"{p.model}/{p.version} failed to score the record: {type(e).__name__}: {e}")
    return Rescored(p, score)


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def explain(log: Log, registry: Any, event_id: str, *, topic: str = DEFAULT_TOPIC) -> list[Rescored]:
    """Each prediction logged for ``event_id`` on ``topic``, re-scored; raises
    :class:`PredictionLogError` if the topic or the event's predictions are missing."""
    found = read_predictions(log, topic, event_id=event_id)
    if not found:
        raise PredictionLogError(f"no prediction for event {event_id!r} on topic {topic!r}")
    return [rescore(registry, p) for p in found]
