"""One log contract, every backend: each test here runs on memory, embedded and Kafka."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from eventml.log import Consumer, ConsumerConfig, Log, Record, TopicSpec, open_log


@dataclass
class Backend:
    """A log under test plus the timings that differ between backends."""

    name: str
    log: Log
    fast_group: ConsumerConfig  # short liveness timeouts for rebalance tests
    rebalance_s: float  # how long a rebalance after member loss may take
    topic_config: dict[str, str] = field(default_factory=dict)  # e.g. Kafka segment.ms
    settle_s: float = 0.0  # how long retention/compaction may take to show (Kafka: async)
    roll_s: float = 0.0  # pause between appends so Kafka rolls segments (it never cleans the active one)

    def topic(self, partitions: int = 1, **kwargs: object) -> str:
        name = f"contract_{uuid.uuid4().hex[:10]}"
        config = {**self.topic_config, **kwargs.pop("config", {})}  # type: ignore[dict-item]
        self.log.create_topic(TopicSpec(name, partitions, config=config, **kwargs))  # type: ignore[arg-type]
        return name

    def consumer(self, topic: str, group: str | None = None, **config: object) -> Consumer:
        cfg = ConsumerConfig(**{"auto_offset_reset": "earliest", **config})  # type: ignore[arg-type]
        return self.log.consumer(group or f"g_{uuid.uuid4().hex[:8]}", [topic], config=cfg)


def _memory() -> Backend:
    return Backend("memory", open_log("memory://"), ConsumerConfig(max_poll_interval_ms=300), 2.0)


def _embedded(tmp: Path) -> Backend:
    return Backend(
        "embedded",
        open_log(f"embedded://{tmp}/data"),
        ConsumerConfig(max_poll_interval_ms=500),
        5.0,
    )


def _kafka(bootstrap: str) -> Backend:
    return Backend(
        "kafka",
        open_log(f"kafka://{bootstrap}"),
        ConsumerConfig(session_timeout_ms=6000, max_poll_interval_ms=7000),
        30.0,
        topic_config={"segment.ms": "200", "min.cleanable.dirty.ratio": "0.01",
                      "min.compaction.lag.ms": "0", "delete.retention.ms": "100",
                      "file.delete.delay.ms": "0", "segment.bytes": "1048576"},
        settle_s=60.0,
        roll_s=0.25,
    )


@pytest.fixture(params=["memory", "embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        b = _memory()
    elif request.param == "embedded":
        b = _embedded(tmp_path)
    else:
        b = _kafka(request.getfixturevalue("kafka_bootstrap"))
    try:
        yield b
    finally:
        b.log.close()


def drain(consumer: Consumer, count: int, timeout_s: float = 30.0) -> list[Record]:
    """Poll until ``count`` records arrived (or time runs out); returns what came."""
    out: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count and time.monotonic() < deadline:
        out.extend(consumer.poll(max_records=count - len(out), timeout_s=0.2))
    return out


def eventually(check: Callable[[], bool], timeout_s: float, what: str, step_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for: {what}")
        time.sleep(step_s)


def read_all(backend: Backend, topic: str, timeout_s: float = 30.0) -> list[Record]:
    """Everything currently in ``topic``: a fresh group reads until it reaches the end offsets."""
    end = backend.log.end_offsets(topic)
    consumer = backend.consumer(topic)
    out: list[Record] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            out.extend(consumer.poll(max_records=10_000, timeout_s=0.1))
            assigned = consumer.assignment()
            if len(assigned) == len(end) and all(
                consumer.position(tp) >= end[tp.partition] for tp in assigned
            ):
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end in {timeout_s}s")
    finally:
        consumer.close()
