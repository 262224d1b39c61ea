"""librdkafka settings for the Kafka log's producer, consumers and admin client."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from eventml.log.base import ConsumerConfig, LogError

_log = logging.getLogger("eventml.log.kafka")
_log.addHandler(logging.NullHandler())  # never the last-resort stderr handler
RDKAFKA_LOGGER = logging.getLogger("eventml.log.kafka.rdkafka")

ConfigValue = str | int | float
Config = dict[str, ConfigValue]

# Transient librdkafka errors (broker down, reconnecting): debug-level noise.
_TRANSIENT = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._TIMED_OUT,
    }
)


def _on_error(err: KafkaError) -> None:
    if err.fatal():
        _log.error("Kafka client fatal error: %s", err)
    elif err.code() in _TRANSIENT:
        _log.debug("Kafka client: %s", err)
    else:
        _log.warning("Kafka client error: %s", err)


def _base(bootstrap: str) -> Config:
    # log_level 3: librdkafka logs errors only (and to ``logging``, never stderr)
    return {"bootstrap.servers": bootstrap, "log_level": 3, "allow.auto.create.topics": "false"}


def common(bootstrap: str, options: Mapping[str, str]) -> Config:
    """Settings every client gets: bootstrap, quiet logging, then the URL's options."""
    conf = _base(bootstrap)
    conf.update(options)
    return conf


def client_kwargs() -> dict[str, Any]:
    """Keyword arguments for every client: librdkafka logs and errors go to ``logging``."""
    return {"logger": RDKAFKA_LOGGER, "error_cb": _on_error}


def producer(bootstrap: str, options: Mapping[str, str]) -> Config:
    """Idempotent, acks=all, Java-compatible key partitioning, small linger for batching."""
    conf = _base(bootstrap)
    conf.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "message.timeout.ms": 60_000,
        }
    )
    if str(options.get("enable.idempotence", "true")).strip().lower() in ("false", "0", "no"):
        raise LogError(
            "enable.idempotence=false is not supported: append relies on the idempotent "
            "producer for per-key order and for matching offsets to messages; drop the option"
        )
    conf.update(options)
    return conf


TRANSACTION_TIMEOUT_MS = 10_000


def transactional_producer(
    bootstrap: str, options: Mapping[str, str], transactional_id: str
) -> Config:
    """:func:`producer`'s settings plus ``transactional.id`` (exactly-once, EOS v2).

    librdkafka refuses ``message.timeout.ms`` > ``transaction.timeout.ms``: unless both
    are given, the message timeout is capped at the transaction timeout.
    """
    if not transactional_id:
        raise LogError("transactional_id must be a non-empty string, stable per worker instance")
    conf = producer(bootstrap, options)
    conf["transactional.id"] = transactional_id
    # as Kafka Streams does under EOS: a transaction left open by a dead worker blocks
    # read_committed readers of its partitions until it times out, so keep that short
    conf.setdefault("transaction.timeout.ms", str(TRANSACTION_TIMEOUT_MS))
    if "message.timeout.ms" not in options:
        txn_timeout = int(conf.get("transaction.timeout.ms", 60_000))
        conf["message.timeout.ms"] = min(int(conf["message.timeout.ms"]), txn_timeout)
    return conf


def consumer(
    bootstrap: str, options: Mapping[str, str], group: str, config: ConsumerConfig
) -> Config:
    """A group member: manual commits, read_committed, liveness from ``config``.

    librdkafka needs session.timeout.ms <= max.poll.interval.ms: the shorter one wins.
    """
    session = min(config.session_timeout_ms, config.max_poll_interval_ms)
    conf = _base(bootstrap)
    conf.update(
        {
            "group.id": group,
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "isolation.level": "read_committed",
            "auto.offset.reset": config.auto_offset_reset,
            "session.timeout.ms": session,
            "heartbeat.interval.ms": max(100, min(3000, session // 5)),
            "max.poll.interval.ms": config.max_poll_interval_ms,
            "partition.assignment.strategy": "cooperative-sticky",
            # An idle fetch is held by the broker this long, delaying seeks and offset
            # look-ups on the same connection; new records still return at once.
            "fetch.wait.max.ms": 100,
            # Once queued.min.messages are buffered, fetching pauses this long (default 1 s:
            # a reader faster than that idles, waiting for data the broker already has).
            "fetch.queue.backoff.ms": 20,
        }
    )
    conf.update(options)
    conf.update(config.extra)
    return conf


def metadata_consumer(bootstrap: str, options: Mapping[str, str]) -> Config:
    """A consumer that never joins a group: watermarks and offsets-for-times only."""
    conf = common(bootstrap, options)
    conf.update(
        {
            "group.id": f"eventml-metadata-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": "false",
            "isolation.level": "read_uncommitted",
        }
    )
    return conf


def error_of(exc: BaseException) -> KafkaError | None:
    """The KafkaError inside a KafkaException (``None`` for anything else)."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def error_code(exc: BaseException) -> int | None:
    err = error_of(exc)
    return None if err is None else err.code()


def bad_setting(exc: KafkaException, where: str) -> LogError:
    """A client refused its configuration (unknown property, bad value)."""
    err = error_of(exc)
    return LogError(f"invalid Kafka client setting in {where}: {err.str() if err else exc}")
