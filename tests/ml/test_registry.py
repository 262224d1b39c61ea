"""The registry: numbered immutable versions, aliases, metadata, and safety across processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from eventml.ml import (
    AliasNotFound,
    ArtifactCorrupt,
    InvalidModelName,
    ModelNotFound,
    ModelRef,
    ModelRegistry,
    RegistryNotFound,
    TrainingRange,
    default_registry_path,
    parse_ref,
)

ROOT = Path(__file__).resolve().parents[2]
SCORE = f"{__name__}:row_sum"


def row_sum(x: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray(x, dtype=np.float64).sum(axis=1)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models", clock=lambda: 1_700_000_000_000)


def test_versions_are_numbered_and_carry_their_metadata(registry: ModelRegistry) -> None:
    training = TrainingRange(topic="payments", start_offsets={0: 0, 1: 5},
                             end_offsets={0: 100, 1: 90}, start_ms=1, end_ms=2)
    v1 = registry.register("fraud", SCORE, flavor="callable", features=["a", "b"],
                           metrics={"auc": 0.91}, training=training, code_version="abc123",
                           description="first")
    v2 = registry.register("fraud", SCORE, flavor="callable", features=["a", "b"])
    assert (v1.version, v2.version) == (1, 2)
    got = registry.get("fraud", 1)
    assert got == v1
    assert got.features == ("a", "b") and got.metrics == {"auc": 0.91}
    assert got.training == training and got.code_version == "abc123"
    assert got.description == "first" and got.created_ms == 1_700_000_000_000
    assert got.flavor == "callable" and len(got.sha256) == 64
    assert registry.resolve("fraud") == v2  # a bare name is the latest version
    assert registry.resolve("fraud/1") == v1
    assert [v.version for v in registry.list_versions("fraud")] == [1, 2]
    [summary] = registry.list_models()
    assert (summary.name, summary.latest_version, summary.versions) == ("fraud", 2, 2)


def test_aliases_move_resolve_and_are_listed(registry: ModelRegistry) -> None:
    for _ in range(3):
        registry.register("fraud", SCORE, flavor="callable")
    assert registry.set_alias("fraud", "champion", 1) is None
    assert registry.set_alias("fraud", "challenger", 3) is None
    assert registry.resolve("fraud@champion").version == 1
    assert registry.set_alias("fraud", "champion", 2) == 1  # moved: the previous holder returned
    assert registry.resolve("fraud@champion").version == 2
    assert registry.load("fraud@challenger").version.version == 3
    assert registry.list_models()[0].aliases == {"challenger": 3, "champion": 2}
    assert registry.get("fraud", 2).aliases == ("champion",)
    assert registry.get("fraud", 1).aliases == ()
    assert registry.delete_alias("fraud", "challenger") == 3
    with pytest.raises(AliasNotFound, match="has no alias 'challenger'"):
        registry.resolve("fraud@challenger")
    with pytest.raises(AliasNotFound):
        registry.delete_alias("fraud", "challenger")
    with pytest.raises(ModelNotFound, match=r"no version 9 \(latest is 3\)"):
        registry.set_alias("fraud", "champion", 9)
    assert registry.resolve("fraud@champion").version == 2


def test_reads_of_a_missing_registry_raise_and_create_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "models"
    registry = ModelRegistry(path)
    assert not registry.exists and registry.list_models() == []
    reads = [lambda: registry.resolve("m"), lambda: registry.load("m@champion"),
             lambda: registry.get("m", 1), lambda: registry.list_versions("m"), registry.verify,
             lambda: registry.set_alias("m", "champion", 1),  # moves what exists: creates nothing
             lambda: registry.delete_alias("m", "champion")]
    for read in reads:
        with pytest.raises(RegistryNotFound, match=f"^no model registry at {path} "):
            read()
    assert list(tmp_path.iterdir()) == []
    registry.register("m", SCORE, flavor="callable")  # the one call that creates it
    assert registry.exists and ModelRegistry(path).resolve("m").version == 1


def test_unknown_models_and_versions(registry: ModelRegistry) -> None:
    registry.register("m", SCORE, flavor="callable")
    with pytest.raises(ModelNotFound, match="no model named 'nope'"):
        registry.resolve("nope")
    with pytest.raises(ModelNotFound, match="no model named 'nope'"):
        registry.resolve("nope@champion")
    with pytest.raises(ModelNotFound):
        registry.list_versions("nope")
    with pytest.raises(ModelNotFound, match=r"has no version 2 \(latest is 1\)"):
        registry.load("m/2")


@pytest.mark.parametrize("ref", ["", "a b", "-x", "x/0", "x/one", "x@", "x@1st", "x@a/b",
                                 "x.y", "../x", "x/1/2", "a" * 129])
def test_invalid_references_are_refused(registry: ModelRegistry, ref: str) -> None:
    with pytest.raises(InvalidModelName):
        registry.resolve(ref)


def test_parse_ref_is_pure() -> None:
    assert parse_ref("fraud") == ModelRef("fraud")
    assert parse_ref("fraud/3") == ModelRef("fraud", version=3)
    assert parse_ref("fraud@champion") == ModelRef("fraud", alias="champion")
    assert str(parse_ref("fraud@champion")) == "fraud@champion"


def test_versions_are_immutable(registry: ModelRegistry) -> None:
    v1 = registry.register("m", SCORE, flavor="callable", metrics={"auc": 0.5})
    registry.register("m", SCORE, flavor="callable", metrics={"auc": 0.9})
    assert registry.get("m", 1) == v1  # re-registering made a new version
    directory = registry.artifact_dir("m", 1)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o555
    assert stat.S_IMODE((directory / "callable.txt").stat().st_mode) == 0o444
    with sqlite3.connect(registry.root / "registry.sqlite") as conn, \
            pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute("UPDATE versions SET flavor = 'onnx' WHERE name = 'm'")
    assert registry.verify() == []


def test_an_altered_artifact_is_detected(registry: ModelRegistry) -> None:
    registry.register("m", SCORE, flavor="callable")
    path = registry.artifact_dir("m", 1) / "callable.txt"
    path.chmod(0o644)
    path.write_text("os:getcwd\n")
    with pytest.raises(ArtifactCorrupt, match="sha256 differs"):
        registry.load("m")
    assert registry.verify() == [f"m/1: artifact changed since registration (sha256 differs) "
                                 f"in {registry.artifact_dir('m', 1)}"]


def test_default_path_is_the_data_dir(tmp_path: Path) -> None:
    assert default_registry_path(f"embedded://{tmp_path}/d") == tmp_path / "d" / "models"
    assert default_registry_path("kafka://127.0.0.1:9092") == Path(".eventml/models")
    assert default_registry_path(None) == Path(".eventml/models")


# --- across processes ----------------------------------------------------------------------

def _python(code: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_registrations_get_distinct_consecutive_versions(tmp_path: Path) -> None:
    path = tmp_path / "models"
    ModelRegistry(path)
    procs = [_python(f"""
        from eventml.ml import ModelRegistry
        r = ModelRegistry({str(path)!r})
        print(",".join(str(r.register("m", {SCORE!r}, flavor="callable").version)
                       for _ in range(6)))
        """) for _ in range(4)]
    numbers = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        numbers += [int(n) for n in out.split(",")]
    assert sorted(numbers) == list(range(1, 25))
    registry = ModelRegistry(path)
    assert [v.version for v in registry.list_versions("m")] == list(range(1, 25))
    assert registry.verify() == []


KILL_BEFORE_COMMIT = """
    import os, signal
    from eventml.ml import ModelRegistry
    def die(stage):
        os.kill(os.getpid(), signal.SIGKILL)
    ModelRegistry({path!r}, stage=die).register("m", {score!r}, flavor="callable")
    """

# The broken order a checker must catch: the row commits before the artifact is in place.
COMMIT_FIRST = """
    import os, signal
    from eventml.ml import ModelRegistry, _store
    r = ModelRegistry({path!r})
    with r._store.write() as conn:
        n = _store.next_version(conn, "m")
        _store.insert_version(conn, "m", n, 0, "callable", '{{"files": ["callable.txt"]}}')
    os.kill(os.getpid(), signal.SIGKILL)  # killed before writing the artifact
    """


def test_a_registration_killed_before_commit_leaves_no_version(tmp_path: Path) -> None:
    path = tmp_path / "models"
    registry = ModelRegistry(path)
    registry.register("m", SCORE, flavor="callable")
    p = _python(KILL_BEFORE_COMMIT.format(path=str(path), score=SCORE))
    p.communicate(timeout=120)
    assert p.returncode == -signal.SIGKILL
    assert [v.version for v in registry.list_versions("m")] == [1]
    assert registry.artifact_dir("m", 2).exists()  # an orphan: artifact but no row
    assert registry.verify() == []
    v = registry.register("m", SCORE, flavor="callable")  # takes the clean number 2
    assert v.version == 2
    assert registry.load("m/2").predict_batch(np.ones((2, 3))).tolist() == [3.0, 3.0]
    assert registry.verify() == []


def test_the_checker_catches_a_version_committed_before_its_artifact(tmp_path: Path) -> None:
    path = tmp_path / "models"
    registry = ModelRegistry(path)
    registry.register("m", SCORE, flavor="callable")
    p = _python(COMMIT_FIRST.format(path=str(path)))
    p.communicate(timeout=120)
    assert p.returncode == -signal.SIGKILL
    assert registry.verify() == [
        f"m/2: artifact missing (callable.txt) in {registry.artifact_dir('m', 2)}"
    ]
    with pytest.raises(ArtifactCorrupt):
        registry.load("m")
