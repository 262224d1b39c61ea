"""Online learning from delayed labels, on the stream engine, exactly-once.

Three pieces, each added to an :class:`~eventml.engine.App` by one function:

* :func:`label_join`: the prediction log (``model.prediction`` events) joined to a labels
  topic (e.g. ``card.chargeback`` events, days later) by event id, into a topic of
  :class:`~eventml.ml.records.LabelledPrediction` records (``<predictions>.labelled``,
  keyed by event id). Both sides go through one join topic keyed by event id, so a
  prediction and its label meet in one partition's state (see :mod:`eventml.ml._labels`
  for the outcome of each case: label first, duplicate label, no label ever).
  Negatives: card networks only report fraud, so a prediction whose event got no label
  within ``label_horizon_ms`` of event time is joined with ``negative_label`` (0.0),
  marked ``imputed``, as issuers close the chargeback window. Without a horizon there
  are no negatives: only the labels that come are joined.
* :func:`learn_online`: an online model (River, anything with ``learn_one(x, y)``) learns
  from the labelled predictions of one model: features from the prediction record, label
  from the join, each event once. Its checkpoint (the pickled model, the count learned, a
  digest of the event ids in order, the labelled offsets covered, its position in its own
  topic, below which nothing is learned again) is engine state, committed
  in the same transaction as the batch's offsets and outputs, so a crash neither loses nor
  repeats learning. :func:`read_checkpoint` reads it; snapshots go to the model registry
  every ``publish_every`` examples (``flavor="river"``) or on demand
  (:func:`publish_checkpoint`), where scorers load them like any version.
* :func:`progressive_metrics`: test-then-train metrics per model version from the same
  labelled predictions (the recorded score is the test: it was made before the label):
  counts, the confusion matrix at the recorded decision, log loss, windowed precision and
  recall, in a compacted topic (``<labelled>.metrics``) and :func:`read_progressive_metrics`.

Costs. The join keeps, per event id awaiting its label, the pending predictions (their
features included) until the label, the horizon or ``keep_ms`` (the state's time-to-live
in event time). The learner routes all of a model's examples to one partition (one key:
the learner's name), learns a micro-batch with the model it keeps in memory, and writes
one checkpoint per batch: one ``pickle.dumps`` of the model (a scaler and logistic
regression over 10 features: ~1.5 KB, ~25 µs) plus a state row of that size in the batch's
transaction. A dedup store keeps one small key per labelled event for ``dedup_ttl_ms``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventml.deadletter.retry import PermanentError
from eventml.engine import App, Item, KeyState, StoreRef, Stream, TopicRef
from eventml.engine import graph as g
from eventml.log.base import Log, LogError, TopicPartition
from eventml.ml._labels import JoinStats, identity, on_due, on_label, on_prediction
from eventml.ml._learner import PROTOCOL, LearnerCheckpoint, Learning, example_of
from eventml.ml._progressive import ProgressiveMetrics
from eventml.windows import Tumbling

__all__ = [
    "LABELLED_TYPE",
    "METRICS_TYPE",
    "JoinStats",
    "LabelJoin",
    "LearnerCheckpoint",
    "OnlineLearner",
    "ProgressiveMetrics",
    "label_join",
    "learn_online",
    "progressive_metrics",
    "publish_checkpoint",
    "read_checkpoint",
    "read_progressive_metrics",
]

LABELLED_TYPE = "model.labelled"
METRICS_TYPE = "model.metrics"
DAY_MS = 86_400_000


# -- the join ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LabelJoin:
    """What :func:`label_join` added: the labelled predictions' topic and its internals."""

    output: TopicRef  # LabelledPrediction.to_dict() values, keyed by event id
    topic: TopicRef  # the join topic: predictions, labels and horizon ticks, keyed by event id
    store: str
    label_horizon_ms: int | None
    stats: JoinStats = field(default_factory=JoinStats, compare=False)


