"""The scorer behind :func:`eventml.ml.inference.predict`: one feature matrix and one
model call per micro-batch, the versions it follows (hot swap), shadow and canary routing,
bisection of a failing batch, and the adapters that turn a model of any flavour into a
function of a 2-D array (:func:`as_batch_model`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from eventml.deadletter.retry import FatalError
from eventml.ml._live import Control, ControlSource, Fixed, Followed, ReadyModel
from eventml.ml._matrix import MissingPolicy, _row, feature_matrix
from eventml.ml._stats import InferenceStats
from eventml.ml.control import DEFAULT_WATCH_MS
from eventml.ml.flavors import ScoringModel  # the one protocol, shared with the registry
from eventml.ml.rollout import Canary, canary_share
from eventml.observe import _current

if TYPE_CHECKING:
    pass


Scores = NDArray[np.float64]
BatchFn = Callable[[NDArray[np.float64]], Scores]
Resolve = Callable[[str], Any]
VersionOf = str | Callable[[Any], "str | None"]
Decision = float | Callable[[float], bool]
"""A threshold (``score >= threshold`` decides yes) or a function of the score."""

# the place of each role's record in a scored event's list of predictions (see predict)
_SLOTS = {"primary": 0, "canary": 1, "shadow": 2}


class FeatureMismatch(ValueError):
    """The model's declared features differ from the ones the stream is asked to feed it."""

    def __init__(self, model: str, missing: Sequence[str], extra: Sequence[str],
                 hint: str = "pass features= with exactly the model's feature names") -> None:
        self.missing = tuple(missing)
        self.extra = tuple(extra)
        parts = []
        if self.missing:
            parts.append(f"missing from features=: {', '.join(self.missing)}")
        if self.extra:
            parts.append(f"not known to the model: {', '.join(self.extra)}")
        super().__init__(f"model {model} was trained on other features ({'; '.join(parts)}): {hint}")


class ContractMismatch(FeatureMismatch):
    """``features=`` names fields that the source topic's data contract does not define."""

    def __init__(self, topic: str, missing: Sequence[str], defined: Sequence[str]) -> None:
        ValueError.__init__(
            self,
            f"features= names fields that topic {topic!r}'s data contract does not define: "
            f"{', '.join(missing)} (it defines: {', '.join(defined) or 'none'})",
        )
        self.missing = tuple(missing)
        self.extra = ()


class ControlUnavailable(FatalError):
    """The control topic or the registry cannot be read, so the alias's current version is
    unknown: the worker stops (a restart retries) rather than score with a stale version."""


class _Batch:
    """A batch's outcome after bisection, kept for the engine's one-event-at-a-time retry."""

    __slots__ = ("results",)

    def __init__(self) -> None:
        self.results: dict[int, tuple[Any, Any, BaseException | None]] = {}  # id -> (value, out, error)


class _BatchFailed(Exception):
    """Some events of the batch failed; the engine now asks for each event alone."""


class _Models(NamedTuple):
    """The versions that score one batch (and every retry of its events)."""

    primary: ReadyModel
    canary: ReadyModel | None
    shadow: ReadyModel | None


def _models(primary: ReadyModel, canary: ReadyModel | None, shadow: ReadyModel | None) -> _Models:
    """A shadow naming the primary's own version (``challenger`` and ``champion`` on the
    same version, as before a first retraining or right after a promotion) has nothing to
    compare: it is not scored, so the log holds no copy of the primary's predictions."""
    if (shadow is not None and shadow.number is not None and shadow.name == primary.name
            and shadow.number == primary.number):
        shadow = None
    return _Models(primary, canary, shadow)


class _Pin:
    """The last batch's values and models: an event of it asked again (the engine's
    per-event retry) is scored by the same versions, even if the alias moved since."""

    __slots__ = ("_ids", "models", "values")

    def __init__(self, values: list[Any], models: _Models) -> None:
        self.values = values
        self.models = models
        self._ids: dict[int, Any] | None = None

    def holds(self, values: list[Any]) -> bool:
        if not values or len(values) > len(self.values):
            return False
        if self._ids is None:
            self._ids = {id(v): v for v in self.values}
        ids = self._ids
        return all(ids.get(id(v)) is v for v in values)


