"""Keep a :class:`~eventml.schema.core.RegistryState` in a log topic (``_schemas``).

One partition, compacted, on whatever log the application uses: the embedded data
directory by default, Kafka when the app runs there, so every worker and API
instance reads one registry. Reads fold new records in (:meth:`LogStore.catch_up`).

Writes are serialized without a leader: each write opens the log's transactional
producer under one shared id (``eventml-schema-registry``). Opening it fences any
other writer (Kafka's ``init_transactions``; the embedded log's producer epochs);
the writer then catches up, plans its records against the now-complete state and
commits them in one transaction. A writer fenced in between gets
:class:`~eventml.log.base.Fenced` at commit and starts over, so no two writers
ever plan against the same state.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from eventml.log.base import CommitFailed, Fenced, Log, LogError, Message, TopicPartition, TopicSpec
from eventml.schema.core import RegistryState, Write
from eventml.schema.errors import SchemaError
from eventml.state._tail import read_rows
from eventml.state.base import StateError

T = TypeVar("T")
TOPIC = "_schemas"
WRITER_ID = "eventml-schema-registry"
_ATTEMPTS = 10


class StoreError(SchemaError):
    """The registry's log could not be read or written (a 500 with error code 50001)."""

    status, code = 500, 50001


class LogStore:
    def __init__(
        self, log: Log, topic: str = TOPIC, *, writer_id: str = WRITER_ID, timeout_s: float = 30.0
    ) -> None:
        self.log, self.topic, self.writer_id, self.timeout_s = log, topic, writer_id, timeout_s
        self.position = 0
        self.lock = threading.RLock()
        try:
            log.create_topic(TopicSpec(topic, partitions=1, cleanup_policy="compact"), exist_ok=True)
        except LogError as e:
            raise StoreError(f"cannot open the schema topic {topic!r}: {e}") from None

    def catch_up(self, state: RegistryState) -> int:
        """Apply every record appended since the last call; returns how many."""
        with self.lock:
            try:
                end = self.log.end_offsets(self.topic)[0]
                if end <= self.position:
                    return 0
                tp = TopicPartition(self.topic, 0)
                # on Kafka the end may hold a transaction still committing: the position
                # stays where the committed records stop, so they are read once they land
                rows, position = read_rows(self.log, tp, self.timeout_s, self.position, end)
            except (LogError, StateError) as e:
                raise StoreError(f"cannot read the schema topic {self.topic!r}: {e}") from None
            for key, value, _headers in rows:
                state.apply(key, value)
            self.position = position
            return len(rows)

    def write(self, state: RegistryState, plan: Callable[[], tuple[T, list[Write]]]) -> T:
        """Run ``plan`` against the latest state and append its records, alone.

        Fenced writers back off (random, doubling) before trying again, so writers
        racing each other do not fence one another forever.
        """
        with self.lock:
            for attempt in range(_ATTEMPTS):
                if attempt:
                    time.sleep(random.uniform(0, 0.01 * 2**attempt))
                try:
                    producer = self.log.transactional_producer(self.writer_id)
                except LogError as e:
                    raise StoreError(f"cannot write to the schema topic {self.topic!r}: {e}") from None
                try:
                    self.catch_up(state)
                    result, writes = plan()
                    if writes:
                        txn = producer.begin()
                        txn.append(self.topic, [Message(value=v, key=k, partition=0) for k, v in writes])
                        txn.commit()
                        self.catch_up(state)
                    return result
                except (Fenced, CommitFailed):
                    continue  # another writer opened after us: plan again on its state
                except LogError as e:
                    raise StoreError(f"cannot write to the schema topic {self.topic!r}: {e}") from None
                finally:
                    producer.close()
            raise StoreError(
                f"gave up writing to {self.topic!r}: other registry writers fenced this one {_ATTEMPTS} times"
            )