def label_join(
    app: App,
    predictions: TopicRef | str,
    labels: TopicRef | str,
    *,
    output: str | None = None,
    event_id_of: str | Callable[[Any], Any] | None = None,
    label_of: str | float | Callable[[Any], Any] | None = None,
    label_horizon_ms: int | None = None,
    negative_label: float = 0.0,
    keep_ms: int | None = None,
    partitions: int | None = None,
) -> LabelJoin:
    """Join ``labels`` to the prediction log ``predictions`` by event id, in ``app``.

    A label event names the predicted event by ``event_id_of`` (a field, or a function of
    the event's data; default ``data["event_id"]``, else the event's ``subject``, as a
    ``card.chargeback`` has). Its value is ``label_of`` (a field, a constant such as
    ``1.0``, or a function; default ``data["label"]``, else 1.0: a topic of confirmed
    positives), known from ``data["time_ms"]`` if present, else the event time.

    The first label to arrive for an event wins (later ones are counted, not joined).

    ``label_horizon_ms``: a prediction still without a label once the predictions' event
    time (in its join partition) passed its time + horizon is joined with
    ``negative_label`` (``imputed=True``); a label arriving later is counted in
    ``stats.late_labels`` and joins nothing already decided. The clock is the predictions'
    time, so labels must not lag the predictions by more than the horizon minus their own
    delay: true of a live stream; for a backfill, append the labels first. ``keep_ms`` is the join state's time-to-live in event time (default: twice
    the horizon; none without a horizon, so pass one to bound the state). Events that are
    not predictions or labels of that shape are dead-lettered with the reason.
    """
    if label_horizon_ms is not None and label_horizon_ms < 1:
        raise ValueError(f"label_horizon_ms must be >= 1, got {label_horizon_ms}")
    if keep_ms is None and label_horizon_ms is not None:
        keep_ms = 2 * label_horizon_ms
    if keep_ms is not None and label_horizon_ms is not None and keep_ms <= label_horizon_ms:
        raise ValueError(f"keep_ms ({keep_ms}) must exceed label_horizon_ms ({label_horizon_ms}): "
                         "state dropped before the horizon loses the negatives")
    preds, labs = _declared(app, predictions), _declared(app, labels)
    name = output or f"{preds.name}.labelled"
    n = partitions or max(preds.partitions, labs.partitions)
    join = app.topic(f"{app.name}-{name}-join", partitions=n, key="e", time="t")
    out = app.topic(name, partitions=n, key=_labelled_event_id, event_type=LABELLED_TYPE)
    store = f"labeljoin-{name}"
    stats = JoinStats()

    app.stream(preds).map(_prediction_entry, metadata=True).to(join)
    app.stream(labs).map(_label_reader(event_id_of, label_of), metadata=True).to(join)

    def step(value: dict[str, Any], state: KeyState) -> list[dict[str, Any]]:
        kind = value["k"]
        if kind == "p":
            return on_prediction(state, value["p"], stats)
        if kind == "l":
            return on_label(state, float(value["l"]), int(value["t"]), stats)
        return on_due(state, value["i"], int(value["t"]), negative_label, stats)

    app.stream(join).process(step, state=StoreRef(store, ttl_ms=keep_ms)).flat_map(_same).to(out)
    if label_horizon_ms is not None:
        _horizon(app, join, name, label_horizon_ms)
    return LabelJoin(out, join, store, label_horizon_ms, stats)


