"""Transactions for the in-process logs (memory, embedded): buffer, then apply at once.

The work of a transaction is collected in memory and applied by the backend in
one atomic step at :meth:`commit`, so the backend's lock (SQLite's write lock,
the memory log's mutex) is held only for the apply, never while the caller
computes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eventml.log._local import LocalConsumer
from eventml.log.base import (
    Consumer,
    Fenced,
    LogError,
    Message,
    TopicPartition,
    Transaction,
    TransactionalProducer,
)

Hook = Callable[[Any], None]


class BufferedTransaction(Transaction):
    """Collects appends, offsets and backend hooks; ``apply`` makes them visible at once."""

    def __init__(
        self,
        apply: Callable[[BufferedTransaction], None],
        consumer: Consumer | None,
        transactional_id: str,
        epoch: int,
    ) -> None:
        if consumer is not None and not isinstance(consumer, LocalConsumer):
            raise LogError("a transaction commits offsets only for a consumer of the same log")
        self.consumer = consumer
        self.transactional_id = transactional_id
        self.epoch = epoch
        self.appends: list[tuple[str, Sequence[Message]]] = []
        self.offsets: dict[TopicPartition, int] = {}
        self.hooks: list[Hook] = []
        self._apply = apply
        self._done = False

    def append(self, topic: str, messages: Sequence[Message]) -> None:
        self._check_open()
        if messages:
            self.appends.append((topic, messages))

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._check_open()
        if self.consumer is None:
            raise LogError("this transaction has no consumer: pass one to producer.begin(consumer)")
        self.offsets.update(offsets)

    def add_hook(self, hook: Hook) -> None:
        """Run ``hook`` inside the backend's atomic step (embedded: given the SQLite connection)."""
        self._check_open()
        self.hooks.append(hook)

    def commit(self) -> None:
        self._check_open()
        self._done = True
        self._apply(self)

    def abort(self) -> None:
        self._done = True
        self.appends.clear()
        self.offsets.clear()
        self.hooks.clear()

    @property
    def member(self) -> tuple[str, str] | None:
        """(group, member id) of the bound consumer."""
        c = self.consumer
        return None if not isinstance(c, LocalConsumer) else (c.group, c.member_id)

    def _check_open(self) -> None:
        if self._done:
            raise LogError("this transaction is finished: begin a new one")


class LocalProducer(TransactionalProducer):
    """A transactional producer of an in-process log; the backend checks ``epoch`` at apply."""

    def __init__(
        self, transactional_id: str, epoch: int, apply: Callable[[BufferedTransaction], None]
    ) -> None:
        self.transactional_id = transactional_id
        self.epoch = epoch
        self._apply = apply

    def begin(self, consumer: Consumer | None = None) -> BufferedTransaction:
        return BufferedTransaction(self._apply, consumer, self.transactional_id, self.epoch)


def fenced(transactional_id: str) -> Fenced:
    return Fenced(
        f"producer {transactional_id!r} was fenced: a newer instance with the same "
        "transactional id took over; stop this one"
    )
