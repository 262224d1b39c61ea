"""Engine tests run on every log backend: memory, embedded and a real Kafka broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventml.engine import App, Worker
from eventml.log import ConsumerConfig, Log, Message, Record, TopicPartition, open_log


@dataclass
class Backend:
    name: str
    url: str
    log: Log
    idle_s: float  # how long a worker waits for more input before a test stops it

    def app(self, **settings: Any) -> App:
        name = f"t{uuid.uuid4().hex[:8]}"
        return App(name, broker=self.url, **settings)

    def run(self, app: App, *, index: int = 0, idle_s: float | None = None) -> Worker:
        worker = Worker(app, index=index)
        worker.run(idle_timeout_s=idle_s if idle_s is not None else self.idle_s)
        return worker

    def append_json(self, topic: str, rows: list[tuple[str | None, Any, int]]) -> None:
        """Append (key, value, event time ms) rows as JSON."""
        self.log.append(topic, [
            Message(orjson.dumps(v), None if k is None else k.encode(), (("ce_id", f"in-{i}".encode()),), t)
            for i, (k, v, t) in enumerate(rows)
        ])

    def read_all(self, topic: str) -> list[Record]:
        """Every committed record of ``topic``, by partition and offset (reads up to the end
        offsets; on Kafka these count transaction markers too, so compare positions)."""
        c = self.log.consumer(f"r{uuid.uuid4().hex[:8]}", [topic],
                              config=ConsumerConfig(auto_offset_reset="earliest"))
        ends = {TopicPartition(topic, p): o for p, o in self.log.end_offsets(topic).items()}
        out: list[Record] = []
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                out += c.poll(10_000, 0.1)
                owned = c.assignment()
                if len(owned) == len(ends) and all(c.position(tp) >= ends[tp] for tp in owned):
                    break
        finally:
            c.close()
        return sorted(out, key=lambda r: (r.partition, r.offset))

    def values(self, topic: str) -> list[Any]:
        return [None if r.value is None else orjson.loads(r.value) for r in self.read_all(topic)]


@pytest.fixture(params=["memory", "embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        url = f"memory://{uuid.uuid4().hex[:6]}"
        b = Backend("memory", url, open_log(url), 0.3)
    elif request.param == "embedded":
        url = f"embedded://{tmp_path}/data"
        b = Backend("embedded", url, open_log(url), 0.3)
    else:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        url = f"kafka://{bootstrap}"
        b = Backend("kafka", url, open_log(url), 2.0)
    try:
        yield b
    finally:
        b.log.close()


Rows = Callable[[], list[tuple[str | None, Any, int]]]
