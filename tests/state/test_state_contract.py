"""The state-store contract on every backend (see tests/state/conftest.py for the list)."""

from __future__ import annotations

import uuid

import pytest

from eventml.log import CommitFailed, Fenced, TopicPartition
from eventml.state import StateError
from tests.state.conftest import Env, wait_for


def _tp(partition: int = 0) -> TopicPartition:
    return TopicPartition(f"in_{uuid.uuid4().hex[:8]}", partition)


def test_get_put_delete(env: Env) -> None:
    store = env.open(env.spec(), _tp())
    assert store.get("a") is None and store.get("a", 7) == 7 and "a" not in store
    store.put("a", {"n": 1})
    store.put("none", None)
    assert store.get("a") == {"n": 1}
    assert "none" in store and store.get("none", 7) is None
    store.delete("a")
    assert store.get("a", "gone") == "gone" and "a" not in store
    store.delete("never-written")  # deleting a missing key is fine
    assert "never-written" not in store
    with pytest.raises(TypeError):
        store.put(b"bytes", 1)  # type: ignore[arg-type]


def test_range_is_ascending_and_half_open_over_committed_and_staged_keys(env: Env) -> None:
    spec, tp = env.spec(), _tp()
    store = env.open(spec, tp)
    for k in ["m", "c", "x", "a", "k"]:
        store.put(k, k.upper())
    env.commit(store)
    store.put("b", "B")  # new, uncommitted
    store.put("k", "K2")  # overwritten, uncommitted
    store.delete("x")  # deleted, uncommitted
    store.put("z", "Z")
    assert list(store.range()) == [
        ("a", "A"), ("b", "B"), ("c", "C"), ("k", "K2"), ("m", "M"), ("z", "Z"),
    ]
    assert [k for k, _ in store.range("b", "m")] == ["b", "c", "k"]  # end excluded
    assert [k for k, _ in store.range(start="l")] == ["m", "z"]
    assert [k for k, _ in store.range(end="c")] == ["a", "b"]
    assert list(store.range("n", "p")) == []
    env.commit(store, source_offset=2)
    assert [k for k, _ in store.range()] == ["a", "b", "c", "k", "m", "z"]
    reopened = env.open(spec, tp, 2, fresh=True)
    assert list(reopened.range()) == list(store.range())


def test_reads_see_staged_writes_before_and_after_stage(env: Env) -> None:
    store = env.open(env.spec(), _tp())
    store.put("k", 1)
    assert store.get("k") == 1 and store.dirty
    txn = env.begin()
    store.stage(txn, 1)
    assert store.get("k") == 1 and list(store.range()) == [("k", 1)]
    txn.commit()
    store.commit()
    assert store.get("k") == 1 and not store.dirty


def test_commit_makes_writes_survive_a_reopen(env: Env) -> None:
    spec, tp = env.spec(), _tp(1)
    store = env.open(spec, tp)
    value = {"amount": 12.5, "cards": ("4111", "5500"), "seen": {1, 2}}
    store.put("user-1", value)
    store.put("user-2", [1, 2, 3])
    store.put("ünïcode-ключ", "ok")
    env.commit(store, source_offset=5)
    store.put("user-2", "changed")
    store.delete("user-1")
    env.commit(store, source_offset=9)
    reopened = env.open(spec, tp, 9, fresh=True)
    assert reopened.get("user-1") is None
    assert reopened.get("user-2") == "changed"
    assert reopened.get("ünïcode-ключ") == "ok"
    assert not reopened.dirty
    other_partition = env.open(spec, TopicPartition(tp.topic, 0), 9, fresh=True)
    assert list(other_partition.range()) == []


def test_rollback_forgets_writes_since_the_last_commit(env: Env) -> None:
    spec, tp = env.spec(), _tp()
    store = env.open(spec, tp)
    store.put("k", "committed")
    env.commit(store)
    store.put("k", "uncommitted")
    store.put("new", 1)
    store.delete("k")
    txn = env.begin()
    store.stage(txn, 2)
    txn.abort()
    store.rollback()
    assert store.get("k") == "committed" and "new" not in store and not store.dirty
    assert list(store.range()) == [("k", "committed")]
    reopened = env.open(spec, tp, 2, fresh=True)
    assert list(reopened.range()) == [("k", "committed")]


