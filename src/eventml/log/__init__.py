"""The event log: one contract, several backends (memory, embedded SQLite, Kafka)."""

from eventml.log.base import (
    BrokerUnavailable,
    CommitFailed,
    Consumer,
    ConsumerConfig,
    InvalidTopic,
    Log,
    LogError,
    Message,
    RebalanceListener,
    Record,
    RecordMetadata,
    TopicDescription,
    TopicExists,
    TopicPartition,
    TopicSpec,
    UnknownTopic,
)
from eventml.log.partitioner import murmur2, partition_for
from eventml.log.registry import (
    DEFAULT_URL,
    UnsupportedBroker,
    open_log,
    register_backend,
    supported_schemes,
)

__all__ = [
    "DEFAULT_URL",
    "BrokerUnavailable",
    "CommitFailed",
    "Consumer",
    "ConsumerConfig",
    "InvalidTopic",
    "Log",
    "LogError",
    "Message",
    "RebalanceListener",
    "Record",
    "RecordMetadata",
    "TopicDescription",
    "TopicExists",
    "TopicPartition",
    "TopicSpec",
    "UnknownTopic",
    "UnsupportedBroker",
    "murmur2",
    "open_log",
    "partition_for",
    "register_backend",
    "supported_schemes",
]
