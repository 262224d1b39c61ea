"""Models from an MLflow model registry: ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION``.

Teams that train and register in MLflow score those versions on the stream without
copying them: :class:`MlflowRegistry` resolves a reference through MLflow's registry
client and loads the version into the same shapes the eventml registry gives
(:class:`~eventml.ml.registry.LoadedModel` with a
:class:`~eventml.ml.registry.ModelVersion`), so ``predict(stream, "models:/fraud@champion",
features=[...], resolve=MlflowRegistry(uri).load)`` labels every score ``fraud:3`` and checks
the features exactly as for a local version. ``ModelRegistry.load`` hands ``models:/``
references here too, with the tracking URI from ``$MLFLOW_TRACKING_URI``.

What a version becomes: an MLflow ``sklearn`` flavor loads the estimator and scores like
eventml's own sklearn flavor (the positive class's ``predict_proba`` column); any other model
with a ``python_function`` flavor is called through ``mlflow.pyfunc``. The features are the
estimator's ``feature_names_in_`` (the order it was fitted on), else the names of the model
signature's inputs; the metrics and the code version (the ``mlflow.source.git.commit`` tag)
come from the run that logged it. MLflow's pickle-based formats run code at load: load only
from a registry you trust, as with any MLflow client.

MLflow is optional: ``pip install 'eventml[mlflow]'`` (``mlflow-skinny`` with SQLAlchemy and
Alembic, so ``sqlite:///…`` stores work; MLflow 3's ``file:`` store needs its own opt-in,
``MLFLOW_ALLOW_FILE_STORE=true``, and ``$MLFLOW_TRACKING_URI`` pointing at it, because its
registry looks versions up through the process-wide URI). Reads never create a store: a
``sqlite:`` database or ``file:`` directory that does not exist is an error, not a new empty
registry.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
from numpy.typing import NDArray

from eventml.ml.flavors import FlavorError, Scores, SklearnModel, as_scores
from eventml.ml.registry import (
    MLFLOW_PREFIX,
    AliasNotFound,
    InvalidModelName,
    LoadedModel,
    ModelNotFound,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    RegistryNotFound,
    check_name,
)

PREFIX = MLFLOW_PREFIX
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
_GIT_COMMIT_TAG = "mlflow.source.git.commit"
_FORMS = "models:/NAME@ALIAS or models:/NAME/VERSION"


def is_mlflow_ref(ref: object) -> bool:
    """Whether ``ref`` is a ``models:/...`` reference (MLflow's model URI scheme)."""
    return isinstance(ref, str) and ref.startswith(PREFIX)


@dataclass(frozen=True, slots=True)
class MlflowRef:
    """A parsed ``models:/`` reference: a registered model's name and a version or an alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{PREFIX}{self.name}@{self.alias}"
        return f"{PREFIX}{self.name}/{self.version}"


def parse_mlflow_ref(ref: str) -> MlflowRef:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` (pure: no lookup).

    MLflow's stages (``/Production``) are deprecated in favour of aliases, and ``/latest``
    moves under a running pipeline: both are refused, as is a bare ``models:/NAME``.
    """
    if not is_mlflow_ref(ref):
        raise InvalidModelName(f"{ref!r} is not an MLflow reference: use {_FORMS}")
    body = ref[len(PREFIX):]
    if "@" in body:
        name, alias = body.split("@", 1)
        if name and alias and "/" not in name and "/" not in alias:
            return MlflowRef(name, alias=alias)
    elif "/" in body:
        name, number = body.split("/", 1)
        if name and number.isdigit() and int(number) >= 1:
            return MlflowRef(name, version=int(number))
        if name and "/" not in number:
            raise InvalidModelName(
                f"invalid version {number!r} in {ref!r}: a number from 1, or use an alias "
                f"(models:/{name}@champion); MLflow stages and 'latest' are not supported"
            )
    elif body:
        raise InvalidModelName(f"{ref!r} names no version: use {_FORMS}")
    raise InvalidModelName(f"invalid MLflow reference {ref!r}: use {_FORMS}")


def _mlflow(module: str = "mlflow") -> Any:
    """Import an mlflow module (typed Any: MLflow is an optional extra)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if (e.name or "").split(".")[0] != "mlflow":
            raise
        raise ImportError("mlflow is not installed: pip install 'eventml[mlflow]'") from e


def _one_line(e: BaseException) -> str:
    text = str(getattr(e, "message", None) or e).strip()
    return " ".join(text.split()) or type(e).__name__


def _local_store(uri: str) -> Path | None:
    """The file or directory a local tracking URI names (``sqlite:///``, ``file:``, a bare
    path), or None for a server (``http(s)://``, ``databricks``, ...) or ``sqlite://`` in memory."""
    if uri.startswith("sqlite:///"):
        return Path(unquote(uri[len("sqlite:///"):].split("?", 1)[0]))
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme == "":
        return Path(uri)
    return None


class PyfuncModel:
    """An MLflow ``python_function`` model: rows go in as a DataFrame with the signature's
    column names (as the signature asks), else as the array; a 2-column output is read as
    class probabilities (column 1), anything else must be one value per row."""

    def __init__(self, pyfunc: Any, columns: Sequence[str], files: Any = None) -> None:
        self.pyfunc = pyfunc
        self.columns = list(columns)
        self._files = files  # the downloaded artifacts, kept while the model lives

    def predict_batch(self, x: NDArray[Any]) -> Scores:
        if x.ndim != 2:
            raise FlavorError(f"predict_batch takes a 2-D array (rows, features), got {x.ndim}-D")
        data: Any = x
        if self.columns:
            pd = importlib.import_module("pandas")
            data = pd.DataFrame(np.asarray(x, dtype=np.float64), columns=self.columns)
        out = np.asarray(self.pyfunc.predict(data), dtype=np.float64)
        if out.ndim == 2 and out.shape[1] == 2:
            out = out[:, 1]
        return as_scores(out, len(x))


class MlflowRegistry:
    """Read-only access to an MLflow model registry, in eventml's shapes.

    ``tracking_uri`` is the MLflow tracking URI (``sqlite:///path/mlflow.db``,
    ``file:///path/mlruns``, ``http://host:5000``, ...), else ``$MLFLOW_TRACKING_URI``;
    ``registry_uri`` defaults to it. Nothing is contacted until the first lookup.
    """

    def __init__(self, tracking_uri: str | None = None, *, registry_uri: str | None = None) -> None:
        uri = tracking_uri or os.environ.get(TRACKING_URI_ENV)
        if not uri:
            raise RegistryError(
                f"no MLflow tracking URI: pass tracking_uri= (--tracking-uri) or set {TRACKING_URI_ENV}"
            )
        self.tracking_uri = uri
        self.registry_uri = registry_uri or uri
        self._client: Any = None

    def __repr__(self) -> str:
        return f"MlflowRegistry({self.tracking_uri!r})"

    # --- MLflow calls --------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """MLflow's exceptions (its own, HTTP, SQL) as one-line :class:`RegistryError`."""
        try:
            yield
        except (RegistryError, ImportError):
            raise
        except Exception as e:
            raise RegistryError(f"MLflow registry at {self.tracking_uri}: {_one_line(e)}") from e

    def _connect(self) -> Any:
        if self._client is None:
            for uri in dict.fromkeys((self.tracking_uri, self.registry_uri)):
                path = _local_store(uri)
                if path is not None and not path.exists():
                    raise RegistryNotFound(f"no MLflow store at {path} (tracking URI {uri})")
            mlflow = _mlflow()
            self._check_file_store(mlflow)
            with self._errors():
                self._client = mlflow.MlflowClient(
                    tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
                )
        return self._client

    def _check_file_store(self, mlflow: Any) -> None:
        """MLflow 3's file registry store reads each version's model through the process-wide
        tracking URI, not the client's: pointed elsewhere (unset means ``sqlite:///mlflow.db``
        in the working directory), it would look there and create that database. Refuse
        instead of creating anything."""
        path = _local_store(self.registry_uri)
        if path is None or self.registry_uri.startswith("sqlite:"):
            return
        current = _local_store(str(mlflow.get_tracking_uri()))
        if current is None or current.resolve() != path.resolve():
            raise RegistryError(
                f"MLflow's file store at {path} is read through the process's tracking URI: "
                f"set {TRACKING_URI_ENV}={self.registry_uri} (or use a sqlite:/// store)"
            )

    def _model_version(self, r: MlflowRef) -> Any:
        """MLflow's ModelVersion entity for ``r``; a missing model, alias or version is a
        :class:`ModelNotFound` / :class:`AliasNotFound` that says which."""
        client = self._connect()
        try:
            if r.alias is not None:
                return client.get_model_version_by_alias(r.name, r.alias)
            return client.get_model_version(r.name, str(r.version))
        except Exception as e:
            failure = e
        with self._errors():
            try:
                client.get_registered_model(r.name)
            except Exception as e:
                if getattr(e, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
                    raise ModelNotFound(
                        f"no model named {r.name!r} in the MLflow registry at {self.registry_uri}"
                    ) from None
                raise
        if r.alias is not None:
            raise AliasNotFound(f"MLflow model {r.name!r} has no alias {r.alias!r}") from None
        if getattr(failure, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFound(f"MLflow model {r.name!r} has no version {r.version}") from None
        raise RegistryError(
            f"MLflow registry at {self.registry_uri}: {_one_line(failure)}"
        ) from failure

    def _download(self, mv: Any, into: Path, path: str = "") -> Path:
        """The version's artifacts (or one file of them) copied under ``into``."""
        client = self._connect()
        artifacts = _mlflow("mlflow.artifacts")
        with self._errors():
            uri = client.get_model_version_download_uri(mv.name, str(mv.version))
            local = artifacts.download_artifacts(
                artifact_uri=f"{uri.rstrip('/')}/{path}" if path else uri,
                dst_path=str(into), tracking_uri=self.tracking_uri,
            )
        return Path(local)

    def _run_metadata(self, run_id: str | None) -> tuple[dict[str, float], str | None]:
        """The logging run's metrics and git commit (none if the run is gone or unknown)."""
        if not run_id:
            return {}, None
        try:
            run = self._connect().get_run(run_id)
        except Exception:  # a deleted run, or no permission: the version still loads
            return {}, None
        metrics = {str(k): float(v) for k, v in run.data.metrics.items()}
        return metrics, run.data.tags.get(_GIT_COMMIT_TAG)

    def _describe(
        self, mv: Any, mlmodel: Any, kind: str, features: Sequence[str], files: Sequence[str]
    ) -> ModelVersion:
        metrics, commit = self._run_metadata(mv.run_id)
        return ModelVersion(
            name=str(mv.name),
            version=int(mv.version),
            flavor=f"mlflow:{kind}",
            created_ms=int(mv.creation_timestamp or 0),
            features=tuple(features),
            metrics=metrics,
            code_version=commit,
            description=mv.description or "",
            files=tuple(files),
            options={
                "tracking_uri": self.tracking_uri,
                "source": mv.source,
                "run_id": mv.run_id,
                "mlflow_flavors": sorted(mlmodel.flavors),
            },
            aliases=tuple(sorted(getattr(mv, "aliases", None) or ())),
        )

    # --- reading -------------------------------------------------------------------------

    def resolve(self, ref: str | MlflowRef) -> ModelVersion:
        """The version ``ref`` names, with its metadata (downloads only its ``MLmodel`` file)."""
        r = parse_mlflow_ref(ref) if isinstance(ref, str) else ref
        mv = self._model_version(r)
        models = _mlflow("mlflow.models")
        with tempfile.TemporaryDirectory(prefix="eventml-mlflow-") as tmp:
            path = self._download(mv, Path(tmp), "MLmodel")
            with self._errors():
                mlmodel = models.Model.load(str(path))
        return self._describe(mv, mlmodel, _kind(mlmodel), _signature_names(mlmodel), ())

    def load(self, ref: str | MlflowRef) -> LoadedModel:
        """Download and load the version ``ref`` names; scores like a local registry version."""
        r = parse_mlflow_ref(ref) if isinstance(ref, str) else ref
        mv = self._model_version(r)
        models = _mlflow("mlflow.models")
        tmp = tempfile.TemporaryDirectory(prefix="eventml-mlflow-")
        keep = False  # a pyfunc model may read its files after loading: they live with it
        try:
            local = self._download(mv, Path(tmp.name))
            with self._errors():
                mlmodel = models.Model.load(str(local / "MLmodel"))
            kind = _kind(mlmodel)
            files = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
            model: SklearnModel | PyfuncModel
            try:
                if kind == "sklearn":
                    with self._errors():
                        estimator = _mlflow("mlflow.sklearn").load_model(str(local))
                    model = SklearnModel(estimator)
                    features = _fitted_names(estimator) or _signature_names(mlmodel)
                else:
                    with self._errors():
                        pyfunc = _mlflow("mlflow.pyfunc").load_model(str(local))
                    features = _signature_names(mlmodel)
                    model, keep = PyfuncModel(pyfunc, features, files=tmp), True
            except ImportError as e:
                if (e.name or "").split(".")[0] == "sklearn":
                    raise ImportError(
                        f"{r} is a scikit-learn model: pip install 'eventml[ml,mlflow]'"
                    ) from e
                raise
        finally:
            if not keep:
                tmp.cleanup()
        return LoadedModel(model, self._describe(mv, mlmodel, kind, features, files))


def _kind(mlmodel: Any) -> str:
    flavors: Mapping[str, Any] = mlmodel.flavors
    if "sklearn" in flavors:
        return "sklearn"
    if "python_function" in flavors:
        return "pyfunc"
    raise RegistryError(
        f"this MLflow model has no python_function flavor (flavors: {', '.join(sorted(flavors))}): "
        "eventml scores scikit-learn and pyfunc models"
    )


def _signature_names(mlmodel: Any) -> list[str]:
    signature = getattr(mlmodel, "signature", None)
    inputs = getattr(signature, "inputs", None)
    if inputs is None or not inputs.has_input_names():
        return []
    return [str(n) for n in inputs.input_names()]


def _fitted_names(estimator: Any) -> list[str]:
    names = getattr(estimator, "feature_names_in_", None)
    return [] if names is None else [str(n) for n in names]


def import_from_mlflow(
    registry: ModelRegistry,
    ref: str | MlflowRef,
    *,
    name: str | None = None,
    tracking_uri: str | None = None,
) -> ModelVersion:
    """Copy an MLflow version into ``registry`` as the next version of ``name`` (default: the
    MLflow name), with its features, metrics and code version; the description records where
    it came from. Only scikit-learn models copy (they are stored with skops, as registered
    ones are); score other MLflow models by their ``models:/`` reference instead."""
    source = MlflowRegistry(tracking_uri)
    r = parse_mlflow_ref(ref) if isinstance(ref, str) else ref
    target = name or r.name
    try:
        check_name(target)
    except InvalidModelName as e:
        if name is not None:
            raise
        raise InvalidModelName(f"{e}; pass name= (--name) for the eventml copy") from None
    loaded = source.load(r)
    if not isinstance(loaded.model, SklearnModel):
        raise RegistryError(
            f"{r} is a {loaded.version.flavor} model: only scikit-learn models are copied; "
            f"score it by reference ({r}) instead"
        )
    v = loaded.version
    origin = f"imported from {PREFIX}{v.name}/{v.version}"
    if v.options.get("run_id"):
        origin += f" (MLflow run {v.options['run_id']})"
    return registry.register(
        target, loaded.model.estimator, flavor="sklearn", features=v.features,
        metrics=v.metrics, code_version=v.code_version,
        description=f"{origin}: {v.description}" if v.description else origin,
    )
