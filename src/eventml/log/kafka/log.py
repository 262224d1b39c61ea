"""The Kafka log: :class:`~eventml.log.base.Log` on a real Kafka cluster via confluent-kafka."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from confluent_kafka import Consumer as _RdConsumer
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka import Message as _RdMessage
from confluent_kafka import TopicPartition as _RdPartition
from confluent_kafka.cimpl import murmur2 as _murmur2

from eventml.log.base import (
    BrokerUnavailable,
    Consumer,
    ConsumerConfig,
    Log,
    LogError,
    Message,
    RebalanceListener,
    RecordMetadata,
    TopicDescription,
    TopicPartition,
    TopicSpec,
    UnknownTopic,
)
from eventml.log.kafka import config as cfg
from eventml.log.kafka import offsets
from eventml.log.kafka.admin import TopicAdmin, unknown_topic
from eventml.log.kafka.consumer import KafkaConsumer
from eventml.log.kafka.transaction import KafkaTransactionalProducer
from eventml.log.registry import BrokerUrl

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0
_PARTITIONS_TTL_S = 60.0  # re-read partition counts this often (others may add partitions)
_Headers = list[tuple[str, str | bytes | None]]
_UNKNOWN_TOPIC = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}
)


class KafkaLog(Log):
    """Topics, appends, consumer groups and transactions on Kafka.

    ``options`` are librdkafka settings given to every client (producer, consumers,
    admin), e.g. ``{"security.protocol": "SSL"}``.

    Consumers read with ``isolation.level=read_committed``: records of open or aborted
    transactions are never returned. :meth:`transactional_producer` gives exactly-once
    consume-transform-produce (appends and the consumer's offsets commit together).
    """

    def __init__(
        self,
        bootstrap: str,
        options: Mapping[str, str] | None = None,
        *,
        url: str | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.url = url or f"kafka://{bootstrap}"
        self.bootstrap = bootstrap
        self.options: dict[str, str] = dict(options or {})
        self.request_timeout_s = request_timeout_s
        pconf = cfg.producer(bootstrap, self.options)  # refuses unsupported settings first
        try:
            admin = TopicAdmin(bootstrap, self.options, request_timeout_s)
        except KafkaException as exc:
            raise cfg.bad_setting(exc, self.url) from None
        admin.check_reachable(connect_timeout_s)  # BrokerUnavailable, one line
        self._admin = admin
        kwargs = cfg.client_kwargs()
        # Delivery reports of the batch being appended; one producer-wide callback is
        # much cheaper than a callback per message.
        self._delivered: list[_RdMessage] = []
        self._append_lock = threading.Lock()
        keep = self._delivered.append

        def on_delivery(err: KafkaError | None, msg: _RdMessage) -> None:
            keep(msg)

        self._delivery_timeout_s = float(pconf.get("message.timeout.ms", 300_000)) / 1000 + 30
        try:
            self._producer = Producer(pconf, on_delivery=on_delivery, **kwargs)
            self._meta = _RdConsumer(cfg.metadata_consumer(bootstrap, self.options), **kwargs)
        except KafkaException as exc:
            raise cfg.bad_setting(exc, self.url) from None
        self._meta_lock = threading.Lock()  # one look-up at a time on the shared handle
        self._offset_readers: dict[str, _RdConsumer] = {}  # committed_offsets, by group
        self._offset_readers_lock = threading.Lock()
        self._partitions: dict[str, tuple[int, float]] = {}  # topic -> (count, read at)
        self._round_robin: dict[str, itertools.count[int]] = {}
        self._consumers: weakref.WeakSet[KafkaConsumer] = weakref.WeakSet()
        self._txn_producers: weakref.WeakSet[KafkaTransactionalProducer] = weakref.WeakSet()
        self._closed = False

    # -- topics ---------------------------------------------------------
    def create_topic(self, spec: TopicSpec, *, exist_ok: bool = False) -> None:
        replication = min(3, self._admin.check_reachable(self.request_timeout_s))
        self._admin.create(spec, replication, exist_ok)

    def delete_topic(self, name: str) -> None:
        self._partitions.pop(name, None)
        self._admin.delete(name)
        deadline = time.monotonic() + 10.0
        while name in self._admin.list() and time.monotonic() < deadline:
            time.sleep(0.05)

    def list_topics(self) -> list[str]:
        return self._admin.list()

    def describe_topic(self, name: str) -> TopicDescription:
        spec = self._admin.spec(name)
        self._partitions[name] = (spec.partitions, time.monotonic())
        marks = self._watermarks(name)
        return TopicDescription(
            spec, {p: s for p, (s, _) in marks.items()}, {p: e for p, (_, e) in marks.items()}
        )

    def partition_count(self, topic: str, *, refresh: bool = False) -> int:
        """The topic's partition count, cached for a minute (``refresh`` reads it now)."""
        cached = self._partitions.get(topic)
        if cached is not None and not refresh and time.monotonic() - cached[1] < _PARTITIONS_TTL_S:
            return cached[0]
        try:
            count = self._admin.partitions(topic)
        except UnknownTopic:
            self._partitions.pop(topic, None)
            raise
        self._partitions[topic] = (count, time.monotonic())
        return count

    # -- append -----------------------------------------------------------
    def append(self, topic: str, messages: Sequence[Message]) -> list[RecordMetadata]:
        """Produce the batch, wait for every acknowledgement, return where each landed.

        Topic and partitions are validated first (nothing is produced if one is bad).
        Not atomic: if the broker fails part way, earlier messages may be stored.
        ``timestamp_ms=None`` (or 0) stamps the current time.
        """
        self._check_open()
        placed = self.place(topic, messages)
        if not messages:
            return []
        with self._append_lock:  # one batch at a time owns the delivery reports
            delivered = self._delivered
            if len(self._producer):  # an interrupted append left messages in flight:
                self._producer.flush(self._delivery_timeout_s)  # their reports are not ours
            delivered.clear()
            try:
                self._produce(topic, messages, placed)
                failed = [e for e in map(_RdMessage.error, delivered) if e is not None]
                if failed:
                    raise self._delivery_error(topic, failed, len(delivered))
                return _metadata(topic, placed, delivered)
            finally:
                delivered.clear()

    def _produce(self, topic: str, messages: Sequence[Message], placed: list[int]) -> None:
        """Produce every message and wait for all their delivery reports."""
        producer = self._producer
        produce = producer.produce
        i = 0
        try:
            for (value, key, headers, timestamp_ms, _), partition in zip(
                messages, placed, strict=True
            ):
                hdrs: _Headers | None = list(headers) if headers else None
                ts = timestamp_ms or 0  # 0: the producer stamps the current time
                try:
                    # positional: topic, value, key, partition, callback, on_delivery, timestamp,
                    # headers; reports go to the producer-wide callback set in __init__
                    produce(topic, value, key, partition, None, None, ts, hdrs)
                except BufferError:  # local queue full: let deliveries drain, then retry
                    while True:
                        producer.poll(0.05)
                        try:
                            produce(topic, value, key, partition, None, None, ts, hdrs)
                            break
                        except BufferError:
                            continue
                i += 1
        except BaseException as exc:
            self._await(i)  # never leave reports behind for the next batch
            if isinstance(exc, KafkaException):
                raise LogError(f"append to {topic!r} failed: {exc}") from None
            raise
        self._await(i)

    def place(self, topic: str, messages: Sequence[Message]) -> list[int]:
        """Each message's partition: explicit, murmur2 of the key, or round-robin.

        Raises (``ValueError``, :class:`UnknownTopic`) before anything is produced.
        Transactions place their messages here too, so a key lands on the same partition
        whichever way it is written.
        """
        n = self.partition_count(topic)
        for attempt in (0, 1):
            try:
                return self._partitions_for(topic, n, messages)
            except ValueError:
                if attempt:
                    raise
                fresh = self.partition_count(topic, refresh=True)  # partitions may have grown
                if fresh == n:
                    raise
                n = fresh
        raise AssertionError("unreachable")

    def _partitions_for(self, topic: str, n: int, messages: Sequence[Message]) -> list[int]:
        out: list[int] = []
        add = out.append
        rr: itertools.count[int] | None = None
        for m in messages:
            p = m.partition
            if p is None:
                key = m.key
                if key is not None:
                    add(_murmur2(key, n))  # librdkafka's murmur2 == Kafka's (partition_for)
                    continue
                if rr is None:
                    rr = self._round_robin.setdefault(topic, itertools.count())
                add(next(rr) % n)
            elif 0 <= p < n:
                add(p)
            else:
                raise ValueError(f"partition {p} out of range for {topic!r} ({n})")
        return out

    def _await(self, count: int) -> None:
        """Serve delivery reports until ``count`` arrived (each comes within message.timeout.ms)."""
        delivered = self._delivered
        deadline = time.monotonic() + self._delivery_timeout_s
        producer = self._producer
        while len(delivered) < count:
            if producer.flush(1.0) == 0 and len(delivered) < count:
                raise LogError(f"append: {count - len(delivered)} delivery reports went missing")
            if len(delivered) < count and time.monotonic() > deadline:
                producer.purge()  # their reports (failures) arrive now, not in a later batch
                producer.poll(0)
                raise BrokerUnavailable(
                    f"Kafka at {self.bootstrap} acknowledged {len(delivered)} of {count} "
                    "messages in time"
                )

    def _delivery_error(self, topic: str, failed: list[KafkaError], total: int) -> LogError:
        first = failed[0]
        what = f"{len(failed)} of {total} messages to {topic!r} failed: {first.str()}"
        if first.code() in _UNKNOWN_TOPIC:
            self._partitions.pop(topic, None)
            return UnknownTopic(f"unknown topic {topic!r} ({what}): create it first")
        if first.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT):
            return BrokerUnavailable(f"{what}: is the broker at {self.bootstrap} reachable?")
        return LogError(what)

    # -- offsets ------------------------------------------------------------
    def _watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        n = self.partition_count(topic)
        try:
            with self._meta_lock:
                return offsets.watermarks(self._meta, topic, range(n), self.request_timeout_s)
        except UnknownTopic:
            self._partitions.pop(topic, None)
            raise unknown_topic(topic) from None

    def start_offsets(self, topic: str) -> dict[int, int]:
        return {p: start for p, (start, _) in self._watermarks(topic).items()}

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {p: end for p, (_, end) in self._watermarks(topic).items()}

    def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        n = self.partition_count(topic)
        with self._meta_lock:
            found = offsets.for_time(
                self._meta, topic, range(n), timestamp_ms, self.request_timeout_s
            )
        return dict(sorted(found.items()))

    # -- groups -------------------------------------------------------------
    def committed_offsets(
        self, group: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int | None]:
        """A client of ``group`` that never subscribes asks the group coordinator
        (read_committed: it waits while a transaction holds the group's offsets)."""
        self._check_open()
        wanted = list(partitions)
        if not wanted:
            return {}
        with self._offset_readers_lock:  # one client per group, kept: readers poll often
            client = self._offset_readers.get(group)
            if client is None:
                conf = cfg.common(self.bootstrap, self.options)
                conf.update({"group.id": group, "enable.auto.commit": "false",
                             "isolation.level": "read_committed"})
                client = self._offset_readers[group] = _RdConsumer(conf, **cfg.client_kwargs())
            try:
                result = client.committed([_RdPartition(tp.topic, tp.partition) for tp in wanted],
                                          timeout=self.request_timeout_s)
            except KafkaException as e:
                raise LogError(f"could not read the offsets of group {group!r}: {e}") from None
        found = {TopicPartition(r.topic, r.partition): r.offset for r in result}
        return {tp: (o if (o := found.get(tp, -1)) >= 0 else None) for tp in wanted}

    def consumer(
        self,
        group: str,
        topics: Sequence[str],
        *,
        config: ConsumerConfig | None = None,
        listener: RebalanceListener | None = None,
    ) -> Consumer:
        self._check_open()
        c = KafkaConsumer(
            self.bootstrap,
            self.options,
            group,
            topics,
            config or ConsumerConfig(),
            listener,
            request_timeout_s=self.request_timeout_s,
        )
        self._consumers.add(c)
        return c

    # -- transactions ---------------------------------------------------------
    def transactional_producer(self, transactional_id: str) -> KafkaTransactionalProducer:
        """A transactional producer (exactly-once, EOS v2) with its own librdkafka producer.

        Blocks until ``init_transactions()`` completes, which fences any older producer
        with the same ``transactional_id`` (and aborts its open transaction). Settings
        are this log's producer settings (``options`` included) plus ``transactional.id``;
        e.g. ``?transaction.timeout.ms=10000`` bounds how long a dead instance's open
        transaction can hold back read_committed readers.
        """
        self._check_open()
        conf = cfg.transactional_producer(self.bootstrap, self.options, transactional_id)
        producer = KafkaTransactionalProducer(
            transactional_id, conf, self.place, timeout_s=self.request_timeout_s
        )
        self._txn_producers.add(producer)
        return producer

    # -- lifecycle ------------------------------------------------------------
    def close(self) -> None:
        """Close this log's transactional producers (aborting open transactions) and
        consumers (they leave their groups), and flush the producer."""
        if self._closed:
            return
        self._closed = True
        for p in list(self._txn_producers):
            with contextlib.suppress(LogError):
                p.close()
        for c in list(self._consumers):
            with contextlib.suppress(LogError):
                c.close()
        with self._append_lock:
            self._producer.flush(self.request_timeout_s)
        with self._offset_readers_lock:
            for reader in self._offset_readers.values():
                reader.close()
            self._offset_readers.clear()
        self._meta.close()

    def _check_open(self) -> None:
        if self._closed:
            raise LogError("the Kafka log is closed: open it again with open_log(...)")

    def __repr__(self) -> str:
        return f"KafkaLog({self.url!r})"


