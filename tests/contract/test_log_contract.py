"""The log contract. Every test runs unchanged on memory, embedded and Kafka."""

from __future__ import annotations

import time

import pytest

from eventml.log import (
    Consumer,
    Message,
    TopicExists,
    TopicPartition,
    TopicSpec,
    UnknownTopic,
    partition_for,
)
from eventml.testing import DeliveryReport, check_delivery
from tests.contract.conftest import Backend, drain, eventually, read_all


def wait_assigned(consumer: Consumer, partitions: int, timeout_s: float = 30.0) -> None:
    """Poll (discarding nothing important: callers seek afterwards) until assigned."""
    deadline = time.monotonic() + timeout_s
    while len(consumer.assignment()) < partitions:
        assert time.monotonic() < deadline, f"never assigned {partitions} partitions"
        consumer.poll(max_records=1, timeout_s=0.1)


# -- topics -------------------------------------------------------------------


def test_topic_lifecycle(backend: Backend) -> None:
    log = backend.log
    name = backend.topic(partitions=3)
    assert name in log.list_topics()
    d = log.describe_topic(name)
    assert d.spec.partitions == 3
    assert dict(d.end_offsets) == {0: 0, 1: 0, 2: 0}
    with pytest.raises(TopicExists):
        log.create_topic(TopicSpec(name, 3))
    log.delete_topic(name)
    eventually(lambda: name not in log.list_topics(), 10, "topic deleted")
    with pytest.raises(UnknownTopic):
        log.append(name, [Message(b"x")])


def test_create_exist_ok_is_idempotent(backend: Backend) -> None:
    name = backend.topic(partitions=2)
    backend.log.create_topic(TopicSpec(name, 2), exist_ok=True)
    assert backend.log.describe_topic(name).spec.partitions == 2


# -- append -------------------------------------------------------------------


def test_append_returns_contiguous_offsets_in_order(backend: Backend) -> None:
    name = backend.topic(partitions=2)
    first = backend.log.append(name, [Message(b"%d" % i, partition=1) for i in range(10)])
    second = backend.log.append(name, [Message(b"%d" % i, partition=1) for i in range(5)])
    assert [m.offset for m in first + second] == list(range(15))
    assert {m.partition for m in first + second} == {1}
    assert backend.log.end_offsets(name) == {0: 0, 1: 15}


def test_keyed_routing_matches_kafka_murmur2_for_10000_keys(backend: Backend) -> None:
    name = backend.topic(partitions=6)
    keys = [f"card-{i}".encode() for i in range(10_000)]
    meta = backend.log.append(name, [Message(b"v", key=k) for k in keys])
    wrong = [(k, m.partition) for k, m in zip(keys, meta, strict=True)
             if m.partition != partition_for(k, 6)]
    assert not wrong, f"{len(wrong)} keys routed off murmur2, e.g. {wrong[:3]}"


def test_bad_batch_appends_nothing(backend: Backend) -> None:
    name = backend.topic(partitions=2)
    with pytest.raises(ValueError):
        backend.log.append(name, [Message(b"ok", partition=0), Message(b"bad", partition=7)])
    assert backend.log.end_offsets(name) == {0: 0, 1: 0}


def test_records_round_trip_key_value_headers_timestamp(backend: Backend) -> None:
    name = backend.topic()
    headers = (("ce_id", b"abc"), ("bin", bytes(range(256))), ("empty", b""))
    backend.log.append(name, [
        Message(b"value", key=b"k", headers=headers, timestamp_ms=1_700_000_000_123),
        Message(None, key=b"k"),
    ])
    records = drain(backend.consumer(name), 2)
    assert [(r.key, r.value) for r in records] == [(b"k", b"value"), (b"k", None)]
    assert records[0].headers == headers
    assert records[0].timestamp_ms == 1_700_000_000_123
    assert records[0].topic == name and records[0].offset == 0


# -- consuming ------------------------------------------------------------------


def send_keyed_sequences(
    backend: Backend, keys: int = 40, per_key: int = 50, timeout_s: float = 30.0
) -> DeliveryReport:
    """Append ``per_key`` numbered records for each of ``keys`` keys, interleaved in batches
    of 100, read them all back with a fresh group, and count every one."""
    name = backend.topic(partitions=4)
    sent: list[tuple[bytes, int]] = []
    batch: list[Message] = []
    for seq in range(per_key):
        for k in range(keys):
            key = b"key-%d" % k
            batch.append(Message(b"%d" % seq, key=key))
            sent.append((key, seq))
            if len(batch) == 100:
                backend.log.append(name, batch)
                batch = []
    if batch:
        backend.log.append(name, batch)
    consumer = backend.consumer(name)
    records = drain(consumer, keys * per_key, timeout_s=timeout_s)
    records += consumer.poll(max_records=10, timeout_s=0.3)  # and nothing more
    consumer.close()
    return check_delivery(sent, [(r.key, int(r.value or b"-1")) for r in records])


