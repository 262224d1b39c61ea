"""Batched model inference on a stream: one feature matrix and one model call per micro-batch.

>>> from eventml.engine import App
>>> app = App("scoring", broker="memory://")
>>> tx = app.topic("tx")
>>> scored = predict(app.stream(tx), lambda x: x[:, 0] * 0.5, features=["amount"])
>>> [v["score"] for v in scored_values(scored, [{"amount": 1.0}, {"amount": 4.0}])]
[0.5, 2.0]

A model is anything with ``predict_batch(x) -> scores`` (:class:`ScoringModel`), a
scikit-learn classifier (``predict_proba``, the positive class's column), a plain
callable on a 2-D array, a loaded registry entry (``.model`` and ``.version`` with
``name``/``version``/``features``), or a string reference turned into one of these
by ``resolve`` or ``registry``.

If a batch fails, it is bisected: halves are scored recursively until the failing
events are isolated; the others keep their scores, and each failing event fails on
its own, with the model's own error, so the engine retries or dead-letters only it.

**Hot swap.** With ``registry=``, a reference ``name@alias`` follows the alias: when a
control event says it moved (:func:`eventml.ml.control.move_alias`), the scorer loads the
new version (cached) and uses it from its next batch on. A batch, and every retry of its
events, is scored by the versions current when it started.

**Shadow and canary.** ``shadow=`` scores every event too; its predictions are logged
(``role="shadow"``) and never put in the output. ``canary=`` (a :class:`Canary`) routes a
stable key-hash share of keys to a challenger whose score is acted on (``role="canary"``);
the primary model does not score those events.

**Prediction log.** With ``predictions=TOPIC`` every prediction (primary, canary, shadow)
is also a ``model.prediction`` event on that topic, written in the batch's transaction
(see :mod:`eventml.ml.predlog`), so any decision can be re-scored later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from eventml.ml._live import ControlSource
from eventml.ml._matrix import MissingFeature, MissingPolicy, feature_matrix
from eventml.ml._stats import InferenceStats, VersionStats
from eventml.ml.control import DEFAULT_WATCH_MS
from eventml.ml.records import PREDICTION_TYPE
from eventml.ml.rollout import Canary
from eventml.ml.scorer import (
    ContractMismatch,
    ControlUnavailable,
    Decision,
    FeatureMismatch,
    Resolve,
    Scorer,
    VersionOf,
    as_batch_model,
)

if TYPE_CHECKING:
    from eventml.deadletter.retry import RetryPolicy
    from eventml.engine.app import App, Stream
    from eventml.engine.graph import TopicRef

__all__ = [
    "Canary",
    "ContractMismatch",
    "ControlUnavailable",
    "Decision",
    "FeatureMismatch",
    "InferenceStats",
    "MissingFeature",
    "MissingPolicy",
    "Scorer",
    "VersionStats",
    "as_batch_model",
    "feature_matrix",
    "predict",
    "scored_values",
]


# -- the stream graph --------------------------------------------------------------------


def event_meta(value: Any, item: Any) -> tuple[Any, str, str | None, int, int]:
    """A value with what the scorer needs of its item: ``(value, event id, key, time,
    partition)`` (the partition of the record it came from, -1 if none)."""
    record = item.record
    return (value, item.id, item.key, item.time_ms, -1 if record is None else record.partition)


def acted_value(scored: tuple[Any, list[Any]]) -> Any:
    """The scored value (what the stream carries on)."""
    return scored[0]


def prediction_records(scored: tuple[Any, list[Any]]) -> list[Any]:
    """The event's prediction records, one slot per role (``None``: that role did not score)."""
    return scored[1]


def is_prediction(record: Any) -> bool:
    """Whether a prediction slot holds a record (a role that scored the event)."""
    return record is not None


class _AppBroker:
    """The app's broker URL, read when a worker starts (the app may be configured after build)."""

    def __init__(self, app: App) -> None:
        self.app = app

    def __call__(self) -> str:
        return self.app.broker


