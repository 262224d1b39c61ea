"""Models on the stream: a registry of versioned models, the flavors that load them, and
batched inference in a pipeline (:func:`predict`, ``stream.predict(...)``).

>>> from eventml.ml import ModelRegistry
>>> registry = ModelRegistry(path)                      # doctest: +SKIP
>>> v = registry.register("fraud", estimator, flavor="sklearn", features=["amount"])  # doctest: +SKIP
>>> registry.set_alias("fraud", "champion", v.version)  # doctest: +SKIP
>>> registry.load("fraud@champion").predict_batch(x)    # doctest: +SKIP
>>> app.stream(tx).predict("fraud@champion", features=["amount"], registry=registry,
...                        predictions="predictions", decision=0.5)  # doctest: +SKIP
>>> move_alias(registry, log, "fraud", "champion", 2)   # workers switch at their next batch  # doctest: +SKIP
"""

from eventml.ml.control import AliasWatcher, move_alias
from eventml.ml.drift import (
    AdwinErrorDetector,
    ErrorRateDetector,
    FalseAlarmCheck,
    FeatureDriftDetector,
    alpha_for_run_length,
    check_false_alarms,
    detect_drift,
    detect_error_drift,
)
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
    ContractMismatch,
    FeatureMismatch,
    InferenceStats,
    MissingFeature,
    VersionStats,
    predict,
)
from eventml.ml.mlflow_registry import MlflowRegistry, import_from_mlflow
from eventml.ml.online import (
    JoinStats,
    LabelJoin,
    LearnerCheckpoint,
    OnlineLearner,
    ProgressiveMetrics,
    label_join,
    learn_online,
    progressive_metrics,
    publish_checkpoint,
    read_checkpoint,
    read_progressive_metrics,
)
from eventml.ml.predlog import PredictionLogError, Rescored, explain, read_predictions
from eventml.ml.promotion import (
    PromotionOutcome,
    PromotionPolicy,
    Verdict,
    judge,
    labelled_predictions,
    read_labelled,
    run_promotion,
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
    RegistryNotFound,
    TrainingRange,
    default_registry_path,
    parse_ref,
)
from eventml.ml.retrain import (
    EventFeatures,
    RetrainError,
    RetrainJob,
    RetrainResult,
    TrainingData,
    TrainingSet,
    build_training_set,
    label_from_event,
    run_retraining,
)
from eventml.ml.rollout import Canary
from eventml.ml.triggers import RetrainRequest, RetrainTrigger, TriggerLogic

__all__ = [
    "AdwinErrorDetector",
    "AliasNotFound",
    "AliasWatcher",
    "ArtifactCorrupt",
    "Canary",
    "ContractMismatch",
    "ErrorRateDetector",
    "EventFeatures",
    "FalseAlarmCheck",
    "FeatureDriftDetector",
    "FeatureMismatch",
    "Flavor",
    "FlavorError",
    "InferenceStats",
    "InvalidModelName",
    "JoinStats",
    "LabelJoin",
    "LearnerCheckpoint",
    "LoadedModel",
    "MissingFeature",
    "MlflowRegistry",
    "ModelNotFound",
    "ModelRef",
    "ModelRegistry",
    "ModelSummary",
    "ModelVersion",
    "OnlineLearner",
    "OnlineModel",
    "PredictionLogError",
    "ProgressiveMetrics",
    "PromotionOutcome",
    "PromotionPolicy",
    "RegistryError",
    "RegistryNotFound",
    "Rescored",
    "RetrainError",
    "RetrainJob",
    "RetrainRequest",
    "RetrainResult",
    "RetrainTrigger",
    "Saved",
    "ScoringModel",
    "TrainingData",
    "TrainingRange",
    "TrainingSet",
    "TriggerLogic",
    "Verdict",
    "VersionStats",
    "alpha_for_run_length",
    "build_training_set",
    "check_false_alarms",
    "default_registry_path",
    "detect_drift",
    "detect_error_drift",
    "explain",
    "flavor_for",
    "flavor_names",
    "import_from_mlflow",
    "judge",
    "label_from_event",
    "label_join",
    "labelled_predictions",
    "learn_online",
    "move_alias",
    "parse_ref",
    "predict",
    "progressive_metrics",
    "publish_checkpoint",
    "read_checkpoint",
    "read_labelled",
    "read_predictions",
    "read_progressive_metrics",
    "register_flavor",
    "run_promotion",
    "run_retraining",
]