class Scorer:
    """The runtime of :func:`predict`: called by the engine with a micro-batch of values,
    returns one new value per value (a copy with ``output`` and ``model_version`` set).

    ``stats`` (an :class:`InferenceStats`) records each model call's size and time under
    the model version. Model calls run with OpenMP limited to one thread unless
    ``one_thread=False``: workers are the unit of parallelism, one per core.

    Tagged (what :func:`predict` uses for a prediction log, a canary or a followed alias;
    ``tagged=None`` decides from those) each value is ``(value, event_id, key, time_ms,
    partition)`` (see :func:`event_meta`) and each result ``(output, predictions)``,
    ``predictions`` being one slot per role (primary, canary, shadow; ``None`` where that
    role did not score the event), each a :class:`~eventml.ml.records.Prediction` as a dict
    (empty without ``predictions=True``).
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
        registry: Any = None,
        shadow: Any = None,
        canary: Canary | None = None,
        decision: Decision | None = None,
        predictions: bool = False,
        tagged: bool | None = None,
        control: ControlSource | None = None,
        watch_every_ms: float = DEFAULT_WATCH_MS,
    ) -> None:
        if isinstance(features, str) or not features:
            raise ValueError("features= must be a non-empty list of field names")
        if missing not in ("nan", "raise"):
            raise ValueError(f"missing must be 'nan' or 'raise', got {missing!r}")
        if len(set(features)) != len(features):
            raise ValueError(f"features= names a field twice: {list(features)}")
        if decision is not None and (isinstance(decision, bool) or not (
                callable(decision) or isinstance(decision, (int, float)))):
            raise ValueError(f"decision= must be a threshold or a function of the score, got {decision!r}")
        self.registry = _open_registry(registry)
        if self.registry is not None and resolve is None:
            resolve = self.registry.load
        self._resolve_ref = resolve
        self._control_source = control
        self.output = output
        self.missing = missing
        self.decision = decision
        self.predictions = predictions
        self.canary = canary
        self.slots = 3 if shadow is not None else 2 if canary is not None else 1
        self.stats = stats if stats is not None else InferenceStats()
        self._limit = single_threaded if one_thread else nullcontext
        self._timer = timer
        self._local = threading.local()
        self._lock = threading.Lock()

        self.features = tuple(features)
        self._built = False  # until the primary model fixed the column order
        self._primary = self._source(model, primary=True, version_of=version_of)
        self._built = True
        self._canary = None if canary is None else self._source(canary.model)
        self._shadow = None if shadow is None else self._source(shadow)
        followed = [s for s in (self._primary, self._canary, self._shadow) if isinstance(s, Followed)]
        self._control = None
        if followed:
            assert control is not None
            self._control = Control(control, followed, watch_every_ms)
        self.tagged = (predictions or canary is not None or bool(followed)) if tagged is None else tagged
        if (canary is not None or predictions) and not self.tagged:
            raise ValueError("a canary and a prediction log need tagged values (tagged=True)")
        self._since_look: set[int] = set()  # partitions scored since the control topic was read
        self._fixed = _models(self._primary.model, _model_of(self._canary), _model_of(self._shadow))
        self.model = self._inner  # the primary model object at build time
        self.label = self._describe_primary()
        self.__qualname__ = f"predict[{self.label}]"

    # -- models ---------------------------------------------------------------------
    def _source(self, model: Any, *, primary: bool = False, version_of: VersionOf | None = None
                ) -> Fixed | Followed:
        if isinstance(model, str) and self.registry is not None and self._control_source is not None:
            from eventml.ml.registry import InvalidModelName, parse_ref

            try:
                ref = parse_ref(model)
            except InvalidModelName:  # not ours to follow (e.g. an MLflow models:/ reference)
                ref = None
            if ref is not None and ref.alias is not None:
                return Followed(self.registry, ref.name, ref.alias,
                                lambda loaded: self._ready(loaded, primary=primary))
        loaded = _resolve(model, self._resolve_ref)
        ready = self._ready(loaded, version_of=version_of, primary=primary)
        return Fixed(ready)

    def _ready(self, loaded: Any, *, version_of: VersionOf | None = None, primary: bool = False
               ) -> ReadyModel:
        """``loaded`` ready to score this stream's feature matrix (its columns picked).

        The first primary model must declare exactly ``features=`` (in any order: its order
        becomes the matrix's); any other model, or a later version of a followed primary,
        must declare a subset of them (its columns are picked from the matrix)."""
        inner, meta = _unwrap(loaded)
        label = _version(loaded, inner, meta, version_of)
        name = str(getattr(meta, "name", None) or _describe(inner))
        number = getattr(meta, "version", None) if meta is not None else None
        described = _describe(inner) + (f" {label}" if label else "")
        declared = _declared(inner, meta)
        if primary and not self._built:
            self._inner = inner
            self.features = _check_features(described, inner, meta, self.features)
            features, cols = self.features, None
        elif declared is None:
            features, cols = self.features, None
        else:
            missing = [f for f in declared if f not in self.features]
            if missing:
                raise FeatureMismatch(described, missing, [], "a shadow, a canary or a new "
                                      "version of an alias may only use fields of features=")
            features = declared
            order = tuple(self.features.index(f) for f in declared)
            cols = None if order == tuple(range(len(self.features))) else order
        return ReadyModel(as_batch_model(inner), label, name,
                          None if number is None else int(number), features, cols)

    def _describe_primary(self) -> str:
        p = self._primary
        if isinstance(p, Followed):
            return p.ref
        return _describe(self._inner) + (f" {p.model.label}" if p.model.label else "")

    @property
    def version(self) -> str | None:
        """The primary model's version label now (e.g. ``fraud:3``)."""
        return self._primary.model.label

    @property
    def followed(self) -> list[Followed]:
        """The registry aliases this scorer follows (empty: its models never change)."""
        return [] if self._control is None else list(self._control.followed)

    def _current(self, values: list[Any]) -> _Models:
        """The models for a new batch: control events applied first (a batch boundary).

        The control topic is read at most every ``watch_every_ms``, and also before scoring
        a partition this process has not scored since it last read it (e.g. one just moved
        here from another worker, which may have switched already: reading first keeps the
        partition's versions in order)."""
        control = self._control
        if control is None:
            return self._fixed
        partitions = {t[4] for t in values} if self.tagged else set()
        with self._lock:
            try:
                looked = control.refresh(force=not partitions <= self._since_look)
            except Exception as e:  # never score (or dead-letter) events on a guess
                raise ControlUnavailable(
                    f"{self.label}: cannot read the alias's version ({type(e).__name__}: {e}): "
                    "check the log (control=, default the app's broker) and the registry"
                ) from e
            if looked:
                self._since_look = partitions
            return _models(self._primary.model, _model_of(self._canary), _model_of(self._shadow))

    def _models_for(self, values: list[Any]) -> _Models:
        local = self._local
        pin: _Pin | None = getattr(local, "pin", None)
        if pin is not None and getattr(local, "failed", False) and pin.holds(values):
            return pin.models  # an event of the last (failed) batch, asked again
        local.failed = False
        models = self._current(values)
        local.pin = _Pin(values, models)
        return models

    def close(self) -> None:
        """Stop watching control events (the scorer still scores, with its current models)."""
        if self._control is not None:
            self._control.close()

    # -- the engine's map_batch function ------------------------------------------
    def __call__(self, values: list[Any]) -> list[Any]:
        known = self._known(values)
        if known is not None:
            return known
        models = self._models_for(values)
        self._local.batch = None
        n = len(values)
        try:
            return self._score_batch(values, models)
        except Exception:
            self._local.failed = True
            if n == 1:
                raise
            self._local.batch = self._isolate(values, models)
            raise _BatchFailed(f"{self.label}: some events of a batch of {n} failed") from None

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

    def _values(self, values: list[Any]) -> list[Any]:
        return [t[0] for t in values] if self.tagged else values

    def _score_batch(self, values: list[Any], models: _Models) -> list[Any]:
        inner = self._values(values)
        x = feature_matrix(inner, self.features, missing=self.missing)
        route = self._route(values, models)
        acted = self._acted(x, models, route)
        shadow = self._shadow_scores(x, models.shadow)
        return self._outputs(values, inner, x, acted, route, models, shadow)

    def _route(self, values: list[Any], models: _Models) -> NDArray[np.bool_] | None:
        """Which events the canary scores (by key hash), or None without a canary."""
        if models.canary is None or self.canary is None:
            return None
        fraction = self.canary.fraction
        return np.fromiter(
            (t[2] is not None and canary_share(t[2]) < fraction for t in values),
            dtype=np.bool_, count=len(values),
        )

    def _acted(self, x: NDArray[np.float64], models: _Models, route: NDArray[np.bool_] | None) -> Scores:
        if route is None or models.canary is None or not route.any():
            return self._score(models.primary, x)
        if route.all():
            return self._score(models.canary, x)
        scores = np.empty(len(x), dtype=np.float64)
        scores[~route] = self._score(models.primary, x[~route])
        scores[route] = self._score(models.canary, x[route])
        return scores

    def _score(self, model: ReadyModel, x: NDArray[np.float64]) -> Scores:
        t0 = self._timer()
        with self._limit():
            scores = model.call(model.matrix(x))
        seconds = self._timer() - t0
        self.stats.record(model.label, len(x), seconds)
        if scores.shape != (len(x),):
            raise ValueError(
                f"model {model.label or model.name} returned scores of shape {scores.shape} "
                f"for {len(x)} rows: return one score per row"
            )
        observer = _current.current()  # the running worker's metrics, if any
        if observer is not None:
            version = model.number if model.number is not None else model.label
            observer.model_scored(model.name, "unknown" if version is None else str(version),
                                  seconds, scores)
        return scores

    def _shadow_scores(self, x: NDArray[np.float64], model: ReadyModel | None
                       ) -> tuple[Scores, set[int]] | None:
        """The shadow's scores and the rows it failed on: a shadow never fails a batch."""
        if model is None:
            return None
        try:
            return self._score(model, x), set()
        except Exception:
            scores, errors, calls = self._bisect(model, x)
            self.stats.record_failures(model.label, len(errors), calls)
            return scores, set(errors)

    def _bisect(self, model: ReadyModel, x: NDArray[np.float64]
                ) -> tuple[Scores, dict[int, BaseException], int]:
        """Score ``x`` in halves, recursively, until each failure is one row: the scores
        (0 where a row failed), each failed row's error, and the number of calls."""
        scores = np.zeros(len(x), dtype=np.float64)
        errors: dict[int, BaseException] = {}
        calls = 0
        stack = [(0, len(x))]
        while stack:
            lo, hi = stack.pop()
            if lo >= hi:
                continue
            calls += 1
            try:
                scores[lo:hi] = self._score(model, x[lo:hi])
            except Exception as e:
                if hi - lo == 1:
                    errors[lo] = e
                else:
                    mid = (lo + hi) // 2
                    stack += [(mid, hi), (lo, mid)]
        return scores, errors, calls

    def _isolate(self, values: list[Any], models: _Models) -> _Batch:
        """A failed batch: find the events that fail alone; score the others."""
        batch = _Batch()
        inner = self._values(values)
        rows: list[int] = []
        cells: list[list[float]] = []
        for i, v in enumerate(inner):  # events whose features cannot be read fail alone
            try:
                cells.append(_row(v, self.features, self.missing))
                rows.append(i)
            except Exception as e:
                batch.results[id(values[i])] = (values[i], None, e)
        unreadable = len(values) - len(rows)
        x = np.asarray(cells, dtype=np.float64).reshape(len(rows), len(self.features))
        kept = [values[i] for i in rows]
        route = self._route(kept, models)
        acted = np.zeros(len(rows), dtype=np.float64)
        errors: dict[int, BaseException] = {}
        groups = [(models.primary, np.ones(len(rows), dtype=np.bool_) if route is None else ~route)]
        if route is not None and models.canary is not None:
            groups.append((models.canary, route))
        for model, mask in groups:
            idx = np.flatnonzero(mask)
            scores, errs, calls = self._bisect(model, x[idx])
            acted[idx] = scores
            errors.update({int(idx[j]): e for j, e in errs.items()})
            failed = len(errs) + (unreadable if model is models.primary else 0)
            self.stats.record_failures(model.label, failed, calls)
        shadow = self._shadow_scores(x, models.shadow)
        outs = self._outputs(kept, [inner[i] for i in rows], x, acted, route, models, shadow)
        for j, (v, o) in enumerate(zip(kept, outs, strict=True)):
            error = errors.get(j)
            batch.results[id(v)] = (v, None, error) if error is not None else (v, o, None)
        return batch

    # -- outputs ------------------------------------------------------------------
    def _decide(self, scores: Scores) -> list[Any] | None:
        d = self.decision
        if d is None:
            return None
        if callable(d):
            return [bool(d(s)) for s in scores.tolist()]
        return (scores >= d).tolist()  # type: ignore[no-any-return]

    def _outputs(
        self,
        values: Sequence[Any],
        inner: Sequence[Any],
        x: NDArray[np.float64],
        acted: Scores,
        route: NDArray[np.bool_] | None,
        models: _Models,
        shadow: tuple[Scores, set[int]] | None,
    ) -> list[Any]:
        output, primary = self.output, models.primary
        scores = acted.tolist()
        decisions = self._decide(acted)
        if not self.tagged:
            label = primary.label
            if decisions is None:
                if label is None:
                    return [{**v, output: s} for v, s in zip(inner, scores, strict=True)]
                return [{**v, output: s, "model_version": label}
                        for v, s in zip(inner, scores, strict=True)]
            out = []
            for v, s, d in zip(inner, scores, decisions, strict=True):
                o = {**v, output: s, "decision": d}
                if label is not None:
                    o["model_version"] = label
                out.append(o)
            return out
        canary = models.canary if route is not None else None
        log_preds = self.predictions
        rows_p = primary.matrix(x).tolist() if log_preds else None
        rows_c = canary.matrix(x).tolist() if log_preds and canary is not None else None
        shadow_part = None
        if shadow is not None and models.shadow is not None and log_preds:
            s_scores, s_failed = shadow
            shadow_part = (models.shadow, s_scores.tolist(), self._decide(s_scores), s_failed,
                           models.shadow.matrix(x).tolist())
        slots = self.slots
        results: list[Any] = []
        for i, t in enumerate(values):
            on_canary = canary is not None and route is not None and bool(route[i])
            m = canary if on_canary and canary is not None else primary
            s = scores[i]
            o = {**inner[i], output: s}
            if m.label is not None:
                o["model_version"] = m.label
            d = None if decisions is None else decisions[i]
            if decisions is not None:
                o["decision"] = d
            if not log_preds:
                results.append((o, []))
                continue
            preds: list[Any] = [None] * slots
            rows = rows_c if on_canary else rows_p
            assert rows is not None
            preds[1 if on_canary else 0] = _record(
                t, m, s, rows[i], d, "canary" if on_canary else "primary")
            if shadow_part is not None:
                sm, ss, sd, sf, srows = shadow_part
                if i not in sf:
                    preds[2] = _record(t, sm, ss[i], srows[i], None if sd is None else sd[i], "shadow")
            results.append((o, preds))
        return results

    def __repr__(self) -> str:
        return f"Scorer({self.label}, features={list(self.features)!r}, output={self.output!r})"


def _record(t: Any, m: ReadyModel, score: float, row: list[float], decision: Any, role: str
            ) -> dict[str, Any]:
    """One prediction as :meth:`Prediction.to_dict` shapes it (``t``: a tagged value)."""
    return {
        "event_id": t[1], "model": m.name, "version": m.number, "score": score,
        "features": dict(zip(m.features, row, strict=True)), "decision": decision,
        "role": role, "time_ms": t[3], "key": t[2],
    }


def _model_of(source: Fixed | Followed | None) -> ReadyModel | None:
    return None if source is None else source.model


def _open_registry(registry: Any) -> Any:
    """A registry object, or one opened from a path."""
    if registry is None or hasattr(registry, "load"):
        return registry
    from eventml.ml.registry import ModelRegistry

    return ModelRegistry(registry)


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
            f"model {model!r} is a reference: pass registry= (a model registry) or resolve= "
            "(e.g. a model registry's load) to turn it into a model"
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


def single_threaded() -> AbstractContextManager[Any]:
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