def test_a_fenced_transaction_leaves_committed_state_untouched(env: Env) -> None:
    spec, tp = env.spec(), _tp()
    store = env.open(spec, tp)
    store.put("k", "v1")
    env.commit(store, source_offset=1)
    store.put("k", "v2")
    store.put("extra", 1)
    txn = env.begin()
    store.stage(txn, 2)
    env.log.transactional_producer(env.producer.transactional_id).close()  # a newer instance
    with pytest.raises(Fenced):
        txn.commit()
    store.rollback()
    assert store.get("k") == "v1" and "extra" not in store
    reopened = env.open(spec, tp, 2, fresh=True)
    assert list(reopened.range()) == [("k", "v1")]


def test_a_commit_refused_because_the_partition_moved_leaves_state_untouched(env: Env) -> None:
    spec, topic = env.spec(), env.input_topic()
    tp = TopicPartition(topic, 0)
    group = f"g_{uuid.uuid4().hex[:8]}"
    a = env.consumer(topic, group)
    wait_for(a, tp)
    store = env.open(spec, tp, a.committed([tp])[tp])
    store.put("k", "v1")
    env.commit(store, source_offset=1, consumer=a)
    store.put("k", "v2")
    txn = env.begin(a)
    store.stage(txn, 2)
    txn.commit_offsets({tp: 2})
    b = env.consumer(topic, group)
    if env.clock is not None:
        env.clock.advance(5_000)  # a stopped polling: the group expires it
    wait_for(b, tp, timeout_s=40.0)
    with pytest.raises(CommitFailed):
        txn.commit()
    store.rollback()
    assert store.get("k") == "v1"
    committed = b.committed([tp])[tp]
    assert committed == 1
    assert env.open(spec, tp, committed, fresh=True).get("k") == "v1"
    b.close()
    a.close()


def test_a_partition_moving_to_another_consumer_finds_its_state(env: Env) -> None:
    spec, topic = env.spec(), env.input_topic()
    tp = TopicPartition(topic, 1)
    group = f"g_{uuid.uuid4().hex[:8]}"
    a = env.consumer(topic, group)
    wait_for(a, tp)
    store = env.open(spec, tp, a.committed([tp])[tp])
    for i in range(50):
        store.put(f"k{i:02d}", i, time_ms=1000 + i)
    env.commit(store, source_offset=3, consumer=a)
    a.close()  # hands its partitions over
    b = env.consumer(topic, group)
    wait_for(b, tp)
    committed = b.committed([tp])[tp]
    assert committed == 3
    moved = env.backend.open(spec, tp, committed)  # same process, another backend object
    assert list(moved.range()) == [(f"k{i:02d}", i) for i in range(50)]
    b.close()


def test_ttl_expires_keys_in_event_time(env: Env) -> None:
    spec, tp = env.spec(ttl_ms=1000), _tp()
    store = env.open(spec, tp)
    assert store.expire(10**12) == 0  # nothing yet
    store.put("early", 1, time_ms=0)
    store.put("late", 2, time_ms=500)
    store.put("timeless", 3)
    env.commit(store)
    store.put("pending", 4, time_ms=100)  # uncommitted writes expire too
    assert store.expire(999) == 0
    assert store.expire(1000) == 1  # time + ttl <= stream time
    assert "early" not in store and "late" in store and "pending" in store
    assert store.expire(1100) == 1 and "pending" not in store
    assert store.dirty
    env.commit(store, source_offset=2)
    reopened = env.open(spec, tp, 2, fresh=True)
    assert sorted(k for k, _ in reopened.range()) == ["late", "timeless"]
    reopened.put("late", 22, time_ms=2000)  # a new write restarts its TTL
    assert reopened.expire(1500) == 0
    env.commit(reopened, source_offset=3)
    assert reopened.expire(2999) == 0 and reopened.expire(3000) == 1
    assert list(reopened.range()) == [("timeless", 3)]
    reopened.rollback()  # the expiry was never committed: the key comes back...
    assert reopened.get("late") == 22
    assert reopened.expire(3000) == 1  # ...and expires again
    env.commit(reopened, source_offset=4)
    assert sorted(k for k, _ in env.open(spec, tp, 4, fresh=True).range()) == ["timeless"]


