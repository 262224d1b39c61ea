"""The pass-through baselines: consume → produce unchanged, with eventml's log API or
bare confluent-kafka."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from eventml.bench.pipeline._result import _metrics
from eventml.bench.pipeline._setup import _Bench, _Counters, _new_message, _Runner
from eventml.bench.pipeline._throughput import _check_committed, _drain_runner
from eventml.log import (
    CommitFailed,
    Consumer,
    ConsumerConfig,
    Fenced,
    Log,
    TopicPartition,
    TopicSpec,
)
from eventml.log.registry import BrokerUrl


def _run_log_passthrough(bench: _Bench, k: int) -> dict[str, Any]:
    group = f"{bench.prefix}-log-{k}"
    sink = f"{bench.prefix}-log-out-{k}"
    bench.log.create_topic(TopicSpec(sink, bench.partitions))
    s = bench.app_settings()

    def make(index: int) -> _Runner:
        return _LogPassThrough(
            bench.own_log(),
            group,
            bench.input_topic,
            sink,
            f"{group}-{index}",
            s.max_batch,
            s.max_wait_ms / 1000,
            bench.consumer_config(),
            close_log=not bench.in_memory,
        )

    drain = _drain_runner(bench, make, group, "log pass-through")
    _check_committed(bench, group)
    return _metrics(drain, bench.events)


def _run_kafka_passthrough(bench: _Bench, k: int) -> dict[str, Any]:
    group = f"{bench.prefix}-raw-{k}"
    sink = f"{bench.prefix}-raw-out-{k}"
    bench.log.create_topic(TopicSpec(sink, bench.partitions))
    s = bench.app_settings()

    def make(index: int) -> _Runner:
        return _KafkaPassThrough(
            bench.parsed,
            group,
            bench.input_topic,
            sink,
            f"{group}-{index}",
            s.max_batch,
            s.max_wait_ms / 1000,
            bench.consumer_config(),
        )

    drain = _drain_runner(bench, make, group, "confluent-kafka pass-through")
    _check_committed(bench, group)
    return _metrics(drain, bench.events)


# -- the pass-throughs ---------------------------------------------------------------------------


class _LogPassThrough:
    """Consume → append unchanged, one log transaction per batch (eventml's log API)."""

    def __init__(
        self,
        log: Log,
        group: str,
        source: str,
        sink: str,
        transactional_id: str,
        batch: int,
        wait_s: float,
        config: ConsumerConfig,
        *,
        close_log: bool,
    ) -> None:
        self.log = log
        self.sink = sink
        self.batch = batch
        self.wait_s = wait_s
        self.close_log = close_log
        self.consumer: Consumer = log.consumer(group, [source], config=config)
        self.producer = log.transactional_producer(transactional_id)
        self._counters = _Counters()

    def step(self) -> int:
        records = self.consumer.poll(self.batch, self.wait_s)
        if not records:
            return 0
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            offsets[TopicPartition(r.topic, r.partition)] = r.offset + 1
        # Message(value, key, headers, timestamp_ms, partition), built in C
        messages = [_new_message((r[5], r[4], r[6], r[3], r[1])) for r in records]
        txn = self.producer.begin(self.consumer)
        try:
            txn.append(self.sink, messages)
            txn.commit_offsets(offsets)
            txn.commit()
        except Fenced:
            raise
        except CommitFailed:  # partitions moved: the next owner repeats the batch
            self._counters.commits_refused += 1
            self._rewind(offsets)
            return 0
        c = self._counters
        c.records += len(records)
        c.batches += 1
        c.outputs += len(messages)
        return len(records)

    def _rewind(self, offsets: Mapping[TopicPartition, int]) -> None:
        owned = self.consumer.assignment()
        tps = [tp for tp in offsets if tp in owned]
        for tp, offset in self.consumer.committed(tps).items():
            if offset is None:
                self.consumer.seek_to_beginning([tp])
            else:
                self.consumer.seek(tp, offset)

    def counters(self) -> _Counters:
        return self._counters

    def close(self) -> None:
        self.consumer.close()
        self.producer.close()
        if self.close_log:
            self.log.close()


class _KafkaPassThrough:
    """The same loop with bare confluent-kafka (EOS v2), the Kafka backend's settings."""

    def __init__(
        self,
        url: BrokerUrl,
        group: str,
        source: str,
        sink: str,
        transactional_id: str,
        batch: int,
        wait_s: float,
        config: ConsumerConfig,
    ) -> None:
        from confluent_kafka import Consumer as RdConsumer
        from confluent_kafka import Producer as RdProducer

        from eventml.log.kafka import config as kcfg

        options = dict(url.options)
        producer_conf = kcfg.transactional_producer(url.location, options, transactional_id)
        self.producer = RdProducer(producer_conf)
        self.producer.init_transactions(30)
        self.consumer = RdConsumer(kcfg.consumer(url.location, options, group, config))
        self.consumer.subscribe([source])
        self.sink = sink
        self.batch = batch
        self.wait_s = wait_s
        self._counters = _Counters()

    def step(self) -> int:
        from confluent_kafka import KafkaException

        c = self.consumer
        msgs = c.consume(self.batch, self.wait_s)
        if not msgs:
            return 0
        p = self.producer
        produce: Any = p.produce  # the messages' partitions are never None here
        sink = self.sink
        try:
            p.begin_transaction()
            for m in msgs:
                err = m.error()
                if err is not None:
                    raise KafkaException(err)
                # topic, value, key, partition, callback, on_delivery, timestamp, headers
                produce(
                    sink,
                    m.value(),
                    m.key(),
                    m.partition(),
                    None,
                    None,
                    m.timestamp()[1],
                    m.headers(),
                )
            positions = [tp for tp in c.position(c.assignment()) if tp.offset >= 0]
            p.send_offsets_to_transaction(positions, c.consumer_group_metadata(), 30)
            p.commit_transaction(30)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if err is None or not err.txn_requires_abort():
                raise
            p.abort_transaction(30)  # e.g. the group moved partitions: repeat from committed
            self._counters.commits_refused += 1
            self._rewind()
            return 0
        counters = self._counters
        counters.records += len(msgs)
        counters.batches += 1
        counters.outputs += len(msgs)
        return len(msgs)

    def _rewind(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, KafkaException

        for tp in self.consumer.committed(self.consumer.assignment(), timeout=30):
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
            with contextlib.suppress(KafkaException):
                self.consumer.seek(tp)

    def counters(self) -> _Counters:
        return self._counters

    def close(self) -> None:
        self.consumer.close()
        self.producer.flush(5)
