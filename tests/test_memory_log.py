"""Local-log behaviour driven by a FakeClock (the contract suite covers the shared semantics)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from eventml.clock import system_clock_ms
from eventml.log import (
    CommitFailed,
    ConsumerConfig,
    Log,
    Message,
    TopicPartition,
    TopicSpec,
    open_log,
)
from eventml.log.embedded import EmbeddedLog
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
    assert b.assignment() == frozenset()  # a still holds both: b waits for the hand-over
    a.poll(timeout_s=0)  # a releases one
    b.poll(timeout_s=0)
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
    b.poll(timeout_s=0)
    # which partition moves depends on the (random) member ids' order: range assignment
    assert events == [("assign", frozenset({TopicPartition("t", 0), TopicPartition("t", 1)})),
                      ("revoke", b.assignment())]
    assert len(b.assignment()) == 1


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


@pytest.fixture(params=["memory", "embedded"])
def local_log(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Log]:
    """Factory of a local log (memory or embedded) on a given clock."""
    if request.param == "memory":
        return lambda clock=system_clock_ms: MemoryLog(clock=clock)
    return lambda clock=system_clock_ms: EmbeddedLog(tmp_path / "data", clock=clock)


def test_compaction_never_moves_the_log_start(local_log: Callable[..., Log]) -> None:
    log = local_log()
    log.create_topic(TopicSpec("t", cleanup_policy="compact"))
    log.append("t", [Message(b"1", key=b"a"), Message(b"1", key=b"b"), Message(b"2", key=b"a")])
    c = log.consumer("g", ["t"], config=ConsumerConfig(auto_offset_reset="latest"))
    c.poll(timeout_s=0)
    c.commit({TopicPartition("t", 0): 0})
    c.close()
    assert log.enforce_retention() == 1
    assert log.start_offsets("t") == {0: 0}
    resumed = log.consumer("g", ["t"], config=ConsumerConfig(auto_offset_reset="latest"))
    assert [r.offset for r in resumed.poll(timeout_s=0)] == [1, 2]


def test_a_member_that_expired_and_returns_resumes_from_the_committed_offset(
    local_log: Callable[..., Log],
) -> None:
    clock = FakeClock()
    log = local_log(clock)
    log.create_topic(TopicSpec("t"))
    log.append("t", [Message(b"%d" % i) for i in range(8)])
    cfg = ConsumerConfig(auto_offset_reset="earliest", max_poll_interval_ms=1000)
    a = log.consumer("g", ["t"], config=cfg)
    assert [r.offset for r in a.poll(max_records=5, timeout_s=0)] == [0, 1, 2, 3, 4]
    clock.advance(1001)  # a stalls past its interval; b takes over, finishes, commits
    b = log.consumer("g", ["t"], config=cfg)
    assert [r.offset for r in b.poll(max_records=100, timeout_s=0)] == list(range(8))
    b.commit()
    b.close()
    assert a.poll(timeout_s=0) == []  # back in the group at the committed offset, 8
    assert a.position(TopicPartition("t", 0)) == 8


def test_a_topic_deleted_and_recreated_between_polls_is_read_from_its_start(
    local_log: Callable[..., Log],
) -> None:
    log = local_log()
    log.create_topic(TopicSpec("t"))
    log.append("t", [Message(b"old%d" % i) for i in range(5)])
    c = log.consumer("g", ["t"], config=ConsumerConfig(auto_offset_reset="earliest"))
    assert len(c.poll(max_records=10, timeout_s=0)) == 5
    log.delete_topic("t")
    log.create_topic(TopicSpec("t"))
    log.append("t", [Message(b"new%d" % i) for i in range(7)])
    got = c.poll(max_records=10, timeout_s=0)
    assert [r.value for r in got] == [b"new%d" % i for i in range(7)]
