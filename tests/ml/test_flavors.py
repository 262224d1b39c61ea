"""Every flavor round-trips through the registry and scores exactly as the original model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from eventml.ml import FlavorError, ModelRegistry, OnlineModel, ScoringModel, flavor_for
from eventml.ml.flavors import callable_reference

FEATURES = ["amount", "velocity", "age", "distance"]
WEIGHTS = np.array([0.5, -1.0, 0.25, 2.0])


def linear_score(x: NDArray[Any]) -> NDArray[np.float64]:
    """A plain function model (importable by reference)."""
    return np.asarray(x, dtype=np.float64) @ WEIGHTS


def wrong_length(x: NDArray[Any]) -> NDArray[np.float64]:
    return np.zeros(len(x) + 1)


@pytest.fixture
def data() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, len(FEATURES)))
    y = (x @ WEIGHTS + rng.normal(scale=0.5, size=len(x)) > 0).astype(np.int64)
    return x, y


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models")


def test_sklearn_classifier_round_trips(registry: ModelRegistry, data: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = data
    model = LogisticRegression().fit(x, y)
    v = registry.register("lr", model, flavor="sklearn", features=FEATURES)
    loaded = registry.load("lr")
    assert isinstance(loaded.model, ScoringModel)
    probe = np.random.default_rng(1).normal(size=(50, len(FEATURES)))
    scores = loaded.predict_batch(probe)
    assert scores.dtype == np.float64 and scores.shape == (50,)
    np.testing.assert_array_equal(scores, model.predict_proba(probe)[:, 1])
    assert v.files == ("model.skops",) and loaded.version == v


def test_sklearn_regressor_and_an_artifact_file(
    registry: ModelRegistry, data: Any, tmp_path: Path
) -> None:
    import skops.io as sio
    from sklearn.ensemble import GradientBoostingRegressor

    x, y = data
    model = GradientBoostingRegressor(n_estimators=20, random_state=0).fit(x, y)
    sio.dump(model, tmp_path / "gbr.skops")
    registry.register("gbr", tmp_path / "gbr.skops", flavor="sklearn", features=FEATURES)
    np.testing.assert_array_equal(registry.load("gbr/1").predict_batch(x), model.predict(x))


def test_onnx_matches_sklearn_within_tolerance(registry: ModelRegistry, data: Any) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = data
    model = LogisticRegression().fit(x, y)
    onx = to_onnx(model, x[:1].astype(np.float32), options={"zipmap": False})
    registry.register("lr", onx, flavor="onnx", features=FEATURES)
    probe = np.random.default_rng(2).normal(size=(1000, len(FEATURES)))
    scores = registry.load("lr").predict_batch(probe)
    assert scores.dtype == np.float64 and scores.shape == (1000,)
    np.testing.assert_allclose(scores, model.predict_proba(probe)[:, 1], rtol=0, atol=1e-5)


def test_onnx_with_zipmap_output_says_how_to_convert(registry: ModelRegistry, data: Any) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = data
    onx = to_onnx(LogisticRegression().fit(x, y), x[:1].astype(np.float32))
    registry.register("zipmap", onx, flavor="onnx")
    with pytest.raises(FlavorError, match="zipmap"):
        registry.load("zipmap").predict_batch(x)


def test_river_round_trips_and_learns_online(registry: ModelRegistry, data: Any) -> None:
    from river import linear_model

    x, y = data
    model = linear_model.LogisticRegression()
    for row, label in zip(x, y, strict=True):
        model.learn_one(dict(zip(FEATURES, row, strict=True)), bool(label))
    registry.register("river", model, flavor="river", features=FEATURES)
    loaded = registry.load("river")
    expected = [model.predict_proba_one(dict(zip(FEATURES, r, strict=True)))[True] for r in x]
    np.testing.assert_allclose(loaded.predict_batch(x), expected, rtol=0, atol=1e-12)
    assert isinstance(loaded.model, OnlineModel)
    before = loaded.predict_batch(x[:1])[0]
    loaded.model.learn_one(x[0], not bool(y[0]))
    assert loaded.predict_batch(x[:1])[0] != before


def test_river_needs_its_features(registry: ModelRegistry) -> None:
    from river import linear_model

    with pytest.raises(FlavorError, match="features"):
        registry.register("river", linear_model.LogisticRegression(), flavor="river")


def test_callable_is_stored_by_reference(registry: ModelRegistry, data: Any) -> None:
    x, _ = data
    v = registry.register("fn", linear_score, flavor="callable", features=FEATURES)
    directory = registry.artifact_dir("fn", v.version)
    assert (directory / "callable.txt").read_text().strip() == callable_reference(linear_score)
    np.testing.assert_array_equal(registry.load("fn").predict_batch(x), x @ WEIGHTS)
    registry.register("fn", f"{__name__}:linear_score", flavor="callable")  # the text form
    np.testing.assert_array_equal(registry.load("fn/2").predict_batch(x), x @ WEIGHTS)


@pytest.mark.parametrize("bad", [lambda x: x, "no_colon", "tests.nowhere:f", "math:pi"])
def test_callable_that_cannot_be_imported_by_name_is_refused(
    registry: ModelRegistry, bad: Any
) -> None:
    with pytest.raises(FlavorError):
        registry.register("fn", bad, flavor="callable")
    assert registry.list_models() == []


def test_a_model_giving_the_wrong_number_of_scores_fails_clearly(registry: ModelRegistry) -> None:
    registry.register("bad", wrong_length, flavor="callable")
    with pytest.raises(FlavorError, match=r"expected \(3,\)"):
        registry.load("bad").predict_batch(np.zeros((3, 2)))


def test_a_string_is_not_taken_for_an_artifact_path(registry: ModelRegistry) -> None:
    with pytest.raises(FlavorError, match=r"pathlib\.Path"):
        registry.register("lr", "model.skops", flavor="sklearn")


def test_unknown_flavor_lists_the_known_ones() -> None:
    with pytest.raises(FlavorError, match="known: callable, onnx, river, sklearn"):
        flavor_for("pytorch")


def test_missing_library_names_the_extra(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"pip install 'eventml\[onnx\]'"):
        registry.register("m", b"not onnx", flavor="onnx")
