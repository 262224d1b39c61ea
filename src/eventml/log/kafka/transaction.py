"""Exactly-once on Kafka: transactions over one confluent-kafka producer (EOS v2, KIP-447).

A :class:`KafkaTransactionalProducer` owns one librdkafka producer with a
``transactional.id``; creating it calls ``init_transactions()``, which fences any
older producer with the same id. Each :class:`KafkaTransaction` produces without
waiting (delivery reports are collected as they come), commits the bound
consumer's offsets with ``send_offsets_to_transaction`` and ends with one
``commit_transaction``: one round of broker requests per transaction, not per
message, so commit every ~100 ms with batches of thousands of messages.

librdkafka's errors map onto the log contract:

* fatal errors (``_FENCED``, ``PRODUCER_FENCED``, ``INVALID_PRODUCER_EPOCH``,
  anything ``fatal()``) raise :class:`~eventml.log.base.Fenced`: this producer is
  finished; a newer instance took over (or must be created).
* ``txn_requires_abort()`` errors (e.g. the group moved the consumer's
  partitions: ``ILLEGAL_GENERATION``, ``UNKNOWN_MEMBER_ID``) abort the
  transaction and raise :class:`~eventml.log.base.CommitFailed`: rewind to the
  committed offsets and process again.
* ``retriable()`` errors are retried a few times before giving up.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka import Message as _RdMessage
from confluent_kafka import TopicPartition as _RdTp

from eventml.log.base import (
    BrokerUnavailable,
    CommitFailed,
    Consumer,
    Fenced,
    LogError,
    Message,
    TopicPartition,
    Transaction,
    TransactionalProducer,
    UnknownTopic,
)
from eventml.log.kafka import config as cfg
from eventml.log.kafka.consumer import KafkaConsumer

_log = logging.getLogger(__name__)

Place = Callable[[str, Sequence[Message]], list[int]]
_T = TypeVar("_T")

_RETRIES = 5  # retriable errors: attempts per call before giving up
_RETRY_BACKOFF_S = 0.1
_FENCED = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)
# TxnOffsetCommit refused because the group moved on without the consumer (abortable).
_GROUP_MOVED = frozenset(
    {
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.STALE_MEMBER_EPOCH,
        KafkaError.FENCED_MEMBER_EPOCH,
    }
)
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})
_UNKNOWN_TOPIC = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}
)
_UNAVAILABLE = frozenset(
    {KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT, KafkaError._TIMED_OUT}
)
_Headers = list[tuple[str, str | bytes | None]]


class KafkaTransactionalProducer(TransactionalProducer):
    """One transactional librdkafka producer: one open transaction at a time, one thread.

    Create it with :meth:`KafkaLog.transactional_producer
    <eventml.log.kafka.log.KafkaLog.transactional_producer>`; keep ``transactional_id``
    stable per worker instance (e.g. ``f"{app}-{instance}"``) so that a restarted
    instance fences its zombie. Keyed messages land where :meth:`KafkaLog.append
    <eventml.log.kafka.log.KafkaLog.append>` puts them (client-side murmur2).

    After :class:`~eventml.log.base.Fenced` the producer is unusable: :meth:`begin`
    raises it again; close it. :meth:`close` aborts an open transaction.
    """

    def __init__(
        self, transactional_id: str, conf: cfg.Config, place: Place, *, timeout_s: float
    ) -> None:
        self.transactional_id = transactional_id
        self.timeout_s = timeout_s
        self._place = place
        self._errors: list[tuple[str, KafkaError]] = []  # failed deliveries of this transaction
        keep = self._errors.append

        def on_delivery(err: KafkaError | None, msg: _RdMessage) -> None:
            if err is not None and err.code() not in _PURGED:
                keep((str(msg.topic()), err))

        try:
            self._producer = Producer(conf, on_delivery=on_delivery, **cfg.client_kwargs())
        except KafkaException as exc:
            raise cfg.bad_setting(exc, f"transactional producer {transactional_id!r}") from None
        self._fatal: KafkaError | None = None
        self._abort_pending = False  # an abort the broker has not confirmed yet
        self._aborting = False
        self._open: KafkaTransaction | None = None
        self._closed = False
        try:
            # fences older producers with this id, aborting their open transactions
            self._call(self._producer.init_transactions, "initialize transactions", timed=True)
        except BaseException:
            self._producer.close()
            raise

    # -- the producer ---------------------------------------------------------
    def begin(self, consumer: Consumer | None = None) -> KafkaTransaction:
        if self._closed:
            raise LogError(
                f"transactional producer {self.transactional_id!r} is closed: "
                "create a new one with log.transactional_producer(...)"
            )
        if consumer is not None and not isinstance(consumer, KafkaConsumer):
            raise LogError("a transaction commits offsets only for a consumer of the same log")
        if self._fatal is not None:
            raise self._fenced(self._fatal)
        if self._open is not None and not self._open.done:
            raise LogError(
                f"producer {self.transactional_id!r} has a transaction open: "
                "commit or abort it before beginning another"
            )
        if self._abort_pending:
            self._abort()
            if self._abort_pending:
                raise BrokerUnavailable(
                    f"producer {self.transactional_id!r}: Kafka has not confirmed the abort "
                    "of the previous transaction; retry begin() once the broker is reachable"
                )
        self._errors.clear()
        self._call(self._producer.begin_transaction, "begin a transaction")
        self._open = KafkaTransaction(self, consumer)
        return self._open

    def close(self) -> None:
        """Abort an open transaction, then release the producer (idempotent)."""
        if self._closed:
            return
        if self._open is not None and not self._open.done:
            self._open.abort()
        self._closed = True
        try:
            self._producer.flush(min(self.timeout_s, 5.0))
            with warnings.catch_warnings():
                if self._fatal is not None:  # fenced: its close cannot abort, and says so
                    warnings.simplefilter("ignore", RuntimeWarning)
                self._producer.close()
        except (KafkaException, RuntimeError, SystemError) as exc:
            _log.debug("producer %s: close: %s", self.transactional_id, exc)

    def __repr__(self) -> str:
        return f"KafkaTransactionalProducer({self.transactional_id!r})"

    # -- calls into librdkafka ---------------------------------------------------
    def _call(self, fn: Callable[..., _T], what: str, *args: Any, timed: bool = False) -> _T:
        """``fn(*args)``, retrying retriable errors; other errors mapped to the contract.

        ``timed``: ``fn`` takes a timeout last; all attempts share ``timeout_s``.
        """
        deadline = time.monotonic() + self.timeout_s
        for attempt in range(_RETRIES):
            try:
                if timed:
                    return fn(*args, max(0.1, deadline - time.monotonic()))
                return fn(*args)
            except KafkaException as exc:
                err = cfg.error_of(exc)
                if err is None:
                    raise LogError(
                        f"producer {self.transactional_id!r} could not {what}: {exc}"
                    ) from None
                if self._is_fatal(err) or err.txn_requires_abort() or not err.retriable():
                    raise self._failure(err, what) from None
                if attempt == _RETRIES - 1 or time.monotonic() >= deadline:
                    raise BrokerUnavailable(
                        f"producer {self.transactional_id!r} could not {what} in "
                        f"{attempt + 1} attempts ({err.str()}): is the broker reachable?"
                    ) from None
                _log.debug("producer %s: %s: %s, retrying", self.transactional_id, what, err)
                time.sleep(min(_RETRY_BACKOFF_S * (attempt + 1), self.timeout_s / 10))
        raise AssertionError("unreachable")

    def _is_fatal(self, err: KafkaError) -> bool:
        if err.fatal() or err.code() in _FENCED:
            self._fatal = self._fatal or err
            return True
        return False

    def _failure(self, err: KafkaError, what: str) -> LogError:
        """The contract's error for ``err``; aborts first where the transaction must be."""
        if self._is_fatal(err):
            return self._fenced(err)
        if err.txn_requires_abort():
            if not self._aborting:
                self._abort()
            if err.code() in _GROUP_MOVED:
                return CommitFailed(
                    f"producer {self.transactional_id!r}: the group moved the consumer's "
                    f"partitions to another member ({err.str()}); the transaction was aborted: "
                    "poll again and reprocess from the committed offsets"
                )
            return CommitFailed(
                f"producer {self.transactional_id!r} could not {what} ({err.str()}); the "
                "transaction was aborted: rewind to the committed offsets and process again"
            )
        return LogError(f"producer {self.transactional_id!r} could not {what}: {err.str()}")

    def _fenced(self, err: KafkaError) -> Fenced:
        if err.code() in _FENCED:
            return Fenced(
                f"producer {self.transactional_id!r} was fenced ({err.str()}): a newer instance "
                "with the same transactional id took over; stop this one"
            )
        return Fenced(
            f"producer {self.transactional_id!r} failed fatally ({err.str()}): stop using it "
            "and create a new one with log.transactional_producer(...)"
        )

    def _abort(self) -> None:
        """Abort the current transaction; never raises (a failed abort is retried by begin)."""
        if self._fatal is not None:  # nothing to abort: the broker ends it (fenced/timed out)
            self._abort_pending = False
            return
        p = self._producer
        self._aborting = True
        try:
            # aborting while the first produce is in flight can end in INVALID_TXN_STATE
            if len(p):
                p.flush(self.timeout_s)
            self._call(p.abort_transaction, "abort the transaction", timed=True)
        except LogError as exc:
            if self._fatal is None:
                self._abort_pending = True
                _log.warning("producer %s: abort failed, will retry: %s", self.transactional_id, exc)
            else:
                self._abort_pending = False
        else:
            self._abort_pending = False
        finally:
            self._aborting = False
        p.poll(0)  # serve the purged messages' reports now, not in the next transaction
        self._errors.clear()

    def _delivery_failure(self) -> LogError:
        """The error for this transaction's failed deliveries (the transaction is aborted)."""
        topic, first = self._errors[0]
        what = f"{len(self._errors)} message(s) failed, e.g. to {topic!r}: {first.str()}"
        if self._is_fatal(first):
            return self._fenced(first)
        self._abort()
        if first.code() in _UNKNOWN_TOPIC:
            return UnknownTopic(f"unknown topic {topic!r} ({what}): create it first")
        if first.retriable() or first.code() in _UNAVAILABLE:
            return CommitFailed(
                f"producer {self.transactional_id!r}: {what}; the transaction was aborted: "
                "rewind to the committed offsets and process again"
            )
        return LogError(f"producer {self.transactional_id!r}: {what}; the transaction was aborted")