def predict(
    stream: Stream,
    model: Any,
    *,
    features: Sequence[str],
    output: str = "score",
    version_of: VersionOf | None = None,
    resolve: Resolve | None = None,
    missing: MissingPolicy = "nan",
    stats: InferenceStats | None = None,
    retry: RetryPolicy | None = None,
    one_thread: bool = True,
    registry: Any = None,
    shadow: Any = None,
    canary: Canary | tuple[Any, float] | None = None,
    predictions: str | TopicRef | None = None,
    decision: Decision | None = None,
    control: ControlSource | None = None,
    watch_every_ms: float = DEFAULT_WATCH_MS,
) -> Stream:
    """Score each micro-batch of ``stream`` (mapping values) with ``model``, once per batch.

    Each value becomes a copy with ``output`` set to its score and, if the model's version
    is known, ``model_version`` (``"name:version"`` for registry models); with
    ``decision`` also ``decision``. ``features`` are the value fields, in the model's column
    order; a missing field or ``None`` is NaN (``missing="nan"``) or fails the event
    (``"raise"``). A model that declares its features (``feature_names``,
    ``feature_names_in_``, or a registry version's ``features``) must declare these:
    otherwise :class:`FeatureMismatch` is raised here, naming the fields; so is a feature
    the source topic's data contract does not define (:class:`ContractMismatch`).
    ``version_of`` is the version label, or a function of the model giving it. Pass
    ``stats`` to read the calls' latency and batch sizes per model version. Failing events
    are isolated by bisecting the batch and go to the dead-letter topic alone (per ``retry``).

    ``registry`` (a :class:`~eventml.ml.ModelRegistry` or its directory) resolves string
    references: ``name@alias`` follows the alias through control events read from
    ``control`` (a log or URL; default the app's broker), looked at most every
    ``watch_every_ms``; ``name`` and ``name/3`` are fixed when the pipeline is built. (On an
    unnamed ``memory://`` broker, private to each opening, the alias is read from the
    registry at each look instead; pass ``control=`` the log to follow its events.)
    ``shadow``: a model (or reference) that scores every event too, logged only.
    ``canary``: a :class:`Canary`, or ``(model, fraction)``: that share of keys is scored
    and acted on by that model instead of ``model``. ``predictions``: a topic name (or
    :class:`~eventml.engine.TopicRef`) for the prediction log; by default it is created with
    the source topic's partitions, keyed like the events. ``decision``: a threshold
    (``score >= threshold``) or a function of the score, recorded with each prediction.

    Each prediction record's CloudEvent id is ``<event id>#<slot>``, the slot fixed by role
    (0 primary, 1 canary, 2 shadow): one id per (event, role) and so per (event, model).
    """
    _check_contract(stream, features)
    rollout = canary if canary is None or isinstance(canary, Canary) else Canary(*canary)
    scorer = Scorer(
        model, features=features, output=output, version_of=version_of, resolve=resolve,
        missing=missing, stats=stats, one_thread=one_thread, registry=registry, shadow=shadow,
        canary=rollout, decision=decision, predictions=predictions is not None,
        control=control if control is not None else _AppBroker(stream.app),
        watch_every_ms=watch_every_ms,
    )
    if not scorer.tagged:
        return stream.map_batch(scorer, retry=retry)
    scored = stream.map(event_meta, metadata=True).map_batch(scorer, retry=retry)
    if predictions is not None:
        records = scored.flat_map(prediction_records)
        if scorer.slots > 1:
            records = records.filter(is_prediction)
        records.to(_predictions_topic(stream, predictions))
    return scored.map(acted_value)


def _predictions_topic(stream: Stream, predictions: str | TopicRef) -> TopicRef:
    if not isinstance(predictions, str):
        return predictions
    declared = stream.app.topics.get(predictions)
    if declared is not None:
        return declared
    return stream.app.topic(predictions, partitions=_partitions_of(stream), event_type=PREDICTION_TYPE)


def _ancestors(stream: Stream) -> list[Any]:
    """The nodes from ``stream``'s up to its source, nearest first."""
    nodes = {n.id: n for n in stream.app.topology().nodes}
    out = []
    node = nodes.get(stream.node)
    while node is not None:
        out.append(node)
        node = nodes.get(node.parent) if node.parent is not None else None
    return out


def _partitions_of(stream: Stream) -> int:
    for node in _ancestors(stream):
        topic = getattr(node, "topic", None) or getattr(node, "repartition", None)
        if topic is not None and hasattr(topic, "partitions"):
            return int(topic.partitions)
    return 1


def _check_contract(stream: Stream, features: Sequence[str]) -> None:
    """Values straight from a source topic with a data contract: the fields must be in it."""
    from eventml.engine import graph as g

    for node in _ancestors(stream):
        if isinstance(node, g.Filter):
            continue
        if isinstance(node, g.Source) and node.topic.schema is not None:
            defined = _contract_fields(node.topic.schema)
            if defined is not None:
                missing = [f for f in features if f not in defined]
                if missing:
                    raise ContractMismatch(node.topic.name, missing, sorted(defined))
        return


def _contract_fields(contract: Any) -> set[str] | None:
    """Top-level field names a contract defines (None: cannot tell, e.g. ``$ref``)."""
    try:
        doc = orjson.loads(contract.text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    if contract.schema_type == "AVRO":
        fields = doc.get("fields") if doc.get("type") == "record" else None
        return {str(f.get("name")) for f in fields if isinstance(f, dict)} if isinstance(fields, list) else None
    props = doc.get("properties")
    return set(props) if isinstance(props, dict) else None


def scored_values(stream: Stream, values: list[Any]) -> list[Any]:
    """What the last operator of ``stream`` (a :func:`predict`) makes of ``values``,
    without running the engine: for examples and quick checks."""
    nodes = _ancestors(stream)
    fn = getattr(nodes[0], "fn", None) if nodes else None
    if fn is acted_value and len(nodes) > 1:
        fn = getattr(nodes[1], "fn", None)
    if not isinstance(fn, Scorer):
        raise TypeError(f"{stream!r} does not end with predict()")
    if not fn.tagged:
        return fn(values)
    tagged = [(v, f"value-{i}", None, 0, -1) for i, v in enumerate(values)]
    return [acted_value(r) for r in fn(tagged)]
