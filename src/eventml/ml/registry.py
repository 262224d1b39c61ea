"""The model registry: named models, immutable numbered versions, movable aliases.

A registry is a directory::

    registry.sqlite            models, versions (with metadata), aliases
    NAME/VERSION/...           each version's artifact files, read-only
    .tmp/                      artifacts being written

``register`` writes the artifact into ``.tmp``, loads it back (a version that
cannot load is never registered), then, inside one write transaction, takes
the next version number, renames the directory to ``NAME/VERSION`` and inserts
the row. A process killed before the commit leaves at most a directory with
no row; the next registration of that number replaces it. So every version
has its artifact, and numbers stay consecutive across processes.

References: ``NAME`` (the latest version), ``NAME/3``, ``NAME@champion``; ``load`` and
``resolve`` hand MLflow's ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` to
:class:`~eventml.ml.mlflow_registry.MlflowRegistry` (tracking URI from
``$MLFLOW_TRACKING_URI``).

Only a registration creates the directory: reading a registry that does not exist
raises :class:`RegistryNotFound` and leaves the path untouched (a mistyped
``--registry`` must not leave an empty registry behind).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from numpy.typing import NDArray

from eventml.clock import ClockMs, system_clock_ms
from eventml.log.registry import data_dir
from eventml.ml import _store as _sql
from eventml.ml.flavors import Scores, ScoringModel, flavor_for

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
ALIAS_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
ENV_VAR = "EVENTML_MODELS"
MLFLOW_PREFIX = "models:/"

Stage = Callable[[str], None]
"""A test hook, called with ``"before_commit"`` once the artifact is in place."""


class RegistryError(Exception):
    """Base of the registry's errors; the message is one line that says what to do."""


class InvalidModelName(RegistryError, ValueError):
    """A model name, alias or reference does not match the allowed pattern."""


class ModelNotFound(RegistryError, LookupError):
    """No such model, or no such version of it."""


class RegistryNotFound(ModelNotFound):
    """No registry at this path (nothing was ever registered there): it is not created by reads."""


class AliasNotFound(RegistryError, LookupError):
    """The model has no such alias."""


class ArtifactCorrupt(RegistryError):
    """A version's artifact files are missing or differ from what was registered."""