class KafkaTransaction(Transaction):
    """One Kafka transaction; see :class:`~eventml.log.base.Transaction`.

    :meth:`append` produces at once without waiting; :meth:`commit_offsets` collects
    offsets (checked against the consumer's assignment) and :meth:`commit` sends
    them, waits for every delivery and commits.
    """

    def __init__(self, owner: KafkaTransactionalProducer, consumer: KafkaConsumer | None) -> None:
        self._owner = owner
        self._consumer = consumer
        self._offsets: dict[TopicPartition, int] = {}
        self.done = False

    def append(self, topic: str, messages: Sequence[Message]) -> None:
        self._check_open()
        if not messages:
            return
        placed = self._owner._place(topic, messages)  # validates all before producing any
        producer = self._owner._producer
        produce = producer.produce
        try:
            for (value, key, headers, timestamp_ms, _), partition in zip(
                messages, placed, strict=True
            ):
                hdrs: _Headers | None = list(headers) if headers else None
                ts = timestamp_ms or 0  # 0: the producer stamps the current time
                while True:
                    try:
                        # positional: topic, value, key, partition, callback, on_delivery,
                        # timestamp, headers; reports go to the producer-wide callback
                        produce(topic, value, key, partition, None, None, ts, hdrs)
                        break
                    except BufferError:  # local queue full: let deliveries drain
                        producer.poll(0.05)
        except KafkaException as exc:
            err = cfg.error_of(exc)
            if err is None:
                raise LogError(f"append to {topic!r} in a transaction failed: {exc}") from None
            raise self._owner._failure(err, f"append to {topic!r}") from None
        producer.poll(0)  # serve delivery reports as they come

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._check_open()
        if self._consumer is None:
            raise LogError("this transaction has no consumer: pass one to producer.begin(consumer)")
        self._check_owned(offsets)
        self._offsets.update(offsets)

    def commit(self) -> None:
        self._check_open()
        self.done = True
        owner = self._owner
        p = owner._producer
        if self._offsets and self._consumer is not None:
            self._check_owned(self._offsets)
            positions = [_RdTp(tp.topic, tp.partition, o) for tp, o in self._offsets.items()]
            try:
                metadata = self._consumer.group_metadata()
            except LogError:
                owner._abort()
                raise
            owner._call(
                p.send_offsets_to_transaction,
                "commit offsets in the transaction",
                positions,
                metadata,
                timed=True,
            )
        try:
            unflushed = p.flush(owner.timeout_s)
        except (KafkaException, SystemError) as exc:
            # a fatal error (fenced by a newer instance) can surface from inside flush's
            # callbacks; confluent-kafka then wraps its KafkaException in a SystemError
            cause = exc if isinstance(exc, KafkaException) else exc.__cause__ or exc.__context__
            err = cfg.error_of(cause) if isinstance(cause, KafkaException) else None
            if err is None:
                raise LogError(f"producer {owner.transactional_id!r} could not flush: {exc}") from None
            raise owner._failure(err, "flush the transaction") from None
        if unflushed:
            owner._abort()
            raise CommitFailed(
                f"producer {owner.transactional_id!r}: Kafka did not acknowledge every message "
                f"within {owner.timeout_s:g} s; the transaction was aborted: rewind to the "
                "committed offsets and process again"
            )
        if owner._errors:
            raise owner._delivery_failure()
        try:
            owner._call(p.commit_transaction, "commit the transaction", timed=True)
        except BrokerUnavailable as exc:  # outcome unknown: abort if Kafka lets us
            owner._abort()
            if owner._abort_pending:
                raise BrokerUnavailable(
                    f"{exc}; whether the transaction committed is unknown: rewind to the "
                    "committed offsets (they tell) once the broker is back"
                ) from None
            raise CommitFailed(
                f"{exc}; the transaction was aborted: rewind to the committed offsets and "
                "process again"
            ) from None

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        self._owner._abort()

    def _check_owned(self, offsets: Mapping[TopicPartition, int]) -> None:
        assert self._consumer is not None
        owned = self._consumer.assignment()
        stray = [tp for tp in offsets if tp not in owned]
        if stray:
            self.done = True
            self._owner._abort()
            raise CommitFailed(
                f"commit refused for {self._consumer.group!r}: {len(stray)} partition(s) such "
                f"as {stray[0].topic}[{stray[0].partition}] are not assigned to this member; "
                "the transaction was aborted: poll again and reprocess from the committed offsets"
            )

    def _check_open(self) -> None:
        if self.done:
            raise LogError("this transaction is finished: begin a new one")
