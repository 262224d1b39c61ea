"""The transactions contract: appends and offsets commit together, or not at all.

Every test runs on memory, embedded and Kafka (read_committed consumers). Records
carry ids (``key``, ``seq``) and every check counts each id, so a lost,
duplicated or leaked (aborted, zombie) record fails the test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import pytest

from eventml.log import (
    CommitFailed,
    Consumer,
    Fenced,
    LogError,
    Message,
    Record,
    TopicPartition,
    TransactionalProducer,
    partition_for,
)
from eventml.testing import check_delivery
from tests.contract.conftest import Backend, drain, read_all

Item = tuple[bytes | None, int]


def fill(backend: Backend, topic: str, keys: int, per_key: int) -> list[Item]:
    """Append ``per_key`` numbered records for each of ``keys`` keys; returns their ids."""
    sent: list[Item] = [(b"k%d" % k, seq) for seq in range(per_key) for k in range(keys)]
    backend.log.append(topic, [Message(b"%d" % seq, key=key) for key, seq in sent])
    return sent


def ids(records: Sequence[Record]) -> list[Item]:
    return [(r.key, int(r.value or b"-1")) for r in records]


def transformed(records: Sequence[Record]) -> list[Message]:
    """The output of processing ``records``: one message per input, same key and id."""
    return [Message(r.value, key=r.key) for r in records]


def next_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for r in records:
        out[TopicPartition(r.topic, r.partition)] = r.offset + 1
    return out


def peek(backend: Backend, topic: str, window_s: float) -> list[Record]:
    """What a fresh (read_committed) group sees in ``topic`` within ``window_s`` of joining.

    Unlike :func:`read_all` it does not wait for the end offsets, which an open
    Kafka transaction's records count in but a read_committed reader never passes.
    """
    partitions = len(backend.log.end_offsets(topic))
    consumer = backend.consumer(topic)
    out: list[Record] = []
    try:
        deadline = time.monotonic() + 30
        while len(consumer.assignment()) < partitions:  # a window before joining proves nothing
            assert time.monotonic() < deadline, f"never assigned the {partitions} partitions"
            out.extend(consumer.poll(max_records=1000, timeout_s=0.05))
        end = time.monotonic() + window_s
        while time.monotonic() < end:
            out.extend(consumer.poll(max_records=1000, timeout_s=0.05))
        return out
    finally:
        consumer.close()


def window(backend: Backend) -> float:
    """How long to watch for records that must not show up."""
    return 1.0 if backend.name == "kafka" else 0.2


def wait_assigned(consumer: Consumer, partitions: int, timeout_s: float = 30.0) -> list[Record]:
    got: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(consumer.assignment()) < partitions:
        assert time.monotonic() < deadline, f"never assigned {partitions} partitions"
        got.extend(consumer.poll(max_records=1000, timeout_s=0.05))
    return got


def producer(backend: Backend, name: str | None = None) -> TransactionalProducer:
    return backend.log.transactional_producer(name or f"tx-{uuid.uuid4().hex[:10]}")


# -- commit -----------------------------------------------------------------------


def test_committed_appends_and_offsets_become_visible_together(backend: Backend) -> None:
    src, out = backend.topic(partitions=2), backend.topic(partitions=3)
    sent = fill(backend, src, keys=10, per_key=20)
    group = f"g_{uuid.uuid4().hex[:8]}"
    consumer = backend.consumer(src, group)
    records = drain(consumer, len(sent))
    assert len(records) == len(sent)
    p = producer(backend)
    tps = [TopicPartition(src, i) for i in range(2)]
    with p.begin(consumer) as txn:
        txn.append(out, transformed(records))
        txn.commit_offsets(next_offsets(records))
        # neither half is visible before the commit
        assert peek(backend, out, window(backend)) == []
        assert consumer.committed(tps) == dict.fromkeys(tps)
    # both are after it
    check_delivery(sent, ids(read_all(backend, out))).assert_ok()
    ends = backend.log.end_offsets(src)
    assert consumer.committed(tps) == {tp: ends[tp.partition] for tp in tps}
    # keyed messages land where a plain append puts them (murmur2 on every backend)
    for r in read_all(backend, out):
        assert r.key is not None and r.partition == partition_for(r.key, 3)
    # the consumer's positions are right after the commit: the next poll returns
    # exactly what is appended next, nothing re-read and nothing skipped
    assert {tp: consumer.position(tp) for tp in tps} == {tp: ends[tp.partition] for tp in tps}
    more = [(b"k%d" % k, 20) for k in range(10)]
    backend.log.append(src, [Message(b"20", key=key) for key, _ in more])
    after = drain(consumer, len(more))
    after += consumer.poll(max_records=100, timeout_s=0.3)
    check_delivery(more, ids(after)).assert_ok()
    consumer.close()
    p.close()


def test_exactly_once_through_batched_transactions_and_a_rewind(backend: Backend) -> None:
    """Consume-transform-produce in transactions of up to 2,000 records; one transaction
    fails half way, the worker rewinds to the committed offsets: every id once."""
    src, out = backend.topic(partitions=4), backend.topic(partitions=4)
    sent = fill(backend, src, keys=50, per_key=200)  # 10,000 records
    consumer = backend.consumer(src)
    p = producer(backend)
    done = 0
    failed_once = False
    deadline = time.monotonic() + 60
    while done < len(sent):
        assert time.monotonic() < deadline, f"processed {done} of {len(sent)} in 60 s"
        batch = consumer.poll(max_records=2000, timeout_s=0.2)
        if not batch:
            continue
        try:
            with p.begin(consumer) as txn:
                txn.append(out, transformed(batch[: len(batch) // 2]))
                if not failed_once and done >= 4000:
                    failed_once = True
                    raise RuntimeError("worker failure half way through a transaction")
                txn.append(out, transformed(batch[len(batch) // 2 :]))
                txn.commit_offsets(next_offsets(batch))
        except RuntimeError:
            # rewind to the committed offsets and process again
            committed = consumer.committed()
            for tp in consumer.assignment():
                offset = committed.get(tp)
                consumer.seek(tp, 0 if offset is None else offset)
            continue
        done += len(batch)
    assert failed_once
    check_delivery(sent, ids(read_all(backend, out))).assert_ok()
    ends = backend.log.end_offsets(src)
    assert consumer.committed() == {
        TopicPartition(src, i): ends[i] for i in range(4)
    }
    consumer.close()
    p.close()


# -- abort ------------------------------------------------------------------------


def test_an_aborted_transaction_leaves_nothing_and_keeps_the_offsets(backend: Backend) -> None:
    src, out = backend.topic(partitions=2), backend.topic(partitions=2)
    sent = fill(backend, src, keys=8, per_key=10)
    consumer = backend.consumer(src)
    records = drain(consumer, len(sent))
    first, second = records[:40], records[40:]
    p = producer(backend)
    with p.begin(consumer) as txn:
        txn.append(out, transformed(first))
        txn.commit_offsets(next_offsets(first))
    committed = consumer.committed()
    with pytest.raises(RuntimeError, match="boom"), p.begin(consumer) as txn:
        txn.append(out, transformed(second))
        txn.commit_offsets(next_offsets(second))
        raise RuntimeError("boom")
    txn.abort()  # aborting again is harmless
    check_delivery(ids(first), ids(read_all(backend, out))).assert_ok()
    assert consumer.committed() == committed
    # the producer goes on after an abort
    with p.begin(consumer) as txn:
        txn.append(out, transformed(second))
        txn.commit_offsets(next_offsets(second))
    check_delivery(sent, ids(read_all(backend, out))).assert_ok()
    consumer.close()
    p.close()


# -- zombies --------------------------------------------------------------------------


def test_a_second_producer_with_the_same_id_fences_the_first(backend: Backend) -> None:
    src, out = backend.topic(), backend.topic(partitions=2)
    sent = fill(backend, src, keys=4, per_key=5)
    consumer = backend.consumer(src)
    records = drain(consumer, len(sent))
    tid = f"tx-{uuid.uuid4().hex[:10]}"
    old = producer(backend, tid)
    txn = old.begin(consumer)
    txn.append(out, [Message(b"old-%d" % i, key=b"z%d" % i) for i in range(10)])
    txn.commit_offsets(next_offsets(records))
    new = producer(backend, tid)  # a restarted instance: fences `old`
    with pytest.raises(Fenced):
        txn.commit()
    txn.abort()  # never raises for a failed transaction
    with pytest.raises(Fenced), old.begin(consumer) as again:  # and it stays fenced
        again.append(out, [Message(b"old-again")])
    assert consumer.committed() == {TopicPartition(src, 0): None}
    with new.begin(consumer) as txn2:
        txn2.append(out, transformed(records))
        txn2.commit_offsets(next_offsets(records))
    check_delivery(sent, ids(read_all(backend, out))).assert_ok()  # no "old-*" among them
    assert consumer.committed() == {TopicPartition(src, 0): len(sent)}
    consumer.close()
    old.close()
    new.close()


def test_a_zombie_whose_partitions_moved_cannot_commit(backend: Backend) -> None:
    src, out = backend.topic(partitions=2), backend.topic()
    sent = fill(backend, src, keys=6, per_key=5)
    group = f"g_{uuid.uuid4().hex[:8]}"
    fast = {"session_timeout_ms": backend.fast_group.session_timeout_ms,
            "max_poll_interval_ms": backend.fast_group.max_poll_interval_ms}
    zombie = backend.consumer(src, group, **fast)
    zombie_records = drain(zombie, len(sent))
    assert len(zombie_records) == len(sent)
    zombie_producer = producer(backend)
    # the zombie hangs (stops polling); the group gives its partitions to a new member
    survivor = backend.consumer(src, group, **fast)
    survivor_producer = producer(backend)
    records = wait_assigned(survivor, 2, backend.rebalance_s + 10)
    records += drain(survivor, len(sent) - len(records))
    with survivor_producer.begin(survivor) as txn:
        txn.append(out, transformed(records))
        txn.commit_offsets(next_offsets(records))
    # the zombie wakes up and tries to commit what it processed
    # (Fenced is a CommitFailed too)
    with pytest.raises(CommitFailed), zombie_producer.begin(zombie) as ztxn:
        ztxn.append(out, [Message(b"zombie-%d" % i) for i in range(5)])
        ztxn.commit_offsets(next_offsets(zombie_records))
    ztxn.abort()
    check_delivery(sent, ids(read_all(backend, out))).assert_ok()  # once each, no zombie-*
    ends = backend.log.end_offsets(src)
    assert survivor.committed() == {TopicPartition(src, p): ends[p] for p in range(2)}
    survivor.close()
    zombie.close()
    zombie_producer.close()
    survivor_producer.close()


# -- without a consumer, and offsets not owned ---------------------------------------


def test_a_transaction_without_a_consumer_appends_only(backend: Backend) -> None:
    out = backend.topic(partitions=3)
    p = producer(backend)
    sent: list[Item] = [(b"k%d" % k, seq) for seq in range(5) for k in range(20)]
    with p.begin() as txn:
        txn.append(out, [Message(b"%d" % seq, key=key) for key, seq in sent[:50]])
        txn.append(out, [Message(b"%d" % seq, key=key) for key, seq in sent[50:]])
    records = read_all(backend, out)
    check_delivery(sent, ids(records)).assert_ok()
    assert all(r.key is not None and r.partition == partition_for(r.key, 3) for r in records)
    txn = p.begin()
    txn.append(out, [Message(b"99", key=b"never")])
    with pytest.raises(LogError, match="no consumer") as raised:
        txn.commit_offsets({TopicPartition(out, 0): 1})
    assert not isinstance(raised.value, CommitFailed)
    txn.abort()
    check_delivery(sent, ids(read_all(backend, out))).assert_ok()  # no aborted "never"
    p.close()


def test_committing_offsets_of_a_partition_not_owned_is_refused(backend: Backend) -> None:
    src, other, out = backend.topic(), backend.topic(), backend.topic()
    fill(backend, src, keys=2, per_key=3)
    fill(backend, other, keys=2, per_key=3)
    group = f"g_{uuid.uuid4().hex[:8]}"
    consumer = backend.consumer(src, group)
    records = drain(consumer, 6)
    p = producer(backend)
    foreign = TopicPartition(other, 0)  # a topic this member does not even subscribe to
    with pytest.raises(CommitFailed), p.begin(consumer) as txn:
        txn.append(out, transformed(records))
        txn.commit_offsets({**next_offsets(records), foreign: 3})
    assert peek(backend, out, window(backend)) == []
    assert consumer.committed([TopicPartition(src, 0), foreign]) == {
        TopicPartition(src, 0): None, foreign: None}
    # the member's own partitions still commit
    with p.begin(consumer) as txn:
        txn.append(out, transformed(records))
        txn.commit_offsets(next_offsets(records))
    assert consumer.committed([TopicPartition(src, 0)]) == {TopicPartition(src, 0): 6}
    assert len(read_all(backend, out)) == 6
    consumer.close()
    p.close()
