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
by ``resolve`` (e.g. a registry's ``load``).

If a batch fails, it is bisected: halves are scored recursively until the failing
events are isolated; the others keep their scores, and each failing event fails on
its own, with the model's own error, so the engine retries or dead-letters only it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from eventml.ml._matrix import MissingFeature, MissingPolicy, _row, feature_matrix
from eventml.ml._stats import InferenceStats, VersionStats
from eventml.ml.flavors import ScoringModel  # the one protocol, shared with the registry

if TYPE_CHECKING:
    from eventml.deadletter.retry import RetryPolicy
    from eventml.engine.app import Stream

__all__ = [
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

Scores = NDArray[np.float64]
BatchFn = Callable[[NDArray[np.float64]], Scores]
Resolve = Callable[[str], Any]
VersionOf = str | Callable[[Any], "str | None"]



class FeatureMismatch(ValueError):
    """The model's declared features differ from the ones the stream is asked to feed it."""

    def __init__(self, model: str, missing: Sequence[str], extra: Sequence[str]) -> None:
        self.missing = tuple(missing)
        self.extra = tuple(extra)
        parts = []
        if self.missing:
            parts.append(f"missing from features=: {', '.join(self.missing)}")
        if self.extra:
            parts.append(f"not known to the model: {', '.join(self.extra)}")
        super().__init__(
            f"model {model} was trained on other features ({'; '.join(parts)}): "
            "pass features= with exactly the model's feature names"
        )


class _Batch:
    """A batch's outcome after bisection, kept for the engine's one-event-at-a-time retry."""

    __slots__ = ("results",)

    def __init__(self) -> None:
        self.results: dict[int, tuple[Any, Any, BaseException | None]] = {}  # id -> (value, out, error)


class _BatchFailed(Exception):
    """Some events of the batch failed; the engine now asks for each event alone."""


class Scorer:
    """The runtime of :func:`predict`: called by the engine with a micro-batch of values,
    returns one new value per value (a copy with ``output`` and ``model_version`` set).

    ``stats`` (an :class:`InferenceStats`) records each model call's size and time under
    the model version. Model calls run with OpenMP limited to one thread unless
    ``one_thread=False``: workers are the unit of parallelism, one per core.
    """

    def __init__(
        self,
        model: Any,
        *,
        features: Sequence[str],
        output: str = "score",
        version_of: VersionOf | None = None,
        resolve: Resolve | None = None,
        missing: MissingPolicy = "nan",
        stats: InferenceStats | None = None,
        one_thread: bool = True,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        if isinstance(features, str) or not features:
            raise ValueError("features= must be a non-empty list of field names")
        if missing not in ("nan", "raise"):
            raise ValueError(f"missing must be 'nan' or 'raise', got {missing!r}")
        if len(set(features)) != len(features):
            raise ValueError(f"features= names a field twice: {list(features)}")
        loaded = _resolve(model, resolve)
        inner, meta = _unwrap(loaded)
        self.model = inner
        self.version = _version(loaded, inner, meta, version_of)
        self.label = f"{_describe(inner)}" + (f" {self.version}" if self.version else "")
        self.features = _check_features(self.label, inner, meta, features)
        self.output = output
        self.missing = missing
        self.stats = stats if stats is not None else InferenceStats()
        self._call = as_batch_model(inner)
        self._limit = _one_thread if one_thread else nullcontext
        self._timer = timer
        self._local = threading.local()
        self.__qualname__ = f"predict[{self.label}]"

    # -- the engine's map_batch function ------------------------------------------
    def __call__(self, values: list[Any]) -> list[Any]:
        known = self._known(values)
        if known is not None:
            return known
        self._local.batch = None
        n = len(values)
        try:
            x = feature_matrix(values, self.features, missing=self.missing)
            scores = self._score(x)
        except Exception:
            if n == 1:
                raise
            self._local.batch = self._bisect(values)
            raise _BatchFailed(f"{self.label}: some events of a batch of {n} failed") from None
        return self._outputs(values, scores)

    def _known(self, values: list[Any]) -> list[Any] | None:
        """The engine re-asks for the events of a failed batch (one at a time): answer from the
        bisection's outcome, each once (a retry of the same event calls the model again)."""
        batch: _Batch | None = getattr(self._local, "batch", None)
        if batch is None:
            return None
        found = []
        for v in values:
            r = batch.results.get(id(v))
            if r is None or r[0] is not v:
                return None
            found.append(r)
        out = []
        for v in values:
            del batch.results[id(v)]
        if not batch.results:
            self._local.batch = None
        for _, result, error in found:
            if error is not None:
                raise error
            out.append(result)
        return out

    def _score(self, x: NDArray[np.float64]) -> Scores:
        t0 = self._timer()
        with self._limit():
            scores = self._call(x)
        self.stats.record(self.version, len(x), self._timer() - t0)
        if scores.shape != (len(x),):
            raise ValueError(
                f"model {self.label} returned scores of shape {scores.shape} for {len(x)} rows: "
                "return one score per row"
            )
        return scores

    def _outputs(self, values: Sequence[Any], scores: Scores) -> list[Any]:
        output, version = self.output, self.version
        if version is None:
            return [{**v, output: s} for v, s in zip(values, scores.tolist(), strict=True)]
        return [
            {**v, output: s, "model_version": version}
            for v, s in zip(values, scores.tolist(), strict=True)
        ]

    def _bisect(self, values: list[Any]) -> _Batch:
        """Score the batch in halves, recursively, until each failure is one event."""
        batch = _Batch()
        calls = 0
        rows: list[int] = []
        cells: list[list[float]] = []
        for i, v in enumerate(values):  # events whose features cannot be read fail alone
            try:
                cells.append(_row(v, self.features, self.missing))
                rows.append(i)
            except Exception as e:
                batch.results[id(v)] = (v, None, e)
        x = np.asarray(cells, dtype=np.float64).reshape(len(rows), len(self.features))
        stack = [(0, len(rows))]
        while stack:
            lo, hi = stack.pop()
            if lo >= hi:
                continue
            calls += 1
            idx = rows[lo:hi]
            try:
                scores = self._score(x[lo:hi])
            except Exception as e:
                if hi - lo == 1:
                    v = values[idx[0]]
                    batch.results[id(v)] = (v, None, e)
                else:
                    mid = (lo + hi) // 2
                    stack += [(mid, hi), (lo, mid)]
                continue
            chunk = [values[i] for i in idx]
            for v, o in zip(chunk, self._outputs(chunk, scores), strict=True):
                batch.results[id(v)] = (v, o, None)
        failed = sum(1 for r in batch.results.values() if r[2] is not None)
        self.stats.record_failures(self.version, failed, calls)
        return batch

    def __repr__(self) -> str:
        return f"Scorer({self.label}, features={list(self.features)!r}, output={self.output!r})"


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
) -> Stream:
    """Score each micro-batch of ``stream`` (mapping values) with ``model``, once per batch.

    Each value becomes a copy with ``output`` set to its score and, if the model's version
    is known, ``model_version``. ``features`` are the value fields, in the model's column
    order; a missing field or ``None`` is NaN (``missing="nan"``) or fails the event
    (``"raise"``). A model that declares its features (``feature_names``,
    ``feature_names_in_``, or a registry version's ``features``) must declare these:
    otherwise :class:`FeatureMismatch` is raised here, naming the fields. ``version_of``
    is the version label, or a function of the model giving it. Pass ``stats`` to read the
    calls' latency and batch sizes per model version. Failing events are isolated by
    bisecting the batch and go to the dead-letter topic alone (per ``retry``).
    """
    scorer = Scorer(
        model, features=features, output=output, version_of=version_of, resolve=resolve,
        missing=missing, stats=stats, one_thread=one_thread,
    )
    return stream.map_batch(scorer, retry=retry)


def scored_values(stream: Stream, values: list[Any]) -> list[Any]:
    """What the last operator of ``stream`` (a :func:`predict`) makes of ``values``,
    without running the engine: for examples and quick checks."""
    node = next(n for n in stream.app.topology().nodes if n.id == stream.node)
    fn = getattr(node, "fn", None)
    if not isinstance(fn, Scorer):
        raise TypeError(f"{stream!r} does not end with predict()")
    return fn(values)


# -- models ----------------------------------------------------------------------------


def as_batch_model(model: Any) -> BatchFn:
    """``model`` as a function of a 2-D float64 array returning one float64 score per row."""
    if isinstance(model, ScoringModel):
        batch = model.predict_batch

        def call_batch(x: NDArray[np.float64]) -> Scores:
            return np.asarray(batch(x), dtype=np.float64).reshape(-1)

        return call_batch
    proba = getattr(model, "predict_proba", None)
    if callable(proba):

        def call_proba(x: NDArray[np.float64]) -> Scores:
            p = np.asarray(proba(x), dtype=np.float64)
            if p.ndim != 2 or p.shape[1] > 2:
                raise ValueError(
                    f"predict_proba returned shape {p.shape}: predict() scores binary "
                    "classifiers (the positive class); wrap others in predict_batch"
                )
            return p[:, -1]

        return call_proba
    if callable(model):

        def call_fn(x: NDArray[np.float64]) -> Scores:
            return np.asarray(model(x), dtype=np.float64).reshape(-1)

        return call_fn
    raise TypeError(
        f"cannot score with {type(model).__name__}: give an object with predict_batch(x) "
        "or predict_proba(x), or a function of a 2-D array"
    )


def _resolve(model: Any, resolve: Resolve | None) -> Any:
    if not isinstance(model, str):
        return model
    if resolve is None:
        raise ValueError(
            f"model {model!r} is a reference: pass resolve= (e.g. a model registry's load) "
            "to turn it into a model"
        )
    return resolve(model)


def _unwrap(loaded: Any) -> tuple[Any, Any]:
    """(the model, its registry version metadata or None) for a loaded registry entry:
    ``.model`` and a ``.version`` with a ``name`` (the entry scores itself if it can)."""
    inner = getattr(loaded, "model", None)
    meta = getattr(loaded, "version", None)
    if inner is not None and meta is not None and hasattr(meta, "name"):
        return (loaded if _scores_itself(loaded) else inner), meta
    return loaded, None


def _scores_itself(obj: Any) -> bool:
    return isinstance(obj, ScoringModel) or callable(getattr(obj, "predict_proba", None))


def _version(loaded: Any, inner: Any, meta: Any, version_of: VersionOf | None) -> str | None:
    if isinstance(version_of, str):
        return version_of
    if version_of is not None:
        v = version_of(loaded)
        return None if v is None else str(v)
    if meta is not None:
        name, number = getattr(meta, "name", None), getattr(meta, "version", None)
        if name is not None and number is not None:
            return f"{name}:{number}"
        if number is not None:
            return str(number)
    own = getattr(inner, "version", None)
    return str(own) if isinstance(own, (str, int)) else None


def _declared(inner: Any, meta: Any) -> tuple[str, ...] | None:
    for source, attr in ((meta, "features"), (inner, "feature_names"), (inner, "feature_names_in_")):
        names = getattr(source, attr, None) if source is not None else None
        if names is not None and not isinstance(names, str) and len(names) > 0:
            return tuple(str(n) for n in names)
    return None


def _check_features(label: str, inner: Any, meta: Any, features: Sequence[str]) -> tuple[str, ...]:
    """The feature order to use: the model's own if it declares the same names."""
    declared = _declared(inner, meta)
    if declared is None:
        return tuple(features)
    asked = set(features)
    missing = [f for f in declared if f not in asked]
    extra = [f for f in features if f not in set(declared)]
    if missing or extra:
        raise FeatureMismatch(label, missing, extra)
    return declared


def _describe(model: Any) -> str:
    name = getattr(model, "__qualname__", None) or type(model).__name__
    return str(name)


_CONTROLLER: Any = None


def _one_thread() -> AbstractContextManager[Any]:
    """OpenMP limited to the calling thread (threadpoolctl comes with scikit-learn);
    without threadpoolctl, nothing to limit."""
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
        except ImportError:
            _CONTROLLER = False
        else:
            _CONTROLLER = ThreadpoolController()
    if _CONTROLLER is False:
        return nullcontext()
    limit: AbstractContextManager[Any] = _CONTROLLER.limit(limits=1, user_api="openmp")
    return limit