def check_name(name: str) -> str:
    """``name`` if it is a valid model name, else :class:`InvalidModelName`."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidModelName(
            f"invalid model name {name!r}: use letters, digits, '_' and '-' "
            "(starting with a letter or digit, at most 128)"
        )
    return name


def check_alias(alias: str) -> str:
    """``alias`` if it is a valid alias, else :class:`InvalidModelName`."""
    if not ALIAS_PATTERN.fullmatch(alias):
        raise InvalidModelName(
            f"invalid alias {alias!r}: use letters, digits, '_' and '-', starting with a letter"
        )
    return alias


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed reference: a name and at most one of a version or an alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name if self.version is None else f"{self.name}/{self.version}"


def parse_ref(ref: str) -> ModelRef:
    """``NAME``, ``NAME/VERSION`` or ``NAME@ALIAS`` (pure: no lookup)."""
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return ModelRef(check_name(name), alias=check_alias(alias))
    if "/" in ref:
        name, number = ref.split("/", 1)
        if not number.isdigit() or int(number) < 1:
            raise InvalidModelName(f"invalid version in {ref!r}: a number from 1")
        return ModelRef(check_name(name), version=int(number))
    return ModelRef(check_name(ref))


@dataclass(frozen=True, slots=True)
class TrainingRange:
    """The training data: log offsets per partition (end exclusive) and/or event times (ms)."""

    topic: str | None = None
    start_offsets: Mapping[int, int] = field(default_factory=dict)
    end_offsets: Mapping[int, int] = field(default_factory=dict)
    start_ms: int | None = None
    end_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "start_offsets": {str(p): o for p, o in self.start_offsets.items()},
            "end_offsets": {str(p): o for p, o in self.end_offsets.items()},
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainingRange:
        return cls(
            topic=d.get("topic"),
            start_offsets={int(p): int(o) for p, o in d.get("start_offsets", {}).items()},
            end_offsets={int(p): int(o) for p, o in d.get("end_offsets", {}).items()},
            start_ms=d.get("start_ms"),
            end_ms=d.get("end_ms"),
        )


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered version and its metadata (``aliases`` as of when it was read)."""

    name: str
    version: int
    flavor: str
    created_ms: int
    features: tuple[str, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    training: TrainingRange | None = None
    code_version: str | None = None
    description: str = ""
    files: tuple[str, ...] = ()
    sha256: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the CLI's ``--json``)."""
        return {
            "name": self.name,
            "version": self.version,
            "flavor": self.flavor,
            "created_ms": self.created_ms,
            "features": list(self.features),
            "metrics": dict(self.metrics),
            "training": None if self.training is None else self.training.to_dict(),
            "code_version": self.code_version,
            "description": self.description,
            "files": list(self.files),
            "sha256": self.sha256,
            "aliases": list(self.aliases),
        }


def _meta_json(v: ModelVersion) -> str:
    d = v.to_dict()
    for k in ("name", "version", "flavor", "created_ms", "aliases"):
        del d[k]
    d["options"] = dict(v.options)
    return orjson.dumps(d).decode()


def _version_from_row(row: Any, aliases: Sequence[str]) -> ModelVersion:
    meta = orjson.loads(row["meta"])
    training = meta.get("training")
    return ModelVersion(
        name=row["name"],
        version=int(row["version"]),
        flavor=row["flavor"],
        created_ms=int(row["created_ms"]),
        features=tuple(meta.get("features", ())),
        metrics=dict(meta.get("metrics", {})),
        training=None if training is None else TrainingRange.from_dict(training),
        code_version=meta.get("code_version"),
        description=meta.get("description", ""),
        files=tuple(meta.get("files", ())),
        sha256=meta.get("sha256", ""),
        options=dict(meta.get("options", {})),
        aliases=tuple(sorted(aliases)),
    )


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """One model in :meth:`ModelRegistry.list_models`."""

    name: str
    latest_version: int
    versions: int
    aliases: Mapping[str, int]
    created_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latest_version": self.latest_version,
            "versions": self.versions,
            "aliases": dict(self.aliases),
            "created_ms": self.created_ms,
        }


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A scoring model and the version it was loaded from."""

    model: ScoringModel
    version: ModelVersion

    def predict_batch(self, x: NDArray[Any]) -> Scores:
        return self.model.predict_batch(x)


def default_registry_path(log_url: str | None = None) -> Path:
    """``<data dir>/models``: the embedded log's directory, else ``./.eventml``."""
    return data_dir(log_url) / "models"


