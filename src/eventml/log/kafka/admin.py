"""Topic administration on Kafka: create, delete, list, describe, partition counts."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource, ConfigSource
from confluent_kafka.cimpl import NewTopic

from eventml.log.base import (
    BrokerUnavailable,
    CleanupPolicy,
    InvalidTopic,
    LogError,
    TopicExists,
    TopicSpec,
    UnknownTopic,
)
from eventml.log.kafka import config as cfg

_SPEC_KEYS = frozenset({"retention.ms", "retention.bytes", "cleanup.policy"})
_METADATA_WAIT_S = 15.0


def unknown_topic(name: str) -> UnknownTopic:
    return UnknownTopic(f"unknown topic {name!r}: create it first")


def topic_configs(spec: TopicSpec) -> dict[str, str]:
    """Kafka topic configs for ``spec``: retention and cleanup, then ``spec.config``.

    ``retention_ms=None`` keeps records forever (``retention.ms=-1``), as on the other logs.
    """
    configs: dict[str, str] = {"cleanup.policy": spec.cleanup_policy}
    if spec.cleanup_policy == "delete":
        configs["retention.ms"] = str(-1 if spec.retention_ms is None else spec.retention_ms)
    elif spec.retention_ms is not None:
        configs["retention.ms"] = str(spec.retention_ms)
    if spec.retention_bytes is not None:
        configs["retention.bytes"] = str(spec.retention_bytes)
    configs.update({k: str(v) for k, v in spec.config.items()})
    return configs


def spec_from_configs(name: str, partitions: int, entries: Mapping[str, Any]) -> TopicSpec:
    """The :class:`TopicSpec` a topic's described configs stand for."""
    values = {k: e.value for k, e in entries.items() if e.value is not None}
    explicit = {
        k: values[k]
        for k, e in entries.items()
        if k in values and ConfigSource(e.source) is ConfigSource.DYNAMIC_TOPIC_CONFIG
    }
    policy_raw = values.get("cleanup.policy", "delete")
    policy: CleanupPolicy = "compact" if "compact" in policy_raw.split(",") else "delete"
    extra = {k: v for k, v in explicit.items() if k not in _SPEC_KEYS}
    if policy_raw != policy:
        extra["cleanup.policy"] = policy_raw
    # retention applies to "delete" topics: report the effective value there, and only
    # an explicit one on compacted topics (where the broker default means nothing)
    retention = values if "delete" in policy_raw.split(",") else explicit
    return TopicSpec(
        name,
        partitions,
        retention_ms=_limit(retention.get("retention.ms")),
        retention_bytes=_limit(retention.get("retention.bytes")),
        cleanup_policy=policy,
        config=extra,
    )


def _limit(value: str | None) -> int | None:
    if value is None or int(value) < 0:
        return None
    return int(value)


class TopicAdmin:
    """An AdminClient with the log's error mapping and metadata waits."""

    def __init__(self, bootstrap: str, options: Mapping[str, str], timeout_s: float) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        conf = cfg.common(bootstrap, options)
        self.client = AdminClient(conf, **cfg.client_kwargs())

    def check_reachable(self, timeout_s: float) -> int:
        """Number of brokers; :class:`BrokerUnavailable` if none answers in ``timeout_s``."""
        try:
            md = self.client.list_topics(timeout=timeout_s)
        except KafkaException:
            md = None
        if md is None or not md.brokers:
            raise BrokerUnavailable(
                f"cannot reach Kafka at {self.bootstrap} within {timeout_s:g} s: "
                "is the broker running? (scripts/kafka start)"
            )
        return len(md.brokers)

    def _metadata(self, topic: str | None = None) -> Any:
        try:
            return self.client.list_topics(topic=topic, timeout=self.timeout_s)
        except KafkaException as exc:
            raise BrokerUnavailable(
                f"Kafka at {self.bootstrap} did not answer a metadata request: {exc}"
            ) from None

    def list(self) -> list[str]:
        md = self._metadata()
        return sorted(
            name for name, t in md.topics.items() if not name.startswith("__") and t.error is None
        )

    def partitions(self, topic: str, *, created: bool = False) -> int:
        """The topic's partition count (waiting while its leaders are being elected).

        ``created``: the topic was just created, so wait for it to show up in metadata.
        """
        deadline = time.monotonic() + _METADATA_WAIT_S
        while True:
            t = self._metadata(topic).topics.get(topic)
            err = None if t is None else t.error
            code = None if err is None else err.code()
            missing = t is None or code in (
                KafkaError.UNKNOWN_TOPIC_OR_PART,
                KafkaError._UNKNOWN_TOPIC,
            )
            if missing and not (created and time.monotonic() < deadline):
                raise unknown_topic(topic)
            ready = (
                not missing and t.partitions and all(p.leader >= 0 for p in t.partitions.values())
            )
            if code is None and ready:
                return len(t.partitions)
            if time.monotonic() > deadline:
                raise LogError(f"topic {topic!r} has no leader for some partitions ({err})")
            time.sleep(0.05)

    def create(self, spec: TopicSpec, replication: int, exist_ok: bool) -> None:
        new = NewTopic(spec.name, spec.partitions, replication, config=topic_configs(spec))
        future = self.client.create_topics([new], request_timeout=self.timeout_s)[spec.name]
        try:
            future.result()
        except KafkaException as exc:
            code = cfg.error_code(exc)
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                if exist_ok:
                    return
                raise TopicExists(f"topic {spec.name!r} already exists") from None
            if code in (
                KafkaError.INVALID_CONFIG,
                KafkaError.INVALID_PARTITIONS,
                KafkaError.INVALID_REPLICATION_FACTOR,
                KafkaError.TOPIC_EXCEPTION,
                KafkaError.POLICY_VIOLATION,
            ):
                raise InvalidTopic(f"Kafka refused topic {spec.name!r}: {_reason(exc)}") from None
            raise LogError(f"could not create topic {spec.name!r}: {_reason(exc)}") from None
        # Visible in metadata (leaders elected) before returning, so appends work at once.
        self.partitions(spec.name, created=True)

    def delete(self, name: str) -> None:
        future = self.client.delete_topics([name], request_timeout=self.timeout_s)[name]
        try:
            future.result()
        except KafkaException as exc:
            if cfg.error_code(exc) == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise unknown_topic(name) from None
            raise LogError(f"could not delete topic {name!r}: {_reason(exc)}") from None

    def spec(self, name: str) -> TopicSpec:
        partitions = self.partitions(name)
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        future = self.client.describe_configs([resource], request_timeout=self.timeout_s)[resource]
        try:
            entries = future.result()
        except KafkaException as exc:
            if cfg.error_code(exc) == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise unknown_topic(name) from None
            raise LogError(f"could not describe topic {name!r}: {_reason(exc)}") from None
        return spec_from_configs(name, partitions, entries)


def _reason(exc: KafkaException) -> str:
    err = cfg.error_of(exc)
    return err.str() if err is not None else str(exc)
