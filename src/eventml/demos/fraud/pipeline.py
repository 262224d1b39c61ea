"""The scoring pipeline: plain consumer code (a stream engine replaces it later).

Per polled batch: decode ``card.transaction`` events, update per-card features,
score the whole batch with one model call, append one batch of ``fraud.alert``
events, then commit the consumer's offsets (at-least-once).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from eventml.demos.fraud.events import alert_event, transaction_from_event
from eventml.demos.fraud.features import FeatureExtractor
from eventml.demos.fraud.model import FraudModel
from eventml.events import from_record, to_message
from eventml.log import (
    BrokerUnavailable,
    Consumer,
    ConsumerConfig,
    Log,
    LogError,
    RebalanceListener,
    Record,
    TopicPartition,
)


@dataclass(frozen=True, slots=True)
class Alert:
    transaction_id: str
    card_id: str
    score: float
    acked_at: float  # clock() when the alert's append returned


class ScoringPipeline:
    """Consumes ``source_topic`` from ``start_offsets`` (per partition) and alerts on ``alerts_topic``.

    Records before ``start_offsets`` (earlier runs) are skipped: the consumer seeks
    past them on assignment, and filters them if a backend cannot seek there.
    """

    def __init__(
        self,
        log: Log,
        model: FraudModel,
        *,
        source_topic: str,
        alerts_topic: str,
        group: str,
        start_offsets: Mapping[int, int],
        batch_size: int = 1000,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.log = log
        self.model = model
        self.source_topic = source_topic
        self.alerts_topic = alerts_topic
        self.start_offsets = dict(start_offsets)
        self.batch_size = batch_size
        self.clock = clock
        self.features = FeatureExtractor()
        self.processed = 0
        self.alerts: list[Alert] = []
        self.consumer: Consumer = log.consumer(
            group,
            [source_topic],
            config=ConsumerConfig(auto_offset_reset="earliest"),
            listener=RebalanceListener(on_assign=self._seek_to_start),
        )

    def wait_for_assignment(self, timeout_s: float = 60.0) -> None:
        """Poll until the group assigns partitions (before producing, so latency excludes the join)."""
        deadline = time.monotonic() + timeout_s
        while not self.consumer.assignment():
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"no partitions of {self.source_topic!r} assigned within {timeout_s:.0f} s: "
                    "is the broker healthy?"
                )
            self.process(self.consumer.poll(self.batch_size, timeout_s=0.2))

    def poll_once(self, timeout_s: float = 0.1) -> int:
        """Poll, process and commit one batch; returns the transactions processed."""
        return self.process(self.consumer.poll(self.batch_size, timeout_s=timeout_s))

    def process(self, records: Sequence[Record]) -> int:
        fresh = [
            r
            for r in records
            if r.topic == self.source_topic and r.offset >= self.start_offsets.get(r.partition, 0)
        ]
        if fresh:
            self._score(fresh)
        if records:
            self.consumer.commit()
        self.processed += len(fresh)
        return len(fresh)

    def close(self) -> None:
        self.consumer.close()

    def _score(self, records: Sequence[Record]) -> None:
        events = [from_record(r) for r in records]
        txs = [transaction_from_event(e) for e in events]
        x = self.features.update_many(txs)
        scores = self.model.score_many(x)
        threshold = self.model.threshold.value
        flagged = [i for i in range(len(txs)) if scores[i] >= threshold]
        if not flagged:
            return
        names = self.model.feature_names
        alerts = [
            alert_event(events[i].id, txs[i], float(scores[i]), threshold, names, x[i].tolist())
            for i in flagged
        ]
        self.log.append(self.alerts_topic, [to_message(a) for a in alerts])
        acked = self.clock()
        self.alerts.extend(
            Alert(events[i].id, txs[i].card_id, float(scores[i]), acked) for i in flagged
        )

    def _seek_to_start(self, partitions: frozenset[TopicPartition]) -> None:
        for tp in partitions:
            start = self.start_offsets.get(tp.partition)
            if tp.topic == self.source_topic and start:
                # if the backend cannot seek here, process() filters the older records
                with contextlib.suppress(LogError, ValueError):
                    self.consumer.seek(tp, start)