def test_stores_without_ttl_never_expire(env: Env) -> None:
    store = env.open(env.spec(), _tp())
    store.put("k", 1, time_ms=0)
    assert store.expire(10**15) == 0 and store.get("k") == 1


def test_writes_after_stage_belong_to_the_next_batch(env: Env) -> None:
    spec, tp = env.spec(), _tp()
    store = env.open(spec, tp)
    store.put("a", 1)
    txn = env.begin()
    store.stage(txn, 1)
    store.put("b", 2)  # after stage
    store.put("a", 3)  # overwrites a staged key
    txn.commit()
    store.commit()
    assert store.dirty and store.get("a") == 3 and store.get("b") == 2
    assert dict(env.open(spec, tp, 1, fresh=True).range()) == {"a": 1}
    env.commit(store, source_offset=2)
    assert dict(env.open(spec, tp, 2, fresh=True).range()) == {"a": 3, "b": 2}


def test_commit_without_stage_is_refused(env: Env) -> None:
    store = env.open(env.spec(), _tp())
    store.commit()  # nothing written: nothing to do
    store.put("k", 1)
    with pytest.raises(StateError, match="stage"):
        store.commit()


def test_unpicklable_values_fail_at_stage(env: Env) -> None:
    store = env.open(env.spec(), _tp())
    store.put("k", lambda: None)
    txn = env.begin()
    with pytest.raises(TypeError, match="picklable"):
        store.stage(txn, 1)
    txn.abort()
    store.rollback()


def test_stores_are_separate_by_name_app_topic_and_partition(env: Env) -> None:
    spec1, spec2 = env.spec(), env.spec()
    tp = _tp()
    s1, s2 = env.open(spec1, tp), env.open(spec2, tp)
    s3 = env.open(spec1, TopicPartition(tp.topic, 1))
    s1.put("k", 1)
    s2.put("k", 2)
    s3.put("k", 3)
    env.commit(s1, s2, s3)
    assert env.open(spec1, tp, 1, fresh=True).get("k") == 1
    assert env.open(spec2, tp, 1, fresh=True).get("k") == 2
    assert env.open(spec1, TopicPartition(tp.topic, 1), 1, fresh=True).get("k") == 3


def test_restore_of_many_keys(env: Env) -> None:
    """More keys than one restore batch (10,000), overwritten and deleted across batches."""
    spec, tp = env.spec(), _tp()
    store = env.open(spec, tp)
    n = 12_000
    for i in range(n):
        store.put(f"key-{i:06d}", i)
    env.commit(store, source_offset=1)
    for i in range(0, n, 3):
        store.put(f"key-{i:06d}", -i)
    for i in range(1, n, 3):
        store.delete(f"key-{i:06d}")
    env.commit(store, source_offset=2)
    reopened = env.open(spec, tp, 2, fresh=True)
    expected = {f"key-{i:06d}": (-i if i % 3 == 0 else i) for i in range(n) if i % 3 != 1}
    assert dict(reopened.range()) == expected
    assert len(list(reopened.range())) == len(expected)


def test_drop_empties_the_store_on_every_partition(env: Env) -> None:
    spec, other, tp = env.spec(), env.spec(), _tp()
    stores = [env.open(spec, tp), env.open(spec, TopicPartition(tp.topic, 1)), env.open(other, tp)]
    for store in stores:
        store.put("k", 1)
    env.commit(*stores)
    env.backend.drop(spec)
    for topic in env.backend.required_topics(spec, 2):  # a changelog starts over
        env.log.create_topic(topic, exist_ok=True)
    assert env.open(spec, tp, 1, fresh=True).get("k") is None
    assert env.open(spec, TopicPartition(tp.topic, 1), 1, fresh=True).get("k") is None
    assert env.open(other, tp, 1, fresh=True).get("k") == 1