def _horizon(app: App, join: TopicRef, name: str, horizon: int) -> None:
    """Horizon ticks: each prediction's identity comes back to the join, as a ``due`` entry,
    once the predictions' stream time reaches its time + horizon. A one-millisecond window
    per prediction closes exactly then (``end + grace``); one already past it is late for
    the window and comes back at once."""
    late = app.topic(f"{app.name}-{name}-late", partitions=join.partitions, key="e", time="t")

    def due(value: dict[str, Any], item: Item) -> dict[str, Any]:
        return {"k": "d", "e": item.key, "t": value["start_ms"] + horizon, "i": value["value"]}

    def due_now(value: dict[str, Any]) -> dict[str, Any]:
        return {"k": "d", "e": value["e"], "t": value["t"] + horizon, "i": [identity(value["p"])]}

    (app.stream(join).filter(_is_prediction)
        .window(Tumbling(size_ms=1), grace_ms=horizon - 1, emit="final", late_to=late,
                store=f"labeljoin-{name}-due")
        .aggregate(_Identities(), value=_identity_of)
        .map(due, metadata=True).to(join))
    app.stream(late).map(due_now).to(join)


def _prediction_entry(value: Any, item: Item) -> dict[str, Any]:
    """A ``model.prediction`` event's data (``Prediction.to_dict()``) as a join entry; the
    record is kept as it came (checked, not rebuilt: this runs for every prediction)."""
    try:
        event = str(value["event_id"])
        if not isinstance(value["model"], str) or not isinstance(value.get("features", {}), Mapping):
            raise TypeError("model must be a string and features a mapping")
        float(value["score"])
        if value.get("version") is not None:
            int(value["version"])
        t = int(value.get("time_ms") or 0) or item.time_ms
    except (KeyError, TypeError, ValueError) as e:
        raise PermanentError(f"not a prediction record (Prediction.to_dict()): {type(e).__name__}: {e}") from None
    return {"k": "p", "e": event, "t": t, "p": value}


def _label_reader(
    event_id_of: str | Callable[[Any], Any] | None, label_of: str | float | Callable[[Any], Any] | None
) -> Callable[[Any, Item], dict[str, Any]]:
    def read(value: Any, item: Item) -> dict[str, Any]:
        data: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
        if callable(event_id_of):
            event = event_id_of(value)
        elif event_id_of is not None:
            event = data.get(event_id_of)
        else:
            event = data.get("event_id", _subject(item))
        if event is None:
            raise PermanentError(f"label event {item.id} names no event: give data.event_id or a "
                                 "subject, or pass event_id_of= to label_join")
        if callable(label_of):
            label = label_of(value)
        elif isinstance(label_of, str):
            label = data.get(label_of)
        elif label_of is not None:
            label = label_of
        else:
            label = data.get("label", 1.0)
        try:
            t = int(data["time_ms"]) if "time_ms" in data else item.time_ms
            return {"k": "l", "e": str(event), "t": t, "l": float(label)}
        except (TypeError, ValueError) as e:
            raise PermanentError(f"label event {item.id}: bad label or time_ms ({e})") from None

    return read


def _subject(item: Item) -> str | None:
    if item.record is not None:
        for name, raw in item.record.headers:
            if name == "ce_subject":
                return raw.decode()
    return None