def test_per_key_order_and_exactly_every_record(backend: Backend) -> None:
    send_keyed_sequences(backend).assert_ok()


def test_commit_then_new_member_resumes_from_committed(backend: Backend) -> None:
    name = backend.topic()
    backend.log.append(name, [Message(b"%d" % i) for i in range(100)])
    group = "resume"
    first = backend.consumer(name, group)
    got = drain(first, 30)
    first.commit({TopicPartition(name, 0): got[29].offset + 1})
    assert first.committed([TopicPartition(name, 0)]) == {TopicPartition(name, 0): 30}
    first.close()
    second = backend.consumer(name, group)
    rest = drain(second, 70)
    assert [r.offset for r in rest] == list(range(30, 100))
    second.commit()
    assert second.committed() == {TopicPartition(name, 0): 100}
    assert second.lag() == {TopicPartition(name, 0): 0}
    second.close()


def test_committed_offsets_are_read_without_joining_the_group(backend: Backend) -> None:
    name = backend.topic(partitions=2)
    backend.log.append(name, [Message(b"x", partition=p) for p in (0, 1) for _ in range(5)])
    tps = [TopicPartition(name, 0), TopicPartition(name, 1)]
    member = backend.consumer(name, "watched")
    wait_assigned(member, 2)
    member.commit({tps[0]: 3})
    for _ in range(3):  # asking again and again moves nothing
        assert backend.log.committed_offsets("watched", tps) == {tps[0]: 3, tps[1]: None}
    assert member.assignment() == set(tps)  # the member still holds both partitions
    assert backend.log.committed_offsets("never-committed", tps) == {tps[0]: None, tps[1]: None}
    assert backend.log.committed_offsets("watched", []) == {}
    member.close()


def test_lag_is_end_minus_committed(backend: Backend) -> None:
    name = backend.topic()
    backend.log.append(name, [Message(b"x") for _ in range(10)])
    c = backend.consumer(name)
    drain(c, 10)
    c.commit({TopicPartition(name, 0): 4})
    assert c.lag() == {TopicPartition(name, 0): 6}
    c.close()


def test_latest_reset_skips_history(backend: Backend) -> None:
    name = backend.topic()
    backend.log.append(name, [Message(b"old") for _ in range(5)])
    c = backend.consumer(name, auto_offset_reset="latest")
    wait_assigned(c, 1)
    backend.log.append(name, [Message(b"new")])
    assert [r.value for r in drain(c, 1)] == [b"new"]
    c.close()


def test_seek_offset_beginning_end_and_time(backend: Backend) -> None:
    name = backend.topic()
    tp = TopicPartition(name, 0)
    base = 1_700_000_000_000
    backend.log.append(name, [Message(b"%d" % i, timestamp_ms=base + 1000 * i) for i in range(20)])
    c = backend.consumer(name)
    wait_assigned(c, 1)
    c.seek(tp, 7)
    assert drain(c, 1)[0].offset == 7
    c.seek_to_time(base + 12_500)
    assert drain(c, 1)[0].offset == 13
    c.seek_to_beginning()
    assert drain(c, 1)[0].offset == 0
    c.seek_to_end()
    assert c.position(tp) == 20
    assert c.poll(max_records=10, timeout_s=0.3) == []
    assert backend.log.offsets_for_time(name, base + 5000) == {0: 5}
    assert backend.log.offsets_for_time(name, base + 10**9) == {0: 20}
    c.close()


# -- groups ---------------------------------------------------------------------


def _poll_both(a: Consumer, b: Consumer, until: float) -> None:
    a.poll(max_records=1, timeout_s=0.05)
    b.poll(max_records=1, timeout_s=0.05)


def test_group_members_get_disjoint_partitions_covering_all(backend: Backend) -> None:
    name = backend.topic(partitions=4)
    a = backend.consumer(name, "split", **_fast(backend))
    b = backend.consumer(name, "split", **_fast(backend))
    everything = {TopicPartition(name, p) for p in range(4)}

    def balanced() -> bool:
        _poll_both(a, b, 0)
        return (
            not a.assignment() & b.assignment()
            and a.assignment() | b.assignment() == everything
            and bool(a.assignment()) and bool(b.assignment())
        )

    eventually(balanced, backend.rebalance_s, "two members splitting four partitions", 0)
    a.close()
    b.close()


