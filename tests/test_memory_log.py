"""Memory-log behaviour driven by a FakeClock (the contract suite covers the shared semantics)."""

from __future__ import annotations

import pytest

from eventml.log import CommitFailed, ConsumerConfig, Message, TopicPartition, TopicSpec, open_log
from eventml.log.memory import MemoryLog
from eventml.testing import FakeClock


def test_members_expire_by_the_injected_clock() -> None:
    clock = FakeClock()
    log = MemoryLog(clock=clock)
    log.create_topic(TopicSpec("t", partitions=2))
    cfg = ConsumerConfig(max_poll_interval_ms=1000)
    a, b = log.consumer("g", ["t"], config=cfg), log.consumer("g", ["t"], config=cfg)
    a.poll(timeout_s=0)
    b.poll(timeout_s=0)
    a.poll(timeout_s=0)
    assert len(a.assignment()) == len(b.assignment()) == 1
    clock.advance(999)
    a.poll(timeout_s=0)
    assert len(a.assignment()) == 1  # b is still within its interval
    clock.advance(2)
    a.poll(timeout_s=0)
    assert a.assignment() == {TopicPartition("t", 0), TopicPartition("t", 1)}
    with pytest.raises(CommitFailed, match="moved to another member"):
        b.commit({TopicPartition("t", 0): 0})


def test_revoke_and_assign_callbacks_fire_in_poll() -> None:
    from eventml.log import RebalanceListener

    log = MemoryLog()
    log.create_topic(TopicSpec("t", partitions=2))
    events: list[tuple[str, frozenset[TopicPartition]]] = []
    listener = RebalanceListener(on_assign=lambda tps: events.append(("assign", tps)),
                                 on_revoke=lambda tps: events.append(("revoke", tps)))
    a = log.consumer("g", ["t"], listener=listener)
    a.poll(timeout_s=0)
    b = log.consumer("g", ["t"])
    b.poll(timeout_s=0)
    a.poll(timeout_s=0)
    assert events == [("assign", frozenset({TopicPartition("t", 0), TopicPartition("t", 1)})),
                      ("revoke", frozenset({TopicPartition("t", 1)}))]


def test_time_retention_uses_the_injected_clock() -> None:
    clock = FakeClock(10_000)
    log = MemoryLog(clock=clock)
    log.create_topic(TopicSpec("t", retention_ms=1000))
    log.append("t", [Message(b"a"), Message(b"b")])
    clock.advance(500)
    log.append("t", [Message(b"c")])
    clock.advance(600)
    assert log.enforce_retention() == 2
    assert log.start_offsets("t") == {0: 2}
    assert log.end_offsets("t") == {0: 3}


def test_named_memory_logs_are_shared_in_process() -> None:
    a, b = open_log("memory://shared-test"), open_log("memory://shared-test")
    assert a is b
    assert open_log("memory://") is not open_log("memory://")
