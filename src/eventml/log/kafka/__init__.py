"""The Kafka backend: ``kafka://HOST:PORT[,HOST:PORT][?librdkafka.setting=value&...]``.

Needs ``confluent-kafka`` (``pip install 'eventml[kafka]'``); it is imported only
when a Kafka log is opened or one of the classes below is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventml.log.base import LogError
from eventml.log.registry import BrokerUrl

if TYPE_CHECKING:
    from eventml.log.kafka.consumer import KafkaConsumer
    from eventml.log.kafka.log import KafkaLog

__all__ = ["KafkaConsumer", "KafkaLog", "open_kafka_log"]

_MISSING = "confluent-kafka is not installed: pip install 'eventml[kafka]'"


def open_kafka_log(url: BrokerUrl) -> KafkaLog:
    """The registry's factory for ``kafka://`` URLs."""
    try:
        from eventml.log.kafka.log import open_kafka_log as _open
    except ImportError as exc:
        if exc.name and exc.name.startswith("confluent_kafka"):
            raise LogError(_MISSING) from None
        raise
    return _open(url)


def __getattr__(name: str) -> Any:
    if name == "KafkaLog":
        from eventml.log.kafka.log import KafkaLog

        return KafkaLog
    if name == "KafkaConsumer":
        from eventml.log.kafka.consumer import KafkaConsumer

        return KafkaConsumer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
