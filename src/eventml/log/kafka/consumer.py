"""A consumer-group member on Kafka: :class:`~eventml.log.base.Consumer` over confluent-kafka."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

from confluent_kafka import OFFSET_STORED, KafkaError, KafkaException
from confluent_kafka import Consumer as _RdConsumer
from confluent_kafka import Message as _RdMessage
from confluent_kafka import TopicPartition as _RdTp

from eventml.log.base import (
    CommitFailed,
    Consumer,
    ConsumerConfig,
    Headers,
    LogError,
    RebalanceListener,
    Record,
    TopicPartition,
)
from eventml.log.kafka import config as cfg
from eventml.log.kafka import offsets

_log = logging.getLogger(__name__)

# The group moved on without this member: its offsets are not accepted any more.
_REBALANCE_ERRORS = frozenset(
    {
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.FENCED_INSTANCE_ID,
        KafkaError.STALE_MEMBER_EPOCH,
        KafkaError.FENCED_MEMBER_EPOCH,
        KafkaError._ASSIGNMENT_LOST,
        KafkaError._STATE,
        KafkaError._MAX_POLL_EXCEEDED,
    }
)
# Consume-side events that are not failures.
_SKIP = frozenset(
    {
        KafkaError._PARTITION_EOF,
        KafkaError._MAX_POLL_EXCEEDED,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
    }
)
_RAISE = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError._AUTHENTICATION,
    }
)


class KafkaConsumer(Consumer):
    """Subscribes on creation; joins the group, and applies rebalances, inside :meth:`poll`.

    Positions are tracked here (from returned records and seeks) and resolved on
    assignment from the committed offsets or ``auto_offset_reset``, so ``position``
    and ``seek`` work as soon as a partition is assigned.

    Reads with ``isolation.level=read_committed``: records of open or aborted
    transactions are skipped (positions move past them and past commit markers).
    A transaction bound to this consumer (``producer.begin(consumer)``) commits its
    offsets through :meth:`group_metadata`, not through :meth:`commit`; positions
    are unaffected, and :meth:`committed` shows them once the transaction commits.
    """

    def __init__(
        self,
        bootstrap: str,
        options: Mapping[str, str],
        group: str,
        topics: Sequence[str],
        config: ConsumerConfig,
        listener: RebalanceListener | None = None,
        *,
        request_timeout_s: float = 30.0,
    ) -> None:
        if not topics:
            raise ValueError("subscribe to at least one topic")
        self.group = group
        self._topics = list(topics)
        self._config = config
        self._listener = listener or RebalanceListener()
        self._timeout_s = request_timeout_s
        conf = cfg.consumer(bootstrap, options, group, config)
        self._cooperative = "cooperative" in str(conf.get("partition.assignment.strategy", ""))
        try:
            self._c = _RdConsumer(conf, **cfg.client_kwargs())
        except KafkaException as exc:
            raise cfg.bad_setting(exc, f"the consumer of group {group!r}") from None
        self._assignment: frozenset[TopicPartition] = frozenset()
        self._positions: dict[TopicPartition, int] = {}
        self._closed = False
        self._c.subscribe(
            self._topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    # -- rebalance callbacks (run inside consume) ------------------------------
    def _on_assign(self, c: _RdConsumer, parts: list[_RdTp]) -> None:
        gained = [TopicPartition(p.topic, p.partition) for p in parts]
        try:
            starts = self._start_offsets(gained)
        except (LogError, KafkaException) as exc:  # librdkafka then resolves them itself
            _log.warning("group %s: could not resolve start offsets (%s)", self.group, exc)
            starts = {}
        rd = [_RdTp(tp.topic, tp.partition, starts.get(tp, OFFSET_STORED)) for tp in gained]
        if self._cooperative:
            c.incremental_assign(rd)
            self._assignment = self._assignment | frozenset(gained)
        else:
            c.assign(rd)
            self._assignment = frozenset(gained)
        for tp in gained:
            if tp in starts:
                self._positions[tp] = starts[tp]
            else:
                self._positions.pop(tp, None)
        if gained and self._listener.on_assign:
            self._listener.on_assign(frozenset(gained))

    def _on_revoke(self, c: _RdConsumer, parts: list[_RdTp]) -> None:
        lost = frozenset(TopicPartition(p.topic, p.partition) for p in parts) & self._assignment
        if lost and self._listener.on_revoke:
            self._listener.on_revoke(lost)
        self._assignment = self._assignment - lost
        for tp in lost:
            self._positions.pop(tp, None)

    def _on_lost(self, c: _RdConsumer, parts: list[_RdTp]) -> None:
        _log.warning("group %s: %d partition(s) lost to the group", self.group, len(parts))
        self._on_revoke(c, parts)

    def _start_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Committed offset if in range, else the start or end per ``auto_offset_reset``."""
        if not tps:
            return {}
        committed = self._committed(tps)
        earliest = self._config.auto_offset_reset == "earliest"
        out: dict[TopicPartition, int] = {}
        for topic, parts in _by_topic(tps).items():
            marks = offsets.watermarks(self._c, topic, parts, self._timeout_s)
            for p in parts:
                tp = TopicPartition(topic, p)
                start, end = marks[p]
                offset = committed.get(tp)
                if offset is None or not start <= offset <= end:
                    offset = start if earliest else end
                out[tp] = offset
        return out

    # -- reading ----------------------------------------------------------------
    def poll(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        self._check_open()
        if max_records <= 0:
            return []
        c = self._c
        try:
            msgs = c.consume(max_records, 0)
            if not msgs and timeout_s > 0:
                # wake on the first record, then take what is already fetched
                msgs = c.consume(1, timeout_s)
                if msgs and max_records > 1:
                    msgs.extend(c.consume(max_records - 1, 0))
        except KafkaException as exc:
            raise LogError(f"consumer of group {self.group!r} failed: {exc}") from None
        return self._records(msgs)

    def _records(self, msgs: list[_RdMessage]) -> list[Record]:
        out: list[Record] = []
        add = out.append
        new = tuple.__new__  # Record(...) without the Python-level __new__: hot path
        last: dict[tuple[str, int], int] = {}
        for m in msgs:
            err = m.error()
            if err is not None:
                self._on_error(err)
                continue
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            hdrs = m.headers()
            headers: Headers = ()
            if hdrs:  # a list of (name, bytes | None) pairs
                headers = tuple(cast("list[tuple[str, bytes]]", hdrs))
                for _, v in headers:
                    if v is None:  # a null header value reads as b""
                        headers = _no_nulls(headers)
                        break
            ts = m.timestamp()[1]
            add(new(Record, (topic, partition, offset, ts, m.key(), m.value(), headers)))
            last[(topic, partition)] = offset  # type: ignore[index,assignment]
        positions = self._positions
        for (topic, partition), offset in last.items():
            positions[TopicPartition(topic, partition)] = offset + 1
        return out

    def _on_error(self, err: KafkaError) -> None:
        code = err.code()
        if code in _SKIP:
            _log.debug("group %s: %s", self.group, err)
            return
        if err.fatal() or code in _RAISE:
            raise LogError(f"consumer of group {self.group!r} failed: {err.str()}")
        _log.warning("group %s: %s", self.group, err)

    def assignment(self) -> frozenset[TopicPartition]:
        return self._assignment

    def position(self, tp: TopicPartition) -> int:
        self._require_assigned(tp)
        pos = self._positions.get(tp)
        # librdkafka's position also moves past transaction markers (which are never
        # returned as records); it is unset (< 0) after a seek until a record is read.
        rd = self._c.position([_RdTp(tp.topic, tp.partition)])[0].offset
        if pos is None or rd > pos:
            pos = rd if rd >= 0 else self._start_offsets([tp])[tp]
            self._positions[tp] = pos
        return pos

    # -- offsets ----------------------------------------------------------
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._check_open()
        if offsets is None:
            to_commit = {tp: self.position(tp) for tp in self._assignment}
        else:
            to_commit = dict(offsets)
        if not to_commit:
            return
        stray = [tp for tp in to_commit if tp not in self._assignment]
        if stray:
            raise self._commit_failed(len(stray), stray[0], "it is not assigned to this member")
        request = [_RdTp(tp.topic, tp.partition, off) for tp, off in to_commit.items()]
        try:
            result = self._c.commit(offsets=request, asynchronous=False)
        except KafkaException as exc:
            err = cfg.error_of(exc)
            if err is not None and err.code() in _REBALANCE_ERRORS:
                raise self._commit_failed(len(request), min(to_commit), err.str()) from None
            raise LogError(f"commit for group {self.group!r} failed: {exc}") from None
        for r in result or ():
            if r.error is not None:
                tp = TopicPartition(r.topic, r.partition)
                if r.error.code() in _REBALANCE_ERRORS:
                    raise self._commit_failed(1, tp, r.error.str())
                raise LogError(f"commit of {tp.topic}[{tp.partition}] failed: {r.error.str()}")

    def group_metadata(self) -> object:
        """This member's group metadata (group, generation, member id) as librdkafka needs it
        for ``send_offsets_to_transaction``: the broker refuses a stale generation."""
        self._check_open()
        try:
            return self._c.consumer_group_metadata()
        except KafkaException as exc:
            raise LogError(f"consumer of group {self.group!r}: no group metadata: {exc}") from None

    def _commit_failed(self, count: int, tp: TopicPartition, why: str) -> CommitFailed:
        return CommitFailed(
            f"commit refused for {self.group!r}: {count} partition(s) such as "
            f"{tp.topic}[{tp.partition}] ({why}); poll again and reprocess from the "
            "committed offsets"
        )

    def committed(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int | None]:
        tps = list(self._assignment if partitions is None else partitions)
        return self._committed(tps)

    def _committed(self, tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        if not tps:
            return {}
        try:
            result = self._c.committed(
                [_RdTp(tp.topic, tp.partition) for tp in tps], timeout=self._timeout_s
            )
        except KafkaException as exc:
            raise LogError(f"could not read committed offsets of {self.group!r}: {exc}") from None
        found = {TopicPartition(r.topic, r.partition): r.offset for r in result}
        return {tp: (o if (o := found.get(tp, -1)) >= 0 else None) for tp in tps}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._check_open()
        self._require_assigned(tp)
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        try:
            self._c.seek(_RdTp(tp.topic, tp.partition, offset))
        except KafkaException as exc:
            # Assigned but not fetching yet ("Erroneous state"): restart it at the offset.
            if cfg.error_code(exc) != KafkaError._STATE:
                raise LogError(f"seek on {tp.topic}[{tp.partition}] failed: {exc}") from None
            self._reassign(tp, offset)
        self._positions[tp] = offset

    def _reassign(self, tp: TopicPartition, offset: int) -> None:
        if self._cooperative:
            self._c.incremental_unassign([_RdTp(tp.topic, tp.partition)])
            self._c.incremental_assign([_RdTp(tp.topic, tp.partition, offset)])
            return
        self._c.assign(
            [
                _RdTp(
                    t.topic,
                    t.partition,
                    offset if t == tp else self._positions.get(t, OFFSET_STORED),
                )
                for t in sorted(self._assignment)
            ]
        )

    def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        for tp, (start, _) in self._watermarks(partitions).items():
            self.seek(tp, start)

    def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        for tp, (_, end) in self._watermarks(partitions).items():
            self.seek(tp, end)

    def seek_to_time(
        self, timestamp_ms: int, partitions: Iterable[TopicPartition] | None = None
    ) -> None:
        targets = self._targets(partitions)
        for topic, parts in _by_topic(targets).items():
            found = offsets.for_time(self._c, topic, parts, timestamp_ms, self._timeout_s)
            for p in parts:
                self.seek(TopicPartition(topic, p), found[p])

    def lag(self) -> dict[TopicPartition, int]:
        tps = sorted(self._assignment)
        committed = self._committed(tps)
        marks = self._watermarks(tps)
        result: dict[TopicPartition, int] = {}
        for tp in tps:
            base = committed.get(tp)
            if base is None:
                base = self.position(tp)
            result[tp] = max(0, marks[tp][1] - base)
        return result

    def _watermarks(
        self, partitions: Iterable[TopicPartition] | None
    ) -> dict[TopicPartition, tuple[int, int]]:
        targets = self._targets(partitions)
        for tp in targets:
            self._require_assigned(tp)
        out: dict[TopicPartition, tuple[int, int]] = {}
        for topic, parts in _by_topic(targets).items():
            for p, marks in offsets.watermarks(self._c, topic, parts, self._timeout_s).items():
                out[TopicPartition(topic, p)] = marks
        return out

    def close(self) -> None:
        if self._closed:
            return
        try:  # the listener may still commit what it processed, so revoke while open
            if self._assignment and self._listener.on_revoke:
                self._listener.on_revoke(self._assignment)
        finally:
            self._closed = True
            self._assignment = frozenset()
            self._positions.clear()
            try:
                self._c.close()  # leaves the group at once
            except (KafkaException, RuntimeError) as exc:
                _log.debug("group %s: close: %s", self.group, exc)

    # -- helpers ------------------------------------------------------------
    def _targets(self, partitions: Iterable[TopicPartition] | None) -> list[TopicPartition]:
        return sorted(self._assignment if partitions is None else partitions)

    def _require_assigned(self, tp: TopicPartition) -> None:
        if tp not in self._assignment:
            raise ValueError(f"{tp.topic}[{tp.partition}] is not assigned to this consumer")

    def _check_open(self) -> None:
        if self._closed:
            raise LogError("consumer is closed: create a new one with log.consumer(...)")

    def __repr__(self) -> str:
        return f"KafkaConsumer(group={self.group!r}, topics={self._topics!r})"


def _no_nulls(headers: Headers) -> Headers:
    return tuple((k, b"" if v is None else v) for k, v in headers)


def _by_topic(tps: Iterable[TopicPartition]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for tp in tps:
        out.setdefault(tp.topic, []).append(tp.partition)
    return out