def _metadata(topic: str, placed: list[int], delivered: list[_RdMessage]) -> list[RecordMetadata]:
    """Each input message's offset, from delivery reports that arrive grouped by partition.

    Within a partition, offsets follow produce order (idempotent producer), so the
    k-th message placed on partition p gets p's k-th smallest delivered offset.
    """
    n = len(placed)
    parts = np.fromiter(map(_RdMessage.partition, delivered), np.int64, n)
    offs = np.fromiter(map(_RdMessage.offset, delivered), np.int64, n)
    wanted = np.array(placed, dtype=np.int64)
    by_delivery = np.lexsort((offs, parts))  # by partition, then offset
    by_input = np.argsort(wanted, kind="stable")  # by partition, then input order
    if not np.array_equal(parts[by_delivery], wanted[by_input]):
        raise LogError(f"append to {topic!r}: delivery reports do not match the batch")
    result = np.empty(n, np.int64)
    result[by_input] = offs[by_delivery]
    return list(
        map(
            RecordMetadata._make,
            zip(itertools.repeat(topic, n), placed, result.tolist(), strict=False),
        )
    )


def open_kafka_log(url: BrokerUrl) -> KafkaLog:
    """``kafka://HOST:PORT[,HOST:PORT]?librdkafka.setting=value``."""
    bootstrap = url.location.strip("/")
    if not bootstrap:
        raise BrokerUnavailable(f"{url.raw!r} names no broker: use kafka://HOST:PORT")
    return KafkaLog(bootstrap, url.options, url=url.raw)


__all__ = ["KafkaLog", "open_kafka_log"]
