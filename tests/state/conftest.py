"""One state-store contract, every backend: memory, SQLite (embedded), changelog on memory and Kafka."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from eventml.log import (
    Consumer,
    ConsumerConfig,
    Log,
    TopicPartition,
    TopicSpec,
    Transaction,
    TransactionalProducer,
    open_log,
)
from eventml.log.embedded import EmbeddedLog
from eventml.state import (
    ChangelogStateBackend,
    MemoryStateBackend,
    PartitionStore,
    SqliteStateBackend,
    StateBackend,
    StoreSpec,
)
from eventml.testing import FakeClock, MemoryLog

PARTITIONS = 2


@dataclass
class Env:
    """A log, its state backend, and how to get a fresh backend (a fresh log object where it can)."""

    name: str
    log: Log
    make_backend: Callable[[Log], StateBackend]
    fresh_log: Callable[[], Log]  # a new log object on the same storage (memory: the same log)
    clock: FakeClock | None  # drives group liveness on the in-process logs
    group_config: ConsumerConfig
    opened: list[Log] = field(default_factory=list)
    _producer: TransactionalProducer | None = None

    @property
    def backend(self) -> StateBackend:
        return self.make_backend(self.log)

    def spec(self, ttl_ms: int | None = None) -> StoreSpec:
        """A new store; its required topics (the changelog) are created."""
        spec = StoreSpec(f"app{uuid.uuid4().hex[:8]}", "store", ttl_ms=ttl_ms)
        for topic in self.backend.required_topics(spec, PARTITIONS):
            self.log.create_topic(topic)
        return spec

    def input_topic(self) -> str:
        name = f"in_{uuid.uuid4().hex[:10]}"
        self.log.create_topic(TopicSpec(name, PARTITIONS))
        return name

    def open(
        self, spec: StoreSpec, tp: TopicPartition, committed: int | None = None, *, fresh: bool = False
    ) -> PartitionStore:
        """Open ``tp``'s store; ``fresh``: through a new log object and backend (a "restart")."""
        if not fresh:
            return self.backend.open(spec, tp, committed)
        log = self.fresh_log()
        if log is not self.log:
            self.opened.append(log)
        return self.make_backend(log).open(spec, tp, committed)

    @property
    def producer(self) -> TransactionalProducer:
        if self._producer is None:
            self._producer = self.log.transactional_producer(f"tx-{uuid.uuid4().hex[:8]}")
        return self._producer

    def begin(self, consumer: Consumer | None = None) -> Transaction:
        return self.producer.begin(consumer)

    def commit(
        self,
        *stores: PartitionStore,
        source_offset: int = 1,
        consumer: Consumer | None = None,
    ) -> None:
        """One batch: stage every store, commit the transaction (and offsets), commit the stores."""
        txn = self.begin(consumer)
        for store in stores:
            store.stage(txn, source_offset)
        if consumer is not None:
            txn.commit_offsets({store.partition: source_offset for store in stores})
        txn.commit()
        for store in stores:
            store.commit()

    def consumer(self, topic: str, group: str) -> Consumer:
        return self.log.consumer(group, [topic], config=self.group_config)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
        for log in self.opened:
            log.close()
        self.log.close()


def wait_for(consumer: Consumer, tp: TopicPartition, timeout_s: float = 30.0) -> None:
    """Poll ``consumer`` until it owns ``tp``."""
    deadline = time.monotonic() + timeout_s
    while tp not in consumer.assignment():
        if time.monotonic() > deadline:
            raise AssertionError(f"{tp} was not assigned within {timeout_s}s")
        consumer.poll(max_records=1, timeout_s=0.1)


def _memory_env() -> Env:
    clock = FakeClock()
    log = MemoryLog(clock=clock)
    return Env(
        "memory", log, MemoryStateBackend, lambda: log, clock,  # type: ignore[arg-type]
        ConsumerConfig(auto_offset_reset="earliest", max_poll_interval_ms=1000),
    )


def _sqlite_env(tmp: Path) -> Env:
    clock = FakeClock()

    def new_log() -> Log:
        return EmbeddedLog(tmp / "data", durability="fast", clock=clock, retention_interval_s=0)

    return Env(
        "sqlite", new_log(), SqliteStateBackend, new_log, clock,  # type: ignore[arg-type]
        ConsumerConfig(auto_offset_reset="earliest", max_poll_interval_ms=1000),
    )


def _changelog_memory_env() -> Env:
    clock = FakeClock()
    log = MemoryLog(clock=clock)
    return Env(
        "changelog-memory", log, ChangelogStateBackend, lambda: log, clock,
        ConsumerConfig(auto_offset_reset="earliest", max_poll_interval_ms=1000),
    )


def _changelog_kafka_env(bootstrap: str) -> Env:
    url = f"kafka://{bootstrap}"
    return Env(
        "changelog-kafka", open_log(url), ChangelogStateBackend, lambda: open_log(url), None,
        ConsumerConfig(
            auto_offset_reset="earliest", session_timeout_ms=6000, max_poll_interval_ms=6000
        ),
    )


ENVS = [
    "memory",
    "sqlite",
    "changelog-memory",
    pytest.param("changelog-kafka", marks=pytest.mark.kafka),
]


def _make(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Env:
    if name == "memory":
        return _memory_env()
    if name == "sqlite":
        return _sqlite_env(tmp_path)
    if name == "changelog-memory":
        return _changelog_memory_env()
    return _changelog_kafka_env(request.getfixturevalue("kafka_bootstrap"))


@pytest.fixture(params=ENVS)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    e = _make(request.param, request, tmp_path)
    try:
        yield e
    finally:
        e.close()


@pytest.fixture(
    params=["changelog-memory", pytest.param("changelog-kafka", marks=pytest.mark.kafka)]
)
def changelog_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    e = _make(request.param, request, tmp_path)
    try:
        yield e
    finally:
        e.close()