def test_rebalance_gives_a_lost_members_partitions_to_the_survivor(backend: Backend) -> None:
    name = backend.topic(partitions=4)
    survivor = backend.consumer(name, "loss", **_fast(backend))
    lost = backend.consumer(name, "loss", **_fast(backend))
    eventually(lambda: (_poll_both(survivor, lost, 0), bool(survivor.assignment())
                        and bool(lost.assignment()))[1],
               backend.rebalance_s, "both members assigned", 0)
    taken = lost.assignment()
    # `lost` stops polling (a hung or dead worker); the survivor must take over.
    everything = frozenset(TopicPartition(name, p) for p in range(4))
    deadline = time.monotonic() + backend.rebalance_s + 10
    while survivor.assignment() != everything:
        assert time.monotonic() < deadline, "survivor never took the lost member's partitions"
        survivor.poll(max_records=100, timeout_s=0.2)
    # records appended to the lost member's partitions now reach the survivor
    lost_partition = min(taken).partition
    backend.log.append(name, [Message(b"after", partition=lost_partition)])
    got = []
    deadline = time.monotonic() + 20
    while not any(r.value == b"after" for r in got) and time.monotonic() < deadline:
        got.extend(survivor.poll(max_records=100, timeout_s=0.2))
    assert any(r.value == b"after" and r.partition == lost_partition for r in got)
    survivor.close()
    lost.close()


def _fast(backend: Backend) -> dict[str, object]:
    cfg = backend.fast_group
    return {"session_timeout_ms": cfg.session_timeout_ms,
            "max_poll_interval_ms": cfg.max_poll_interval_ms}


# -- retention ---------------------------------------------------------------------


def test_time_retention_deletes_old_records(backend: Backend) -> None:
    name = backend.topic(retention_ms=60_000)
    now = int(time.time() * 1000)
    backend.log.append(name, [Message(b"old", timestamp_ms=now - 86_400_000) for _ in range(50)])
    time.sleep(backend.roll_s)
    backend.log.append(name, [Message(b"new", timestamp_ms=now) for _ in range(10)])

    def trimmed() -> bool:
        backend.log.enforce_retention()
        return backend.log.start_offsets(name)[0] == 50

    eventually(trimmed, backend.settle_s + 2, "old records deleted by time retention", 0.5)
    assert [r.value for r in drain(backend.consumer(name), 10)] == [b"new"] * 10


def test_size_retention_keeps_the_newest_bytes(backend: Backend) -> None:
    name = backend.topic(retention_bytes=20_000)
    for _ in range(10):
        backend.log.append(name, [Message(b"x" * 100) for _ in range(100)])
        time.sleep(backend.roll_s)

    def trimmed() -> bool:
        backend.log.enforce_retention()
        return backend.log.start_offsets(name)[0] > 0

    eventually(trimmed, backend.settle_s + 2, "oldest records deleted by size retention", 0.5)
    assert backend.log.end_offsets(name)[0] == 1000


def test_compaction_keeps_latest_value_per_key(backend: Backend) -> None:
    name = backend.topic(cleanup_policy="compact")
    for round_ in range(10):
        backend.log.append(name, [Message(b"%d" % round_, key=b"k%d" % k) for k in range(20)])
        time.sleep(backend.roll_s)

    def compacted() -> bool:
        backend.log.enforce_retention()
        end = backend.log.end_offsets(name)[0]
        return len(read_all(backend, name)) < end

    eventually(compacted, backend.settle_s + 2, "compaction removed superseded records", 1.0)
    latest: dict[bytes | None, bytes | None] = {}
    for r in read_all(backend, name):
        latest[r.key] = r.value
    assert latest == {b"k%d" % k: b"9" for k in range(20)}


def test_on_revoke_at_close_can_still_commit(backend: Backend) -> None:
    from eventml.log import ConsumerConfig, RebalanceListener

    name = backend.topic()
    backend.log.append(name, [Message(b"%d" % i) for i in range(5)])
    holder: list[Consumer] = []
    listener = RebalanceListener(on_revoke=lambda tps: holder[0].commit())
    c = backend.log.consumer("revoke-commit", [name], listener=listener,
                             config=ConsumerConfig(auto_offset_reset="earliest"))
    holder.append(c)
    assert len(drain(c, 5)) == 5
    c.close()
    again = backend.consumer(name, "revoke-commit")
    wait_assigned(again, 1)
    assert again.position(TopicPartition(name, 0)) == 5
    again.close()