def _digest(directory: Path, files: Sequence[str]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0")
        with open(directory / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_tree(path: Path) -> None:
    """Remove a (read-only) directory left by a registration that never committed."""
    for p in [path, *path.rglob("*")]:
        if p.is_dir():
            p.chmod(stat.S_IRWXU)
    shutil.rmtree(path)


class ModelRegistry:
    """Models in a directory (see the module docstring); safe across processes.

    Nothing is touched until used: the first registration creates the directory, and
    reads of a registry that does not exist raise :class:`RegistryNotFound`
    (``list_models`` returns no models).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: ClockMs = system_clock_ms,
        stage: Stage | None = None,
    ) -> None:
        self.root = Path(path)
        self._db: _sql.Store | None = None
        self._clock = clock
        self._stage = stage

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r})"

    @property
    def exists(self) -> bool:
        """Whether a registry is at ``root`` (something was registered there)."""
        return self._db is not None or (self.root / _sql.FILENAME).is_file()

    @property
    def _store(self) -> _sql.Store:
        """The database for a write: created, with the directory, on first use."""
        if self._db is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._db = _sql.Store(self.root / _sql.FILENAME)
        return self._db

    def _existing(self) -> _sql.Store:
        """The database for a read (or a change to what exists); never created here."""
        if self._db is None:
            if not self.exists:
                raise RegistryNotFound(
                    f"no model registry at {self.root} (the first registration creates it: "
                    "eventml models register ...)"
                )
            self._db = _sql.Store(self.root / _sql.FILENAME)
        return self._db

    def artifact_dir(self, name: str, version: int) -> Path:
        return self.root / name / str(version)

    # --- writing -------------------------------------------------------------------------

    def register(
        self,
        name: str,
        model_or_artifact: object,
        *,
        flavor: str,
        features: Sequence[str] = (),
        metrics: Mapping[str, float] | None = None,
        training: TrainingRange | None = None,
        code_version: str | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Add the next version of ``name``; a :class:`~pathlib.Path` is an artifact file."""
        check_name(name)
        fl = flavor_for(flavor)
        features = tuple(features)
        metrics = {str(k): float(v) for k, v in (metrics or {}).items()}
        store = self._store
        (self.root / ".tmp").mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="register-", dir=self.root / ".tmp"))
        try:
            saved = fl.save(model_or_artifact, tmp)
            fl.load(tmp, features, saved.options)  # never register what cannot load
            for file in saved.files:
                _fsync_path(tmp / file)
                (tmp / file).chmod(0o444)
            draft = ModelVersion(
                name=name, version=0, flavor=fl.name, created_ms=self._clock(),
                features=features, metrics=metrics, training=training,
                code_version=code_version, description=description, files=saved.files,
                sha256=_digest(tmp, saved.files), options=dict(saved.options),
            )
            with store.write() as conn:
                number = _sql.next_version(conn, name)
                final = self.artifact_dir(name, number)
                if final.exists():  # left by a registration killed before its commit
                    _remove_tree(final)
                final.parent.mkdir(exist_ok=True)
                os.rename(tmp, final)
                final.chmod(0o555)
                _fsync_path(final.parent)
                _sql.insert_version(
                    conn, name, number, draft.created_ms, draft.flavor, _meta_json(draft)
                )
                if self._stage is not None:
                    self._stage("before_commit")
        finally:
            if tmp.exists():
                _remove_tree(tmp)
        return self.get(name, number)

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point ``name@alias`` at ``version``; returns the version it pointed at before."""
        check_name(name)
        check_alias(alias)
        with self._existing().write() as conn:
            self._require_version(conn, name, version)
            row = conn.execute(
                "SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)
            ).fetchone()
            conn.execute(
                "INSERT INTO aliases (name, alias, version, updated_ms) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, "
                "updated_ms = excluded.updated_ms",
                (name, alias, version, self._clock()),
            )
        return None if row is None else int(row[0])

    def delete_alias(self, name: str, alias: str) -> int:
        """Remove ``name@alias``; returns the version it pointed at."""
        check_name(name)
        check_alias(alias)
        with self._existing().write() as conn:
            row = conn.execute(
                "DELETE FROM aliases WHERE name = ? AND alias = ? RETURNING version", (name, alias)
            ).fetchone()
            if row is None:
                raise AliasNotFound(f"model {name!r} has no alias {alias!r}")
        return int(row[0])

    # --- reading -------------------------------------------------------------------------

    def _require_version(self, conn: Any, name: str, version: int) -> Any:
        row = conn.execute(
            "SELECT * FROM versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        if row is None:
            latest = _sql.next_version(conn, name) - 1
            if latest == 0:
                raise ModelNotFound(f"no model named {name!r}")
            raise ModelNotFound(f"model {name!r} has no version {version} (latest is {latest})")
        return row

    def get(self, name: str, version: int) -> ModelVersion:
        """One version with its metadata; :class:`ModelNotFound` if there is none."""
        check_name(name)
        with self._existing().read() as conn:
            row = self._require_version(conn, name, version)
            aliases = [r[0] for r in conn.execute(
                "SELECT alias FROM aliases WHERE name = ? AND version = ?", (name, version))]
        return _version_from_row(row, aliases)

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """The version a reference names: ``NAME`` (latest), ``NAME/3`` or ``NAME@ALIAS``
        (``models:/...``: the MLflow registry at ``$MLFLOW_TRACKING_URI``)."""
        if isinstance(ref, str) and ref.startswith(MLFLOW_PREFIX):
            from eventml.ml.mlflow_registry import MlflowRegistry

            return MlflowRegistry().resolve(ref)
        r = parse_ref(ref) if isinstance(ref, str) else ref
        with self._existing().read() as conn:
            if r.alias is not None:
                row = conn.execute(
                    "SELECT version FROM aliases WHERE name = ? AND alias = ?", (r.name, r.alias)
                ).fetchone()
                if row is None:
                    if _sql.next_version(conn, r.name) == 1:
                        raise ModelNotFound(f"no model named {r.name!r}")
                    raise AliasNotFound(f"model {r.name!r} has no alias {r.alias!r}")
                number = int(row[0])
            elif r.version is not None:
                number = r.version
            else:
                number = _sql.next_version(conn, r.name) - 1
                if number == 0:
                    raise ModelNotFound(f"no model named {r.name!r}")
        return self.get(r.name, number)

    def load(self, ref: str | ModelRef) -> LoadedModel:
        """Resolve ``ref``, check its artifact's digest and load it with its flavor; a
        ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` reference loads from MLflow
        (:class:`~eventml.ml.mlflow_registry.MlflowRegistry`, ``$MLFLOW_TRACKING_URI``)."""
        if isinstance(ref, str) and ref.startswith(MLFLOW_PREFIX):
            from eventml.ml.mlflow_registry import MlflowRegistry

            return MlflowRegistry().load(ref)
        v = self.resolve(ref)
        directory = self.artifact_dir(v.name, v.version)
        problem = self._artifact_problem(v)
        if problem:
            raise ArtifactCorrupt(problem)
        model = flavor_for(v.flavor).load(directory, v.features, v.options)
        return LoadedModel(model, v)

    def list_models(self) -> list[ModelSummary]:
        """Every model, by name: latest version, number of versions, aliases (none if there
        is no registry at ``root``: see :attr:`exists`)."""
        if not self.exists:
            return []
        with self._existing().read() as conn:
            rows = conn.execute(
                "SELECT m.name, m.created_ms, MAX(v.version) AS latest, COUNT(v.version) AS n "
                "FROM models m JOIN versions v ON v.name = m.name GROUP BY m.name ORDER BY m.name"
            ).fetchall()
            aliases: dict[str, dict[str, int]] = {}
            for a in conn.execute("SELECT name, alias, version FROM aliases ORDER BY alias"):
                aliases.setdefault(a["name"], {})[a["alias"]] = int(a["version"])
        return [
            ModelSummary(r["name"], int(r["latest"]), int(r["n"]),
                         aliases.get(r["name"], {}), int(r["created_ms"]))
            for r in rows
        ]

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first; :class:`ModelNotFound` if it has none."""
        check_name(name)
        with self._existing().read() as conn:
            rows = conn.execute(
                "SELECT * FROM versions WHERE name = ? ORDER BY version", (name,)
            ).fetchall()
            aliases: dict[int, list[str]] = {}
            for a in conn.execute("SELECT alias, version FROM aliases WHERE name = ?", (name,)):
                aliases.setdefault(int(a["version"]), []).append(a["alias"])
        if not rows:
            raise ModelNotFound(f"no model named {name!r}")
        return [_version_from_row(r, aliases.get(int(r["version"]), [])) for r in rows]

    def _artifact_problem(self, v: ModelVersion) -> str | None:
        directory = self.artifact_dir(v.name, v.version)
        missing = [f for f in v.files if not (directory / f).is_file()]
        if missing or not v.files:
            return f"{v.ref}: artifact missing ({', '.join(missing) or 'no files'}) in {directory}"
        if _digest(directory, v.files) != v.sha256:
            return f"{v.ref}: artifact changed since registration (sha256 differs) in {directory}"
        return None

    def verify(self) -> list[str]:
        """Problems found: versions whose artifact is missing or altered (empty = healthy);
        :class:`RegistryNotFound` if there is no registry to verify."""
        self._existing()
        problems = []
        for m in self.list_models():
            for v in self.list_versions(m.name):
                problem = self._artifact_problem(v)
                if problem:
                    problems.append(problem)
        return problems
