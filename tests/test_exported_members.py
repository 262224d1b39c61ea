"""The public surface is deliberate: changing it means changing this test."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "eventml": [
        "ConsumerConfig", "Event", "LogError", "Message", "Record", "TopicPartition",
        "TopicSpec", "__version__", "from_record", "open_log", "to_message",
    ],
    "eventml.events": [
        "Event", "EventDecodeError", "from_record", "from_structured", "new_event_id",
        "to_message", "to_structured", "utc_now",
    ],
    "eventml.log": [
        "DEFAULT_URL", "BrokerUnavailable", "CommitFailed", "Consumer", "ConsumerConfig",
        "Fenced", "InvalidTopic", "Log", "LogError", "Message", "RebalanceListener", "Record",
        "RecordMetadata", "TopicDescription", "TopicExists", "TopicPartition", "TopicSpec",
        "Transaction", "TransactionalProducer", "UnknownTopic", "UnsupportedBroker", "murmur2", "open_log", "partition_for",
        "register_backend", "supported_schemes",
    ],
    "eventml.testing": [
        "DeliveryReport", "DeliveryViolation", "FakeClock", "KafkaBroker", "KafkaUnavailable",
        "MemoryLog", "SequenceReport", "SequenceViolation", "check_delivery", "check_sequences",
        "PredictionReport", "check_predictions", "serve_app",
    ],
    "eventml.log.embedded": ["Durability", "EmbeddedLog", "open_embedded_log"],
    "eventml.log.kafka": ["KafkaConsumer", "KafkaLog", "open_kafka_log"],
    "eventml.windows": ["Aggregator", "ApproxDistinct", "Count", "EmitMode", "Emitted", "Hopping", "Last", "Late", "Max", "Mean", "Min", "Output", "Retracted", "Session", "Sliding", "StdDev", "StreamTime", "Sum", "TopK", "Tumbling", "Window", "WindowSpec", "WindowedAggregation", "WindowedAggregationLogic", "is_closed"],
    "eventml.engine": [
        "App", "Guarantee", "Item", "KeyState", "Settings", "StoreRef", "Stream", "TopicRef",
        "Topology", "WindowedStream", "Worker", "WorkerFailed", "WorkerStats", "load_app",
        "run_app",
    ],
    "eventml.features": [
        "DAY", "HOUR", "MINUTE", "SECOND", "CountDistinct", "EntityState", "Feature",
        "FeatureTopics", "FeatureView", "HistoricalFeatures", "OnlineStore", "RedisOnlineStore",
        "RedisSync", "SkewReport",
        "count", "distinct", "get_historical_features", "materialize", "materialized",
        "maximum", "mean", "minimum", "since_last", "total", "verify_served",
    ],
    "eventml.schema": [
        "HEADER_SIZE", "LEVELS", "MAGIC_BYTE", "BadMagicByte", "BoundContract", "Contract",
        "ContractViolation", "Frame", "FrameError", "Incompatibility", "IncompatibleSchema",
        "InvalidSchema", "Level", "ParsedSchema", "Reference", "SchemaError", "SchemaNotFound",
        "SchemaRegistry", "SchemaType", "SchemaVersion", "ShortFrame", "StoredSchema",
        "SubjectNotFound", "UnknownSchemaId", "VersionNotFound", "contract_of", "decode_frame",
        "encode_frame", "parse_schema",
    ],
    "eventml.observe": ["MetricsMiddleware", "ServiceMetrics", "WorkerMetrics"],
    "eventml.security": [
        "OPERATIONS", "ApiKey", "AuthError", "KeyStore", "KeyStoreError", "Operation", "Scope",
        "ScopeError", "default_path", "is_resource_name", "parse_scope",
    ],
    "eventml.api": [
        "ApiError", "AsyncConfig", "Authorizer", "DeadLettersRouter", "FeatureRefresher",
        "IngestLimits", "ModelCache", "PredictLimits", "RateLimit", "ServedView", "ViewsRouter",
        "create_app", "features_router", "ingest_router", "models_router", "online_stores",
        "predict_router", "sqlite_view", "stored_view", "topics_router", "worker_app",
    ],
    "eventml.schema.api": [
        "ACCEPTED_CONTENT_TYPES", "CONTENT_TYPE", "MAX_BODY_BYTES", "RegistryJSONResponse",
        "create_app", "router",
    ],
    "eventml.sourcing": [
        "Aggregate", "CommandRejected", "ConcurrencyConflict", "DomainEvent", "EventLike",
        "EventStore", "Executed", "Loaded", "Repository", "SourcingError", "StoreStats",
        "StoredEvent", "replay",
    ],
    "eventml.state": [
        "ChangelogStateBackend", "MemoryStateBackend", "PartitionStore", "SqliteStateBackend",
        "StateBackend", "StateError", "StoreSpec", "backend_for", "register_state_backend",
    ],
    "eventml.deadletter": [
        "DLQ_PREFIX", "REPLAY_GROUP", "REPLAY_OF", "DeadLetter", "ErrorKind", "Failed",
        "FatalError", "InvalidDeadLetter", "Ok", "Outcome", "PermanentError", "ReplayResult",
        "RetryPolicy", "TransientError", "call_with_retry", "classify", "dead_letter_message",
        "dead_letter_topic", "parse_dead_letter", "provenance", "redact", "replay",
    ],
    "eventml.replay": [
        "DecisionDiff", "ReplayError", "ReplayResult", "Sandbox", "Side", "TimeWindow",
        "diff_decisions", "parse_time", "replay", "sandbox_app",
    ],
    "eventml.views": [
        "EventMeta", "Handler", "InvalidProjection", "PartitionStatus", "Projection",
        "ProjectionFailed", "ProjectionRunner", "Row", "RowStore", "RunStats", "Table",
        "ViewNotFound", "ViewStatus", "ViewStore", "Views", "as_views", "default_db_path",
        "load_views", "open_view_store", "projection", "view_status",
    ],
    "eventml.views.pg_store": ["PostgresViewStore", "redact", "table_name"],
    "eventml.ml": [
        "AliasNotFound", "ArtifactCorrupt", "FeatureMismatch", "InferenceStats", "MissingFeature",
        "VersionStats", "predict", "Flavor", "FlavorError", "InvalidModelName",
        "LoadedModel", "ModelNotFound", "ModelRef", "ModelRegistry", "ModelSummary",
        "ModelVersion", "OnlineModel", "RegistryError", "Saved", "ScoringModel", "TrainingRange",
        "default_registry_path", "flavor_for", "flavor_names", "parse_ref", "register_flavor",
        "MlflowRegistry", "RegistryNotFound", "import_from_mlflow",
        "AliasWatcher", "Canary", "ContractMismatch", "PredictionLogError", "Rescored", "explain",
        "move_alias", "read_predictions",
        "EventFeatures", "RetrainError", "RetrainJob", "RetrainResult", "TrainingData",
        "TrainingSet", "build_training_set", "label_from_event", "run_retraining",
        "RetrainRequest", "RetrainTrigger", "TriggerLogic",
        "PromotionOutcome", "PromotionPolicy", "Verdict", "judge", "labelled_predictions",
        "read_labelled", "run_promotion",
        "JoinStats", "LabelJoin", "LearnerCheckpoint", "OnlineLearner", "ProgressiveMetrics",
        "label_join", "learn_online", "progressive_metrics", "publish_checkpoint",
        "read_checkpoint", "read_progressive_metrics",
        "AdwinErrorDetector", "ErrorRateDetector", "FalseAlarmCheck", "FeatureDriftDetector",
        "alpha_for_run_length", "check_false_alarms", "detect_drift", "detect_error_drift",
    ],
    "eventml.ml.drift": [
        "AdwinErrorDetector", "AfterDrift", "Alternative", "ErrorRateDetector", "FalseAlarmCheck",
        "FeatureDriftDetector", "FeatureReference", "Metric", "PsiThreshold", "Statistic",
        "alpha_for_run_length", "bin_counts", "check_false_alarms", "detect_drift",
        "detect_error_drift", "ks_threshold", "outcome", "per_test_alpha", "psi",
        "psi_threshold", "quantile_edges",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_members(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PUBLIC[module])
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is exported but missing"


def test_importing_eventml_has_no_heavy_side_effects() -> None:
    import subprocess
    import sys

    code = ("import sys, eventml; "
            "print(','.join(m for m in ('confluent_kafka', 'sklearn', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
