"""History for replay tests: payments over six hours, a live run, and direct reads."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

import orjson

from eventml.engine import App, Worker
from eventml.log import ConsumerConfig, Log, Message, Record, TopicPartition, TopicSpec

T0 = 1_764_028_800_000  # 2025-11-25T00:00:00Z
STEP_MS = 7_200  # 3,000 payments over six hours
HOUR = 3_600_000


@dataclass(frozen=True, slots=True)
class Payment:
    n: int
    id: str
    card: str
    amount: float
    time_ms: int
    fraud: bool


def payments(count: int = 3000, seed: int = 5) -> list[Payment]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        amount = round(rng.lognormvariate(3.5, 0.8), 2)
        out.append(Payment(n, f"tx-{n:05d}", f"card-{rng.randrange(40):02d}", amount,
                           T0 + n * STEP_MS, rng.random() < (0.3 if amount >= 80 else 0.02)))
    return out


def append_payments(log: Log, topic: str, items: list[Payment], partitions: int = 3) -> None:
    log.create_topic(TopicSpec(topic, partitions), exist_ok=True)
    messages = [
        Message(orjson.dumps({"card": p.card, "amount": p.amount, "n": p.n}), p.card.encode(),
                (("ce_id", p.id.encode()),), p.time_ms)
        for p in items
    ]
    for i in range(0, len(messages), 500):
        log.append(topic, messages[i:i + 500])


def append_labels(log: Log, topic: str, items: list[Payment]) -> int:
    """A chargeback three days later for each fraudulent payment (positives only)."""
    log.create_topic(TopicSpec(topic, 1), exist_ok=True)
    labels = [Message(orjson.dumps({"transaction_id": p.id, "transaction_time_ms": p.time_ms}),
                      None, (), p.time_ms + 72 * HOUR) for p in items if p.fraud]
    log.append(topic, labels)
    return len(labels)


def run_live(app: App, log: Log, events: int) -> None:
    worker = Worker(app, log=log)
    worker.run(max_records=events, idle_timeout_s=60)
    assert worker.stats.records == events


def read(log: Log, topic: str) -> list[Record]:
    ends = {TopicPartition(topic, p): e for p, e in log.end_offsets(topic).items()}
    consumer = log.consumer(f"check-{uuid.uuid4().hex[:8]}", [topic],
                            config=ConsumerConfig(auto_offset_reset="earliest"))
    out: list[Record] = []
    try:
        for _ in range(2000):
            if ends.keys() <= consumer.assignment() and all(
                    consumer.position(tp) >= e for tp, e in ends.items()):
                break
            out.extend(consumer.poll(5000, 0.1))
        else:
            raise AssertionError(f"could not read {topic}")
    finally:
        consumer.close()
    return out


def values(log: Log, topic: str) -> list[dict[str, object]]:
    return [orjson.loads(r.value) for r in read(log, topic) if r.value is not None]


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"
