"""Models on the stream: a registry of versioned models, the flavors that load them, and
batched inference in a pipeline (:func:`predict`, ``stream.predict(...)``).

>>> from eventml.ml import ModelRegistry
>>> registry = ModelRegistry(path)                      # doctest: +SKIP
>>> v = registry.register("fraud", estimator, flavor="sklearn", features=["amount"])  # doctest: +SKIP
>>> registry.set_alias("fraud", "champion", v.version)  # doctest: +SKIP
>>> registry.load("fraud@champion").predict_batch(x)    # doctest: +SKIP
"""

from eventml.ml.flavors import (
    Flavor,
    FlavorError,
    OnlineModel,
    Saved,
    ScoringModel,
    flavor_for,
    flavor_names,
    register_flavor,
)
from eventml.ml.inference import (
    FeatureMismatch,
    InferenceStats,
    MissingFeature,
    VersionStats,
    predict,
)
from eventml.ml.registry import (
    AliasNotFound,
    ArtifactCorrupt,
    InvalidModelName,
    LoadedModel,
    ModelNotFound,
    ModelRef,
    ModelRegistry,
    ModelSummary,
    ModelVersion,
    RegistryError,
    TrainingRange,
    default_registry_path,
    parse_ref,
)

__all__ = [
    "AliasNotFound",
    "ArtifactCorrupt",
    "FeatureMismatch",
    "Flavor",
    "FlavorError",
    "InferenceStats",
    "InvalidModelName",
    "LoadedModel",
    "MissingFeature",
    "ModelNotFound",
    "ModelRef",
    "ModelRegistry",
    "ModelSummary",
    "ModelVersion",
    "OnlineModel",
    "RegistryError",
    "Saved",
    "ScoringModel",
    "TrainingRange",
    "VersionStats",
    "default_registry_path",
    "flavor_for",
    "flavor_names",
    "parse_ref",
    "predict",
    "register_flavor",
]