class _Identities:
    """Aggregator: the prediction identities in a window (a tuple, immutable)."""

    def initialize(self) -> tuple[str, ...]:
        return ()

    def add(self, acc: tuple[str, ...], value: str) -> tuple[str, ...]:
        return (*acc, value)

    def merge(self, a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
        return a + b

    def result(self, acc: tuple[str, ...]) -> list[str]:
        return list(acc)


def _is_prediction(value: Mapping[str, Any]) -> bool:
    return bool(value["k"] == "p")


def _identity_of(value: Mapping[str, Any]) -> str:
    return identity(value["p"])


def _labelled_event_id(value: Mapping[str, Any]) -> str:
    return str(value["prediction"]["event_id"])


def _same(values: list[Any]) -> list[Any]:
    return values


# -- learning ---------------------------------------------------------------------------

@dataclass(frozen=True)
class OnlineLearner:
    """What :func:`learn_online` added: where its checkpoint lives, and its batch stream."""

    name: str
    model: str
    app: str
    store: str
    topic: str  # the one-partition topic all its examples go through (its state follows it)
    labelled: str
    features: tuple[str, ...] | None
    stream: Stream = field(compare=False)
    """One JSON-ready summary per learned micro-batch, emitted before the batch commits:
    ``learner``, ``model``, ``learned`` (count so far), ``batch`` (examples in it),
    ``digest``, ``offsets``, ``time_ms``, ``features``."""


def learn_online(
    app: App,
    labelled: LabelJoin | TopicRef | str,
    *,
    model: str,
    initial: Any,
    name: str | None = None,
    roles: Sequence[str] = ("primary", "canary"),
    features: Sequence[str] | None = None,
    target: Callable[[float], Any] | None = None,
    dedup_ttl_ms: int = DAY_MS,
    publish_every: int | None = None,
    registry: Any = None,
    publish_as: str | None = None,
) -> OnlineLearner:
    """Learn ``initial`` (a River model, or any picklable object with ``learn_one(x, y)``)
    online from the labelled predictions of ``model`` whose role is in ``roles``.

    ``x`` is the prediction's features (``features`` only, if given; ``None`` values left
    out), ``y`` the label (``target(label)`` if given, e.g. ``bool``). Each event is learned
    once: a second labelled prediction of the same event (another version, a shadow) within
    ``dedup_ttl_ms`` of event time is skipped. The examples are learned in the order of the
    learner's one-partition topic; a ``learn_one`` failure stops the worker (nothing is
    skipped silently). With ``registry`` (a :class:`~eventml.ml.ModelRegistry` or its path)
    and ``publish_every``, a snapshot is registered as a new version of ``publish_as``
    (default ``model``) each time the count passes a multiple of ``publish_every``.
    """
    if not callable(getattr(initial, "learn_one", None)):
        raise TypeError(f"initial must have learn_one(x, y) (a River model), got {type(initial).__name__}")
    if publish_every is not None and publish_every < 1:
        raise ValueError(f"publish_every must be >= 1, got {publish_every}")
    if (registry is None) != (publish_every is None):
        raise ValueError("give both registry= and publish_every= to publish snapshots, or neither")
    try:
        initial_bytes = pickle.dumps(initial, PROTOCOL)
    except Exception as e:
        raise TypeError(f"initial model cannot be pickled ({type(e).__name__}: {e}): "
                        "the checkpoint is its pickle") from None
    src = _labelled_topic(app, labelled)
    name = name or f"{model}-online"
    feats = None if features is None else tuple(features)
    wanted = frozenset(roles)
    learning = Learning(name, model, initial_bytes, target=target, publish_every=publish_every,
                        features=feats)

    def selected(value: Mapping[str, Any]) -> bool:
        p = value["prediction"]
        return bool(p["model"] == model and p.get("role", "primary") in wanted)

    def example(value: Mapping[str, Any], item: Item) -> dict[str, Any]:
        r = item.record
        return example_of(value, -1 if r is None else r.partition, -1 if r is None else r.offset, feats)

    def first_time(ex: dict[str, Any], state: KeyState) -> dict[str, Any] | None:
        if state.get("s"):
            return None
        state["s"] = 1
        return ex

    keyed = (app.stream(src).filter(selected).map(example, metadata=True)
             .process(first_time, state=StoreRef(f"learner-{name}-seen", ttl_ms=dedup_ttl_ms))
             .filter(_not_none).key_by(_Constant(name), partitions=1))
    topic = _repartition_topic(app, keyed)
    store = f"learner-{name}"
    learned = (keyed.map(_with_position, metadata=True).map_batch(_all_on_last).filter(_not_none)
               .process(learning.learn, state=store))
    if registry is not None:
        learned.filter(_has_snapshot).sink(_Publisher(registry, publish_as or model, src.name))
    summaries = learned.map(_without_model)
    return OnlineLearner(name, model, app.name, store, topic, src.name, feats, summaries)


def read_checkpoint(log: Log, learner: OnlineLearner) -> LearnerCheckpoint | None:
    """The learner's committed checkpoint on ``log`` (``None`` before its first batch)."""
    from eventml.state import StateError, StoreSpec, backend_for

    try:
        store = backend_for(log).open(StoreSpec(learner.app, learner.store),
                                      TopicPartition(learner.topic, 0), None)
    except StateError:  # no changelog yet: the learner never ran
        return None
    state = store.get(learner.name)
    return None if state is None else LearnerCheckpoint.from_state(learner.name, learner.model, state)


def publish_checkpoint(
    registry: Any, checkpoint: LearnerCheckpoint, *, name: str | None = None,
    labelled: str | None = None,
) -> Any:
    """Register the checkpoint's model as the next version of ``name`` (default: the model
    it learns from), ``flavor="river"``, with ``learned_examples`` as a metric and the
    labelled offsets as its training range. Idempotent: a checkpoint already registered
    (same learner, count and digest) returns that version."""
    from eventml.ml.registry import ModelNotFound, ModelRegistry, TrainingRange

    reg = registry if isinstance(registry, ModelRegistry) else ModelRegistry(Path(registry))
    target = name or checkpoint.model
    description = (f"online learner {checkpoint.learner}: {checkpoint.learned} examples, "
                   f"digest {checkpoint.digest}")
    try:
        versions = reg.list_versions(target)
    except ModelNotFound:
        versions = []
    for v in versions:
        if v.description == description:
            return v
    return reg.register(
        target, checkpoint.load_model(), flavor="river", features=checkpoint.features,
        metrics={"learned_examples": float(checkpoint.learned)},
        training=TrainingRange(topic=labelled, end_offsets=dict(checkpoint.offsets),
                               end_ms=checkpoint.last_time_ms),
        description=description,
    )


class _Publisher:
    """The sink that registers due snapshots (called before the batch commits, so at least
    once: :func:`publish_checkpoint` makes a repeat a no-op)."""

    def __init__(self, registry: Any, name: str, labelled: str) -> None:
        self.registry, self.name, self.labelled = registry, name, labelled
        self._opened: Any = None

    def __call__(self, items: list[Item]) -> None:
        from eventml.ml.registry import ModelRegistry

        if self._opened is None:
            r = self.registry
            self._opened = r if isinstance(r, ModelRegistry) else ModelRegistry(Path(r))
        for it in items:
            v = it.value
            cp = LearnerCheckpoint(
                learner=v["learner"], model=v["model"], learned=v["learned"], digest=v["digest"],
                offsets=v["offsets"], last_time_ms=v["time_ms"], features=tuple(v["features"]),
                model_bytes=v["model_bytes"],
            )
            publish_checkpoint(self._opened, cp, name=self.name, labelled=self.labelled)


class _Constant:
    """A key function naming one key (picklable, unlike a lambda)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.__qualname__ = f"constant({key!r})"

    def __call__(self, value: Any) -> str:
        return self.key


def _with_position(example: dict[str, Any], item: Item) -> dict[str, Any]:
    """The example with its offset in the learner's topic: the checkpoint's position."""
    return {**example, "r": None if item.record is None else item.record.offset}


def _all_on_last(values: list[Any]) -> list[Any]:
    """The whole micro-batch on its last item (``None`` on the others): one learn call and
    one checkpoint per batch. The learner's topic has one key, so the batch is that key's."""
    out: list[Any] = [None] * len(values)
    out[-1] = list(values)
    return out


def _has_snapshot(summary: Mapping[str, Any]) -> bool:
    return "model_bytes" in summary


def _without_model(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "model_bytes"}


def _not_none(value: Any) -> bool:
    return value is not None


# -- progressive metrics ----------------------------------------------------------------

def progressive_metrics(
    app: App,
    labelled: LabelJoin | TopicRef | str,
    *,
    output: str | None = None,
    window: int = 1000,
    threshold: float = 0.5,
    partitions: int = 1,
) -> TopicRef:
    """Test-then-train metrics per (model, version) of the labelled predictions, written
    after each micro-batch to the compacted topic ``output`` (default
    ``<labelled>.metrics``) as :meth:`ProgressiveMetrics.to_dict` records keyed
    ``model/version``. ``window`` is the number of latest examples the windowed precision
    and recall cover; ``threshold`` decides for predictions that recorded no decision."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    src = _labelled_topic(app, labelled)
    name = output or f"{src.name}.metrics"
    out = app.topic(name, partitions=partitions, compact=True, key=_metrics_key,
                    event_type=METRICS_TYPE)

    def update(batch: list[Mapping[str, Any]], state: KeyState) -> dict[str, Any]:
        raw = state.get("m")
        if raw is None:
            p0 = batch[0]["prediction"]
            m = ProgressiveMetrics(p0["model"], p0.get("version"), window=window, threshold=threshold)
        else:
            m = ProgressiveMetrics.from_dict(raw)
        for v in batch:
            p = v["prediction"]
            m.update(float(p["score"]), p.get("decision"), float(v["label"]),
                     time_ms=int(v["label_time_ms"]), imputed=bool(v.get("imputed")))
        d = m.to_dict()
        state["m"] = d
        return d

    (app.stream(src).key_by(_version_key, partitions=partitions)
        .map_batch(_grouped_by_version).filter(_not_none)
        .process(update, state=f"progressive-{name}").to(out))
    return out


def read_progressive_metrics(
    log: Log, topic: str, *, timeout_s: float = 30.0
) -> dict[tuple[str, int | None], ProgressiveMetrics]:
    """The latest metrics per (model, version) in the metrics topic (empty if none yet)."""
    import orjson

    from eventml.state._tail import read_rows

    try:
        ends = log.end_offsets(topic)
        starts = log.start_offsets(topic)
    except LogError:
        return {}
    out: dict[tuple[str, int | None], ProgressiveMetrics] = {}
    for p, end in sorted(ends.items()):
        rows, _ = read_rows(log, TopicPartition(topic, p), timeout_s, starts[p], end)
        for _key, value, _headers in rows:
            if value is not None:
                m = ProgressiveMetrics.from_dict(orjson.loads(value))
                out[(m.model, m.version)] = m
    return out


def _version_key(value: Mapping[str, Any]) -> str:
    p = value["prediction"]
    return _metrics_key(p)


def _metrics_key(value: Mapping[str, Any]) -> str:
    version = value.get("version")
    return f"{value['model']}/{'' if version is None else version}"


def _grouped_by_version(values: list[Any]) -> list[Any]:
    """Each version's values of the batch, in order, on its last one (``None`` elsewhere)."""
    groups: dict[str, list[Any]] = {}
    last: dict[str, int] = {}
    for i, v in enumerate(values):
        k = _version_key(v)
        groups.setdefault(k, []).append(v)
        last[k] = i
    out: list[Any] = [None] * len(values)
    for k, i in last.items():
        out[i] = groups[k]
    return out


# -- helpers ----------------------------------------------------------------------------

def _declared(app: App, topic: TopicRef | str) -> TopicRef:
    if isinstance(topic, TopicRef):
        return topic
    return app.topics.get(topic) or app.topic(topic)


def _labelled_topic(app: App, labelled: LabelJoin | TopicRef | str) -> TopicRef:
    return labelled.output if isinstance(labelled, LabelJoin) else _declared(app, labelled)


def _repartition_topic(app: App, stream: Stream) -> str:
    for node in app.topology().nodes:
        if node.id == stream.node and isinstance(node, g.KeyBy):
            return node.repartition.name
    raise AssertionError(f"{stream.node} is not a key_by")  # pragma: no cover
