"""Model flavors: how one kind of model is written to a directory and scored from it.

Every flavor loads into a :class:`ScoringModel`: ``predict_batch(x)`` takes a
2-D float array (rows = events, columns = the version's features, in order)
and returns one float64 score per row — for a classifier, the probability of
the positive class. Online models also have ``learn_one(x, y)``.

Flavors are found by name in a registry (:func:`flavor_for`), so a new one is
one :func:`register_flavor` call, not a branch here. Each imports its library
only when used, and a missing library names the extra to install.

=========  ===================  =====================================================
flavor     artifact             notes
=========  ===================  =====================================================
sklearn    ``model.skops``      skops (no pickle); the types outside skops' safe
                                list are recorded at registration and are the only
                                ones trusted at load
onnx       ``model.onnx``       ONNX Runtime on CPU; input cast to the graph's dtype
river      ``model.pkl``        pickle (River's own format); ``*_many`` when pandas
                                is installed, else ``*_one`` per row
callable   ``callable.txt``     ``module:qualname`` of an importable function, not
                                its code: pin the code with ``code_version``
=========  ===================  =====================================================
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

Scores = NDArray[np.float64]


@runtime_checkable
class ScoringModel(Protocol):
    """A loaded model: one float64 score per row of a 2-D feature matrix."""

    def predict_batch(self, x: NDArray[Any]) -> Scores: ...


@runtime_checkable
class OnlineModel(ScoringModel, Protocol):
    """A scoring model that also learns from one labelled example at a time."""

    def learn_one(self, x: NDArray[Any], y: Any) -> None: ...


class FlavorError(ValueError):
    """A model cannot be saved or loaded with this flavor (the message says why)."""


@dataclass(frozen=True, slots=True)
class Saved:
    """What a flavor wrote: its file names and options needed to load it again."""

    files: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)


class Flavor(Protocol):
    """Writes a model (an object or an existing artifact file) to a directory; loads it back."""

    name: str

    def save(self, model: object, directory: Path) -> Saved: ...

    def load(
        self, directory: Path, features: Sequence[str], options: Mapping[str, Any]
    ) -> ScoringModel: ...


def _require(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{module} is not installed: pip install 'eventml[{extra}]'"
        ) from e


def as_scores(out: Any, n: int) -> Scores:
    """A model's output as 1-D float64 of length ``n`` (an ``(n, 1)`` column is flattened)."""
    arr = np.asarray(out, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.shape != (n,):
        raise FlavorError(f"model returned shape {arr.shape}, expected ({n},): one score per row")
    return np.ascontiguousarray(arr)


def _matrix(x: NDArray[Any]) -> NDArray[Any]:
    if x.ndim != 2:
        raise FlavorError(f"predict_batch takes a 2-D array (rows, features), got {x.ndim}-D")
    return x


def _copy_file(source: Path, directory: Path, name: str) -> None:
    """Copy an artifact file given as a :class:`~pathlib.Path` (a ``str`` is not a path here)."""
    if not source.is_file():
        raise FlavorError(f"no artifact file at {source}")
    shutil.copyfile(source, directory / name)


def _no_str(model: object) -> None:
    if isinstance(model, str):
        raise FlavorError(f"got the string {model!r}: pass pathlib.Path(...) for an artifact file")


# --- scikit-learn (skops) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SklearnModel:
    """A scikit-learn estimator: ``predict_proba[:, 1]`` for a binary classifier, else ``predict``."""

    estimator: Any

    def predict_batch(self, x: NDArray[Any]) -> Scores:
        x = _matrix(x)
        if hasattr(self.estimator, "predict_proba"):
            proba = np.asarray(self.estimator.predict_proba(x))
            if proba.ndim != 2 or proba.shape[1] != 2:
                raise FlavorError("only binary classifiers score (positive-class probability)")
            return as_scores(proba[:, 1], len(x))
        return as_scores(self.estimator.predict(x), len(x))


class SklearnFlavor:
    """scikit-learn estimators stored with skops (no arbitrary code runs at load)."""

    name = "sklearn"
    filename = "model.skops"

    def save(self, model: object, directory: Path) -> Saved:
        sio = _require("skops.io", "ml")
        path = directory / self.filename
        _no_str(model)
        if isinstance(model, Path):
            _copy_file(model, directory, self.filename)
        else:
            sio.dump(model, path)
        try:
            untrusted = sorted(sio.get_untrusted_types(file=path))
        except Exception as e:
            raise FlavorError(f"not a skops file: {type(e).__name__}: {e}") from e
        return Saved((self.filename,), {"trusted_types": untrusted})

    def load(
        self, directory: Path, features: Sequence[str], options: Mapping[str, Any]
    ) -> ScoringModel:
        sio = _require("skops.io", "ml")
        trusted = list(options.get("trusted_types", []))
        return SklearnModel(sio.load(directory / self.filename, trusted=trusted))


# --- ONNX Runtime ------------------------------------------------------------------------

_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class OnnxModel:
    """An ONNX graph in an ONNX Runtime session (CPU).

    The score is the first output that is a 2-column probability matrix (its
    column 1), else the first output that is one value per row.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        first = session.get_inputs()[0]
        self._input = first.name
        self._dtype = _ONNX_DTYPES.get(first.type, np.float32)

    def predict_batch(self, x: NDArray[Any]) -> Scores:
        x = _matrix(x)
        outputs = self.session.run(None, {self._input: np.ascontiguousarray(x, dtype=self._dtype)})
        for out in outputs:
            if isinstance(out, list):
                raise FlavorError(
                    "ONNX output is a list of maps: convert with options={'zipmap': False}"
                )
            arr = np.asarray(out)
            if arr.ndim == 2 and arr.shape[1] == 2 and arr.dtype.kind == "f":
                return as_scores(arr[:, 1], len(x))
        for out in outputs:
            arr = np.asarray(out)
            if arr.dtype.kind in "fiub" and arr.size == len(x):
                return as_scores(arr.reshape(-1), len(x))
        raise FlavorError("no ONNX output gives one score per row")


class OnnxFlavor:
    """ONNX models (``onnx.ModelProto``, serialized bytes, or a ``.onnx`` file)."""

    name = "onnx"
    filename = "model.onnx"

    def save(self, model: object, directory: Path) -> Saved:
        path = directory / self.filename
        if isinstance(model, Path):
            _copy_file(model, directory, self.filename)
        elif isinstance(model, bytes | bytearray):
            path.write_bytes(bytes(model))
        elif hasattr(model, "SerializeToString"):
            path.write_bytes(model.SerializeToString())
        else:
            raise FlavorError(f"onnx flavor takes a ModelProto or bytes, not {type(model).__name__}")
        return Saved((self.filename,))

    def load(
        self, directory: Path, features: Sequence[str], options: Mapping[str, Any]
    ) -> ScoringModel:
        ort = _require("onnxruntime", "onnx")
        try:
            session = ort.InferenceSession(
                str(directory / self.filename), providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own exception types
            raise FlavorError(f"not a valid ONNX model: {type(e).__name__}: {e}") from e
        return OnnxModel(session)


# --- River -------------------------------------------------------------------------------


def _positive(proba: Mapping[Any, float]) -> float:
    for label in (True, 1, "1", "true"):
        if label in proba:
            return float(proba[label])
    return 0.0


class RiverModel:
    """A River model; rows become dicts keyed by the version's feature names."""

    def __init__(self, model: Any, features: Sequence[str]) -> None:
        self.model = model
        self.features = list(features)

    def _rows(self, x: NDArray[Any]) -> list[dict[str, float]]:
        if x.shape[1] != len(self.features):
            raise FlavorError(f"{x.shape[1]} columns for {len(self.features)} features")
        return [dict(zip(self.features, map(float, row), strict=True)) for row in x]

    def predict_batch(self, x: NDArray[Any]) -> Scores:
        x = _matrix(x)
        many = hasattr(self.model, "predict_proba_many") or hasattr(self.model, "predict_many")
        if many and importlib.util.find_spec("pandas") is not None:
            import pandas as pd

            frame = pd.DataFrame(np.asarray(x, dtype=np.float64), columns=self.features)
            if hasattr(self.model, "predict_proba_many"):
                proba = self.model.predict_proba_many(frame)
                for label in (True, 1):
                    if label in proba.columns:
                        return as_scores(proba[label].fillna(0.0).to_numpy(), len(x))
                return np.zeros(len(x), dtype=np.float64)
            return as_scores(self.model.predict_many(frame).to_numpy(), len(x))
        if hasattr(self.model, "predict_proba_one"):
            rows = self._rows(x)
            return as_scores([_positive(self.model.predict_proba_one(r)) for r in rows], len(x))
        return as_scores([self.model.predict_one(r) for r in self._rows(x)], len(x))

    def learn_one(self, x: NDArray[Any], y: Any) -> None:
        (row,) = self._rows(np.asarray(x, dtype=np.float64).reshape(1, -1))
        self.model.learn_one(row, y)


class RiverFlavor:
    """River models, pickled (River's own persistence); needs the features list."""

    name = "river"
    filename = "model.pkl"

    def save(self, model: object, directory: Path) -> Saved:
        _no_str(model)
        if isinstance(model, Path):
            _copy_file(model, directory, self.filename)
        else:
            (directory / self.filename).write_bytes(pickle.dumps(model, protocol=5))
        return Saved((self.filename,))

    def load(
        self, directory: Path, features: Sequence[str], options: Mapping[str, Any]
    ) -> ScoringModel:
        _require("river", "river")
        if not features:
            raise FlavorError("a river model needs its features list (register with features=[...])")
        try:
            model = pickle.loads((directory / self.filename).read_bytes())  # River's own format: trust = the registry
        except Exception as e:
            raise FlavorError(f"not a pickled River model: {type(e).__name__}: {e}") from e
        return RiverModel(model, features)


# --- any importable Python callable --------------------------------------------------------


def callable_reference(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of an importable function (a lambda or closure has none)."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise FlavorError(
            f"{fn!r} is not importable by name: define it at the top level of a module"
        )
    ref = f"{module}:{qualname}"
    if import_reference(ref) is not fn:
        raise FlavorError(f"{ref} does not import back to the same object")
    return ref


def import_reference(ref: str) -> Callable[..., Any]:
    """Import ``module:qualname`` and return the callable it names."""
    module, sep, qualname = ref.strip().partition(":")
    if not sep or not module or not qualname:
        raise FlavorError(f"callable reference must be module:function, got {ref!r}")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise FlavorError(f"cannot import {ref}: {e}") from e
    if not callable(obj):
        raise FlavorError(f"{ref} is not callable")
    return obj  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class CallableModel:
    """A function of the feature matrix that returns one score per row."""

    fn: Callable[[NDArray[Any]], Any]
    reference: str

    def predict_batch(self, x: NDArray[Any]) -> Scores:
        x = _matrix(x)
        return as_scores(self.fn(x), len(x))


class CallableFlavor:
    """Any importable ``f(x: ndarray) -> scores``, stored as its ``module:qualname`` text."""

    name = "callable"
    filename = "callable.txt"

    def save(self, model: object, directory: Path) -> Saved:
        if isinstance(model, str):
            ref = model.strip()
            import_reference(ref)
        elif callable(model):
            ref = callable_reference(model)
        else:
            raise FlavorError(f"callable flavor takes a function or 'module:function', not {model!r}")
        (directory / self.filename).write_text(ref + "\n", encoding="utf-8")
        return Saved((self.filename,))

    def load(
        self, directory: Path, features: Sequence[str], options: Mapping[str, Any]
    ) -> ScoringModel:
        ref = (directory / self.filename).read_text(encoding="utf-8").strip()
        return CallableModel(import_reference(ref), ref)


# --- the registry of flavors -----------------------------------------------------------------

_FLAVORS: dict[str, Flavor] = {}


def register_flavor(flavor: Flavor) -> None:
    """Make a flavor available by its ``name`` (replacing one of the same name)."""
    _FLAVORS[flavor.name] = flavor


def flavor_for(name: str) -> Flavor:
    """The flavor called ``name``; :class:`FlavorError` lists the known ones."""
    try:
        return _FLAVORS[name]
    except KeyError:
        raise FlavorError(
            f"unknown flavor {name!r} (known: {', '.join(sorted(_FLAVORS))})"
        ) from None


def flavor_names() -> list[str]:
    """The registered flavors' names, sorted."""
    return sorted(_FLAVORS)


for _flavor in (SklearnFlavor(), OnnxFlavor(), RiverFlavor(), CallableFlavor()):
    register_flavor(_flavor)
