"""What only the changelog backend does: its topic, its records, restore that skips uncommitted writes."""

from __future__ import annotations

import pickle
import uuid

import pytest

from eventml.log import Message, TopicPartition, TopicSpec
from eventml.state import ChangelogStateBackend, StateError, StoreSpec
from eventml.state._codec import (
    SRC_OFFSET_HEADER,
    TIME_HEADER,
    Replay,
    Row,
    changelog_messages,
)
from eventml.state._readers import read_by_group, read_local
from eventml.testing import MemoryLog
from tests.state.conftest import Env


def _tp(partition: int = 0) -> TopicPartition:
    return TopicPartition(f"in_{uuid.uuid4().hex[:8]}", partition)


def test_restore_skips_writes_whose_source_offset_is_past_the_committed_offset(
    changelog_env: Env,
) -> None:
    env = changelog_env
    spec, tp = env.spec(), _tp()
    store = env.open(spec, tp)
    store.put("k", "committed")
    store.put("gone", 1)
    env.commit(store, source_offset=5)
    # at-least-once: the batch's changelog records landed, its input offsets never did
    store.put("k", "uncommitted")
    store.put("new", 1)
    store.delete("gone")
    env.commit(store, source_offset=9)
    assert dict(env.open(spec, tp, 5, fresh=True).range()) == {"k": "committed", "gone": 1}
    assert dict(env.open(spec, tp, 8, fresh=True).range()) == {"k": "committed", "gone": 1}
    assert dict(env.open(spec, tp, 9, fresh=True).range()) == {"k": "uncommitted", "new": 1}
    # no committed offset known (e.g. expired): keep every write rather than drop state
    assert dict(env.open(spec, tp, None, fresh=True).range()) == {"k": "uncommitted", "new": 1}


def test_required_topics_is_one_compacted_changelog_per_store() -> None:
    backend = ChangelogStateBackend(MemoryLog(), topic_config={"segment.ms": "60000"})
    spec = StoreSpec("fraud", "card-totals")
    (topic,) = backend.required_topics(spec, 6)
    assert topic == TopicSpec(
        "fraud-card-totals-changelog", 6, cleanup_policy="compact", config={"segment.ms": "60000"}
    )


def test_changelog_records_carry_key_pickled_value_and_source_offset() -> None:
    log = MemoryLog()
    backend = ChangelogStateBackend(log)
    spec = StoreSpec("app", "s")
    for topic in backend.required_topics(spec, 3):
        log.create_topic(topic)
    store = backend.open(spec, TopicPartition("input", 2), None)
    store.put("plain", {"a": 1})
    store.put("timed", 2, time_ms=1234)
    store.put("doomed", 3)
    producer = log.transactional_producer("t")
    txn = producer.begin()
    store.stage(txn, 41)
    txn.commit()
    store.commit()
    store.delete("doomed")
    txn = producer.begin()
    store.stage(txn, 42)
    txn.commit()
    store.commit()
    assert log.end_offsets(spec.changelog_topic) == {0: 0, 1: 0, 2: 4}  # the input's partition
    records = log.read(TopicPartition(spec.changelog_topic, 2), 0, 10)
    assert [(r.key, r.headers) for r in records] == [
        (b"plain", ((SRC_OFFSET_HEADER, b"41"),)),
        (b"timed", ((SRC_OFFSET_HEADER, b"41"), (TIME_HEADER, b"1234"))),
        (b"doomed", ((SRC_OFFSET_HEADER, b"41"),)),
        (b"doomed", ((SRC_OFFSET_HEADER, b"42"),)),
    ]
    assert pickle.loads(records[0].value or b"") == {"a": 1}
    assert records[3].value is None  # a tombstone: compaction drops the key


def test_open_without_the_changelog_topic_says_what_to_do() -> None:
    backend = ChangelogStateBackend(MemoryLog())
    with pytest.raises(StateError, match="required_topics"):
        backend.open(StoreSpec("app", "s"), TopicPartition("input", 0), None)


def test_open_of_a_partition_the_changelog_lacks_is_refused() -> None:
    log = MemoryLog()
    backend = ChangelogStateBackend(log)
    spec = StoreSpec("app", "s")
    for topic in backend.required_topics(spec, 2):
        log.create_topic(topic)
    with pytest.raises(StateError, match="2 partition"):
        backend.open(spec, TopicPartition("input", 2), None)


def test_replay_keeps_the_last_committed_write_per_key() -> None:
    writes = {"a": (1, None), "b": (2, 50), "c": None}
    rows = [(m.key, m.value, m.headers) for m in changelog_messages(writes, 0, 10)]
    later = [(m.key, m.value, m.headers) for m in changelog_messages({"a": None}, 0, 11)]
    foreign: list[Row] = [(b"x", pickle.dumps("no header"), ())]  # records without src offset always count
    replay = Replay(10)
    replay.feed(rows + later + foreign)
    assert replay.values == {"a": 1, "b": 2, "x": "no header"}
    assert replay.times == {"b": 50}
    assert (replay.rows, replay.skipped) == (5, 1)


def test_the_group_reader_for_other_logs_reads_what_the_direct_reader_reads() -> None:
    log = MemoryLog()
    log.create_topic(TopicSpec("cl", 3, cleanup_policy="compact"))
    for batch in range(3):
        log.append(
            "cl",
            [Message(b"v%d" % i, b"k%d" % i, (), None, i % 3) for i in range(batch * 9000, (batch + 1) * 9000)],
        )
    tp = TopicPartition("cl", 1)
    direct = [row for batch in read_local(log, tp, 10.0) for row in batch]
    by_group = [row for batch in read_by_group(log, tp, 10.0) for row in batch]
    assert len(direct) == 9000
    assert by_group == direct
    assert {k for k, _, _ in direct} == {b"k%d" % i for i in range(27000) if i % 3 == 1}
