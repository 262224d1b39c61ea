"""backend_for picks the state backend by log class; eventml.state's public names are locked."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest

import eventml.state
from eventml.log import (
    Consumer,
    ConsumerConfig,
    Log,
    Message,
    RebalanceListener,
    RecordMetadata,
    TopicDescription,
    TopicPartition,
    TopicSpec,
    TransactionalProducer,
    open_log,
)
from eventml.log.embedded import EmbeddedLog
from eventml.state import (
    ChangelogStateBackend,
    MemoryStateBackend,
    SqliteStateBackend,
    StateBackend,
    StateError,
    StoreSpec,
    backend_for,
    register_state_backend,
)
from eventml.state import registry as state_registry
from eventml.testing import MemoryLog


@pytest.fixture
def clean_registry() -> Iterator[None]:
    saved = dict(state_registry._BACKENDS)
    yield
    state_registry._BACKENDS.clear()
    state_registry._BACKENDS.update(saved)


def test_public_names() -> None:
    assert sorted(eventml.state.__all__) == [
        "ChangelogStateBackend", "MemoryStateBackend", "PartitionStore", "SqliteStateBackend",
        "StateBackend", "StateError", "StoreSpec", "backend_for", "register_state_backend",
    ]


def test_memory_and_embedded_logs_get_their_own_backends(tmp_path: Path) -> None:
    assert type(backend_for(MemoryLog())) is MemoryStateBackend
    with EmbeddedLog(tmp_path / "d") as log:
        assert type(backend_for(log)) is SqliteStateBackend


@pytest.mark.kafka
def test_kafka_gets_the_changelog_backend(kafka_bootstrap: str) -> None:
    with open_log(f"kafka://{kafka_bootstrap}") as log:
        assert type(backend_for(log)) is ChangelogStateBackend


class ProxyLog(Log):
    """A log eventml.state does not know: delegates to a memory log."""

    def __init__(self, inner: MemoryLog) -> None:
        self.inner = inner
        self.url = "proxy://"

    def create_topic(self, spec: TopicSpec, *, exist_ok: bool = False) -> None:
        self.inner.create_topic(spec, exist_ok=exist_ok)

    def delete_topic(self, name: str) -> None:
        self.inner.delete_topic(name)

    def list_topics(self) -> list[str]:
        return self.inner.list_topics()

    def describe_topic(self, name: str) -> TopicDescription:
        return self.inner.describe_topic(name)

    def append(self, topic: str, messages: Sequence[Message]) -> list[RecordMetadata]:
        return self.inner.append(topic, messages)

    def start_offsets(self, topic: str) -> dict[int, int]:
        return self.inner.start_offsets(topic)

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self.inner.end_offsets(topic)

    def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        return self.inner.offsets_for_time(topic, timestamp_ms)

    def consumer(
        self,
        group: str,
        topics: Sequence[str],
        *,
        config: ConsumerConfig | None = None,
        listener: RebalanceListener | None = None,
    ) -> Consumer:
        return self.inner.consumer(group, topics, config=config, listener=listener)

    def committed_offsets(self, group: str, partitions: Iterable[TopicPartition]
                          ) -> dict[TopicPartition, int | None]:
        return self.inner.committed_offsets(group, partitions)

    def transactional_producer(self, transactional_id: str) -> TransactionalProducer:
        return self.inner.transactional_producer(transactional_id)


def test_an_unknown_log_gets_the_changelog_backend_restored_by_a_group_of_its_own() -> None:
    class OtherLog(MemoryLog):
        pass

    assert type(backend_for(OtherLog())) is MemoryStateBackend  # subclasses inherit
    log = ProxyLog(MemoryLog())
    backend = backend_for(log)
    assert type(backend) is ChangelogStateBackend
    spec, tp = StoreSpec("app", "s"), TopicPartition("input", 1)
    for topic in backend.required_topics(spec, 3):
        log.create_topic(topic)
    store = backend.open(spec, tp, None)
    for i in range(25_000):
        store.put(f"k{i:05d}", i)
    txn = log.transactional_producer("t").begin()
    store.stage(txn, 1)
    txn.commit()
    store.commit()
    restored = backend_for(log).open(spec, tp, 1)
    assert dict(restored.range()) == {f"k{i:05d}": i for i in range(25_000)}
    assert backend_for(log).open(spec, TopicPartition("input", 0), 1).get("k00000") is None
    with pytest.raises(TypeError, match="Log"):
        backend_for(object())  # type: ignore[arg-type]


def test_register_a_backend_for_a_log_class(clean_registry: None) -> None:
    class SpecialLog(MemoryLog):
        pass

    made: list[Log] = []

    def factory(log: Log) -> StateBackend:
        made.append(log)
        return ChangelogStateBackend(log)

    register_state_backend("SpecialLog", factory)
    log = SpecialLog()
    assert type(backend_for(log)) is ChangelogStateBackend and made == [log]
    assert type(backend_for(MemoryLog())) is MemoryStateBackend


def test_backends_refuse_the_wrong_log(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="MemoryLog"):
        MemoryStateBackend(EmbeddedLog(tmp_path / "d"))  # type: ignore[arg-type]
    with pytest.raises(StateError, match="EmbeddedLog"):
        SqliteStateBackend(MemoryLog())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("app", "name"), [("", "s"), ("a/b", "s"), ("app", ""), ("app", "a b"), ("app", "ä")]
)
def test_store_spec_names_are_checked(app: str, name: str) -> None:
    with pytest.raises(StateError, match="name"):
        StoreSpec(app, name)


def test_store_spec_ttl_must_be_positive() -> None:
    with pytest.raises(StateError, match="ttl_ms"):
        StoreSpec("app", "s", ttl_ms=0)
