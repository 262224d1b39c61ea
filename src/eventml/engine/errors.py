"""Running user functions under a retry policy; failures become dead letters or stop the worker."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from eventml.deadletter import dead_letter_message, dead_letter_topic
from eventml.deadletter.retry import RetryPolicy, classify
from eventml.engine.items import Effects, Item


class WorkerFailed(RuntimeError):
    """A fatal error in an operator: the worker stops loudly (and its batch is not committed)."""


_FAILED: Any = object()


class Guard:
    """Calls one operator's function for one item with retries, per the policy.

    Transient errors are retried with exponential backoff and jitter; permanent
    errors (and transient ones that exhaust the attempts) send the item's input
    record to ``<topic>.dlq`` with provenance; fatal errors raise
    :class:`WorkerFailed`.
    """

    def __init__(
        self,
        operator: str,
        group: str,
        policy: RetryPolicy,
        *,
        clock_ms: Callable[[], int],
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        dead_letter_topic: Callable[[str], str] = dead_letter_topic,
    ) -> None:
        self.operator = operator
        self.dead_letter_topic = dead_letter_topic  # input topic -> its dead-letter topic
        self.group = group
        self.policy = policy
        self.clock_ms = clock_ms
        self.sleep = sleep
        self.rng = rng or random.Random()

    def call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], item: Item, fx: Effects,
        error: Exception,
    ) -> Any:
        """After ``fn(*args)`` failed with ``error`` (attempt 1): retry per the policy.

        Returns the value of a successful retry, or :data:`FAILED` once the item
        has been dead-lettered.
        """
        attempt = 1
        while True:
            kind = classify(error)
            if kind == "fatal":
                raise WorkerFailed(
                    f"operator {self.operator} failed fatally on event {item.id}: "
                    f"{type(error).__name__}: {error}"
                ) from error
            if kind == "permanent" or attempt >= self.policy.max_attempts:
                self.dead_letter(item, error, attempt, fx)
                return _FAILED
            fx.retries += 1
            self.sleep(self.policy.delay_ms(attempt, self.rng) / 1000)
            attempt += 1
            try:
                return fn(*args)
            except Exception as e:  # classified at the top of the loop
                error = e

    def dead_letter(self, item: Item, error: BaseException | str, attempts: int, fx: Effects) -> None:
        record = item.record
        if record is None:  # nothing to keep: should not happen for items from the log
            raise WorkerFailed(f"operator {self.operator}: cannot dead-letter {item.id}: {error}")
        fx.dead_letters += 1
        fx.emit(
            self.dead_letter_topic(record.topic),
            dead_letter_message(
                record.value,
                key=record.key,
                headers=record.headers,
                error=error,
                source={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "group": self.group,
                    "operator": self.operator,
                },
                attempts=attempts,
                now_ms=self.clock_ms(),
            ),
        )


FAILED = _FAILED
