"""Appends generated transactions to the log from a background thread.

It records, per transaction event id, the monotonic time its append was
acknowledged: the start of the end-to-end latency the demo reports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from eventml.demos.fraud.events import transaction_event
from eventml.demos.fraud.transaction import Transaction
from eventml.events import to_message
from eventml.log import Log


class TransactionProducer:
    """Appends ``transactions`` to ``topic`` in batches of ``batch_size``, paced to
    ``rate_eps`` events/s if given (else as fast as the log acknowledges)."""

    def __init__(
        self,
        log: Log,
        topic: str,
        transactions: Sequence[Transaction],
        *,
        batch_size: int = 500,
        rate_eps: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if rate_eps is not None and rate_eps <= 0:
            raise ValueError(f"rate_eps must be > 0, got {rate_eps}")
        self.log = log
        self.topic = topic
        self.transactions = transactions
        self.batch_size = batch_size
        self.rate_eps = rate_eps
        self.clock = clock
        self.event_ids: list[str] = []  # index = position in ``transactions``
        self.acked_at: dict[str, float] = {}  # event id -> clock() when its append returned
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fraud-demo-producer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop after its current batch, and wait for it."""
        self._stop.set()
        self.join()

    def join(self, timeout_s: float | None = None) -> None:
        if self._thread.ident is not None:  # started
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._produce()
        except BaseException as e:  # handed to the main thread, which re-raises it
            self.error = e

    def _produce(self) -> None:
        started = self.clock()
        txs = self.transactions
        for first in range(0, len(txs), self.batch_size):
            if self._stop.is_set():
                return
            if self.rate_eps is not None:
                due = started + first / self.rate_eps
                while (wait := due - self.clock()) > 0 and not self._stop.wait(wait):
                    pass
            events = [transaction_event(tx) for tx in txs[first : first + self.batch_size]]
            self.log.append(self.topic, [to_message(e) for e in events])
            acked = self.clock()
            for e in events:
                self.event_ids.append(e.id)
                self.acked_at[e.id] = acked
