"""Embedded-log behaviour beyond the contract suite: files, pragmas, encodings, processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventml.log import (
    BrokerUnavailable,
    CommitFailed,
    ConsumerConfig,
    LogError,
    Message,
    Record,
    TopicPartition,
    TopicSpec,
    open_log,
)
from eventml.log.embedded import EmbeddedLog
from eventml.log.embedded.batch import _place_each, place_batch
from eventml.log.embedded.groups import current_process, process_alive
from eventml.log.embedded.headers import decode_headers, encode_headers, header_size
from eventml.log.memory import MemoryLog
from eventml.testing import FakeClock

EARLIEST = ConsumerConfig(auto_offset_reset="earliest")


def _topic() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def _read_everything(log: EmbeddedLog | MemoryLog, topic: str) -> list[Record]:
    out: list[Record] = []
    for p, start in sorted(log.start_offsets(topic).items()):
        offset = start
        while batch := log.read(TopicPartition(topic, p), offset, 1000):
            out.extend(batch)
            offset = batch[-1].offset + 1
    return out


def _eventually(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until ``check()`` held; fails after ``timeout_s``."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - t0


@pytest.fixture(scope="module")
def shared_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedLog]:
    """One log for the property tests (each example uses a topic of its own)."""
    log = EmbeddedLog(tmp_path_factory.mktemp("shared"), retention_interval_s=0)
    yield log
    log.close()


# -- files, durability, URL -------------------------------------------------------------


def test_everything_survives_close_and_reopen(tmp_path: Path) -> None:
    log = open_log(f"embedded://{tmp_path}/data")
    log.create_topic(TopicSpec("t", 2, retention_ms=1000, config={"a": "b"}))
    log.append("t", [Message(b"v1", b"k", (("h", b"\x00\xff"),), 5), Message(b"v2", partition=1)])
    consumer = log.consumer("g", ["t"], config=EARLIEST)
    assert len(consumer.poll(timeout_s=1)) == 2
    consumer.commit()
    consumer.close()
    log.close()
    with pytest.raises(LogError, match="closed"):
        log.end_offsets("t")

    log = open_log(f"embedded://{tmp_path}/data")
    assert log.list_topics() == ["t"]
    spec = log.describe_topic("t").spec
    assert spec == TopicSpec("t", 2, retention_ms=1000, config={"a": "b"})
    records = _read_everything(log, "t")  # type: ignore[arg-type]
    assert [(r.value, r.key, r.headers) for r in records if r.key] == [
        (b"v1", b"k", (("h", b"\x00\xff"),))
    ]
    assert log.consumer("g", ["t"]).committed([TopicPartition("t", 0), TopicPartition("t", 1)]) == {
        TopicPartition("t", 0): 1,
        TopicPartition("t", 1): 1,
    }
    log.close()


def test_offsets_are_never_reused_after_retention_empties_a_partition(tmp_path: Path) -> None:
    clock = FakeClock()
    log = EmbeddedLog(tmp_path, clock=clock)
    log.create_topic(TopicSpec("t", retention_ms=100))
    log.append("t", [Message(b"a"), Message(b"b")])
    clock.advance(1000)
    assert log.enforce_retention() == 2
    assert log.start_offsets("t") == log.end_offsets("t") == {0: 2}
    log.close()
    log = EmbeddedLog(tmp_path, clock=clock)
    assert log.append("t", [Message(b"c")])[0].offset == 2
    assert log.start_offsets("t") == {0: 2}
    log.close()


@pytest.mark.parametrize(("durability", "synchronous"), [("fsync", 2), ("fast", 1)])
def test_durability_sets_synchronous_in_wal_mode(
    tmp_path: Path, durability: str, synchronous: int
) -> None:
    log = open_log(f"embedded://{tmp_path}?durability={durability}")
    assert isinstance(log, EmbeddedLog)
    conn = log._conn()
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == synchronous
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    seen: list[int] = []  # every thread's connection gets the same setting
    thread = threading.Thread(
        target=lambda: seen.append(log._conn().execute("PRAGMA synchronous").fetchone()[0])
    )
    thread.start()
    thread.join()
    assert seen == [synchronous]
    log.close()


def test_default_durability_is_fsync(tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path) as log:
        assert isinstance(log, EmbeddedLog)
        assert log._conn().execute("PRAGMA synchronous").fetchone()[0] == 2


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("embedded://", "names no data directory"),
        ("embedded://{tmp}?durability=maybe", "durability must be"),
        ("embedded://{tmp}?durabilty=fast", "unknown option"),
        ("embedded://{tmp}?busy_timeout_s=soon", "give seconds as a number"),
    ],
)
def test_bad_urls_say_what_to_fix(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(LogError, match=message):
        open_log(url.format(tmp=tmp_path))


def test_a_file_where_the_directory_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(LogError, match="not a directory"):
        EmbeddedLog(tmp_path / "f")


def test_writer_lock_timeout_is_broker_unavailable(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path, busy_timeout_s=0.05)
    log.create_topic(TopicSpec("t"))
    blocker = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BrokerUnavailable, match="locked"):
            log.append("t", [Message(b"x")])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert log.append("t", [Message(b"x")])[0].offset == 0
    log.close()


def test_threads_append_concurrently_without_losing_or_reusing_offsets(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path)
    log.create_topic(TopicSpec("t", 3))
    results: list[list[tuple[int, int]]] = []

    def work(n: int) -> None:
        mine = []
        for _ in range(20):
            mine += [(m.partition, m.offset) for m in log.append("t", [Message(b"%d" % n)] * 50)]
        results.append(mine)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    placed = [x for r in results for x in r]
    assert len(placed) == len(set(placed)) == 4000
    ends = log.end_offsets("t")
    assert sorted(placed) == sorted((p, o) for p, end in ends.items() for o in range(end))
    log.close()


# -- encodings (pure cores and through the file) -------------------------------------------

header_lists = st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=64)), max_size=6).map(
    tuple
)


@given(header_lists)
def test_header_codec_round_trips(headers: tuple[tuple[str, bytes], ...]) -> None:
    blob = encode_headers(headers)
    assert (blob is None) == (not headers)
    assert decode_headers(blob) == headers
    assert header_size(blob) == sum(len(n) + len(v) for n, v in headers)


def test_header_codec_keeps_lone_surrogates_and_rejects_text_values() -> None:
    headers = (("\ud800x", b"v"), ("", b""))
    assert decode_headers(encode_headers(headers)) == headers
    with pytest.raises(TypeError, match="must be bytes"):
        encode_headers((("h", "text"),))  # type: ignore[arg-type]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(header_lists, st.booleans()), min_size=1, max_size=30))
def test_headers_round_trip_through_the_log(
    shared_log: EmbeddedLog, batch: list[tuple[tuple[tuple[str, bytes], ...], bool]]
) -> None:
    topic = _topic()
    shared_log.create_topic(TopicSpec(topic, 2))
    messages = [
        Message(b"%d" % i, b"k%d" % i if keyed else None, headers)
        for i, (headers, keyed) in enumerate(batch)
    ]
    shared_log.append(topic, messages)
    got = {r.value: r.headers for r in _read_everything(shared_log, topic)}
    assert got == {m.value: m.headers for m in messages}
    # reads from every offset: past the last record with headers too
    for p in (0, 1):
        end = shared_log.end_offsets(topic)[p]
        for offset in range(end + 1):
            assert [r.offset for r in shared_log.read(TopicPartition(topic, p), offset, 3)] == list(
                range(offset, min(end, offset + 3))
            )


message_strategy = st.builds(
    Message,
    value=st.binary(max_size=8),
    key=st.one_of(st.none(), st.binary(max_size=4)),
    headers=st.one_of(st.just(()), header_lists),
    timestamp_ms=st.one_of(st.none(), st.integers(0, 2**40)),
    partition=st.one_of(st.none(), st.integers(0, 3)),
)


@given(
    st.one_of(
        st.lists(message_strategy, max_size=40),
        st.lists(st.builds(Message, st.binary(max_size=4), st.binary(max_size=4)), max_size=40),
        st.lists(st.builds(Message, st.binary(max_size=4)), max_size=40),
    ),
    st.lists(st.integers(0, 1000), min_size=4, max_size=4),
    st.integers(0, 100),
)
def test_batch_placement_fast_path_equals_the_per_message_loop(
    messages: list[Message], nexts: list[int], rr: int
) -> None:
    try:
        expected = _place_each("t", messages, list(nexts), rr, 7)
    except ValueError:
        with pytest.raises(ValueError, match="out of range"):
            place_batch("t", messages, nexts, rr, 7)
        return
    got = place_batch("t", messages, nexts, rr, 7)
    assert list(got.rows) == list(expected.rows)
    assert (got.partitions, got.offsets, got.next_offsets, got.round_robin, got.last_header) == (
        expected.partitions,
        expected.offsets,
        expected.next_offsets,
        expected.round_robin,
        expected.last_header,
    )
    assert [(r[0], r[1]) for r in expected.rows] == list(
        zip(got.partitions, got.offsets, strict=True)
    )


def test_append_routes_like_the_memory_log(tmp_path: Path) -> None:
    memory = MemoryLog()
    log = EmbeddedLog(tmp_path)
    messages = [Message(b"v", b"key-%d" % (i % 17) if i % 3 else None) for i in range(200)]
    messages += [Message(b"p", partition=2, timestamp_ms=1), Message(b"h", headers=(("a", b"b"),))]
    for target in (memory, log):
        target.create_topic(TopicSpec("t", 5))
    for chunk in (messages[:50], messages[50:]):
        assert log.append("t", chunk) == memory.append("t", chunk)
    with pytest.raises(ValueError, match="out of range"):
        log.append("t", [Message(b"ok"), Message(b"bad", partition=5)])
    assert log.end_offsets("t") == memory.end_offsets("t")
    log.close()


# -- retention: SQL versus the pure rules ------------------------------------------------

retention_records = st.lists(
    st.tuples(
        st.integers(0, 100),  # timestamp
        st.one_of(st.none(), st.sampled_from([b"a", b"b", b"c"])),  # key
        st.one_of(st.none(), st.binary(max_size=12)),  # value (None = tombstone)
        st.one_of(st.just(()), st.just((("hé", b"xyz"),))),
        st.integers(0, 1),  # partition
    ),
    max_size=40,
)
retention_specs = st.one_of(
    st.builds(
        lambda ms, size: {"retention_ms": ms, "retention_bytes": size},
        st.one_of(st.none(), st.integers(0, 120)),
        st.one_of(st.none(), st.integers(0, 200)),
    ),
    st.just({"cleanup_policy": "compact"}),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(retention_records, retention_specs, st.integers(0, 200), st.booleans())
def test_sql_retention_matches_the_memory_log(
    shared_log: EmbeddedLog,
    records: list[tuple[int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...], int]],
    spec_kwargs: dict[str, object],
    now: int,
    twice: bool,
) -> None:
    topic = _topic()
    memory = MemoryLog()
    for target in (memory, shared_log):
        target.create_topic(TopicSpec(topic, 2, **spec_kwargs))  # type: ignore[arg-type]
        target.append(topic, [Message(v, k, h, ts, p) for ts, k, v, h, p in records])
    assert shared_log.enforce_retention(now) == memory.enforce_retention(now)
    if twice:
        assert shared_log.enforce_retention(now + 50) == memory.enforce_retention(now + 50)
    assert _read_everything(shared_log, topic) == _read_everything(memory, topic)
    assert shared_log.start_offsets(topic) == memory.start_offsets(topic)
    assert shared_log.end_offsets(topic) == memory.end_offsets(topic)
    assert shared_log.offsets_for_time(topic, 50) == memory.offsets_for_time(topic, 50)
    shared_log.delete_topic(topic)


# -- topics and transactions ----------------------------------------------------------------


def test_delete_topic_drops_records_and_committed_offsets(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path)
    log.create_topic(TopicSpec("t"))
    log.append("t", [Message(b"a"), Message(b"b")])
    consumer = log.consumer("g", ["t"], config=EARLIEST)
    consumer.poll(timeout_s=1)
    consumer.commit()
    consumer.close()
    log.delete_topic("t")
    assert log.read(TopicPartition("t", 0), 0, 10) == []
    log.create_topic(TopicSpec("t", 2))
    assert log.end_offsets("t") == {0: 0, 1: 0}
    assert log.committed_offsets("g", [TopicPartition("t", 0)]) == {TopicPartition("t", 0): None}
    tables = {
        r[0] for r in log._conn().execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    assert sum(1 for t in tables if t.startswith("r")) == 1  # the old table is gone
    log.close()


def test_a_transaction_commits_appends_and_offsets_together_or_not_at_all(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path)
    log.create_topic(TopicSpec("in"))
    log.create_topic(TopicSpec("out"))
    log.append("in", [Message(b"1"), Message(b"2")])
    consumer = log.consumer("g", ["in"], config=EARLIEST)
    records = consumer.poll(timeout_s=1)
    tp = TopicPartition("in", 0)

    with pytest.raises(RuntimeError), log.transaction() as conn:
        log.append("out", [Message(r.value) for r in records])
        consumer.commit()
        conn.execute("CREATE TABLE IF NOT EXISTS my_state (k TEXT PRIMARY KEY, v INTEGER)")
        conn.execute("INSERT INTO my_state VALUES ('n', 2)")
        raise RuntimeError("crash before the end of the batch")
    assert log.end_offsets("out") == {0: 0}
    assert consumer.committed([tp]) == {tp: None}

    with log.transaction() as conn:
        log.append("out", [Message(r.value) for r in records])
        consumer.commit()
        conn.execute("CREATE TABLE IF NOT EXISTS my_state (k TEXT PRIMARY KEY, v INTEGER)")
        conn.execute("INSERT INTO my_state VALUES ('n', 2)")
    assert log.end_offsets("out") == {0: 2}
    assert consumer.committed([tp]) == {tp: 2}
    consumer.close()
    log.close()


# -- groups in one process --------------------------------------------------------------------


def test_a_new_member_starts_only_after_the_owner_releases(tmp_path: Path) -> None:
    clock = FakeClock()
    log = EmbeddedLog(tmp_path, clock=clock)
    log.create_topic(TopicSpec("t", 4))
    log.append("t", [Message(b"x", partition=p) for p in range(4)])
    a = log.consumer("g", ["t"], config=EARLIEST)
    b = log.consumer("g", ["t"], config=EARLIEST)
    assert len(a.poll(timeout_s=0)) == 4
    assert len(a.assignment()) == 4
    assert b.poll(timeout_s=0) == [] and b.assignment() == frozenset()  # a still holds them
    moving = sorted(a.assignment())[2:] if a.member_id < b.member_id else sorted(a.assignment())[:2]  # type: ignore[attr-defined]
    with pytest.raises(CommitFailed, match="moved to another member"):
        a.commit({moving[0]: 1})  # assigned elsewhere now: refused, as on Kafka mid-rebalance
    a.poll(timeout_s=0)  # a releases what the range assignment gives b
    assert len(a.assignment()) == 2
    assert len(b.poll(timeout_s=0)) == 2
    assert a.assignment().isdisjoint(b.assignment())
    assert a.assignment() | b.assignment() == {TopicPartition("t", p) for p in range(4)}
    b.close()  # leaving hands everything back to a
    a.poll(timeout_s=0)
    assert len(a.assignment()) == 4
    log.close()


def test_members_expire_by_the_injected_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    log = EmbeddedLog(tmp_path, clock=clock)
    log.create_topic(TopicSpec("t", partitions=2))
    cfg = ConsumerConfig(max_poll_interval_ms=1000)
    a, b = log.consumer("g", ["t"], config=cfg), log.consumer("g", ["t"], config=cfg)
    for c in (a, b, a, b):
        c.poll(timeout_s=0)
    assert len(a.assignment()) == len(b.assignment()) == 1
    clock.advance(999)
    a.poll(timeout_s=0)
    assert len(a.assignment()) == 1
    clock.advance(2)
    a.poll(timeout_s=0)
    assert a.assignment() == {TopicPartition("t", 0), TopicPartition("t", 1)}
    with pytest.raises(CommitFailed, match="moved to another member"):
        b.commit({TopicPartition("t", 0): 0})
    log.close()


def test_process_liveness_sees_exited_and_unreaped_processes() -> None:
    me = current_process()
    assert process_alive(me.host, me.pid, me.start, me)
    assert process_alive("another-host", 1, 0, me)  # cannot judge other machines
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_alive(me.host, child.pid, 0, me)
        os.kill(child.pid, signal.SIGKILL)
        # not reaped yet: a zombie counts as dead
        _eventually(lambda: not process_alive(me.host, child.pid, 0, me), 5, "zombie seen as dead")
    finally:
        child.kill()
        child.wait()
    assert not process_alive(me.host, child.pid, 0, me)


def test_wait_for_append_wakes_for_this_and_other_processes(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path)
    log.create_topic(TopicSpec("t"))
    log.wait_for_append(0)  # first call only records where the log stands
    timer = threading.Timer(0.1, lambda: log.append("t", [Message(b"x")]))
    timer.start()
    t0 = time.monotonic()
    log.wait_for_append(5)
    assert time.monotonic() - t0 < 2
    timer.join()
    log.wait_for_append(0)

    code = (
        "import time, sys; from eventml.log.embedded import EmbeddedLog; "
        "from eventml.log import Message; log = EmbeddedLog(sys.argv[1]); "
        "time.sleep(0.3); log.append('t', [Message(b'y')])"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)])
    t0 = time.monotonic()
    log.wait_for_append(10)
    waited = time.monotonic() - t0
    assert child.wait(10) == 0
    assert waited < 5
    assert log.end_offsets("t") == {0: 2}
    log.close()


def test_a_waiter_on_some_topics_sleeps_through_appends_to_others(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path)
    for name in ("quiet", "busy"):
        log.create_topic(TopicSpec(name))
    log.wait_for_append(0, {"quiet"})  # first call only records where the log stands
    stop = threading.Event()

    def hammer() -> None:  # another thread's appends, and another connection's commits
        while not stop.is_set():
            log.append("busy", [Message(b"x")])
            time.sleep(0.005)

    busy = threading.Thread(target=hammer)
    busy.start()
    try:
        t0 = time.monotonic()
        log.wait_for_append(0.5, {"quiet"})
        assert time.monotonic() - t0 >= 0.45  # not woken by ~100 appends to "busy"
        timer = threading.Timer(0.1, lambda: log.append("quiet", [Message(b"q")]))
        timer.start()
        t0 = time.monotonic()
        log.wait_for_append(5, {"quiet"})
        assert time.monotonic() - t0 < 2  # woken by its own topic
        timer.join()
        t0 = time.monotonic()
        log.wait_for_append(5, {"busy"})  # a waiter on "busy" (or on every topic) wakes at once
        log.wait_for_append(5)
        assert time.monotonic() - t0 < 1
    finally:
        stop.set()
        busy.join()
    code = (  # another process's append to the quiet topic is noticed too
        "import time, sys; from eventml.log.embedded import EmbeddedLog; "
        "from eventml.log import Message; log = EmbeddedLog(sys.argv[1]); "
        "time.sleep(0.3); log.append('quiet', [Message(b'y')])"
    )
    log.wait_for_append(0, {"quiet"})
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)])
    t0 = time.monotonic()
    log.wait_for_append(10, {"quiet"})
    assert child.wait(10) == 0 and time.monotonic() - t0 < 5
    assert log.end_offsets("quiet") == {0: 2}
    log.close()


def test_a_fork_waits_for_a_running_checkpoint_and_the_child_starts_clean() -> None:
    """A fork while the checkpoint thread is inside SQLite could leave the child with
    SQLite's mutexes held (its first SQLite call hangs): the fork waits for the checkpoint."""
    from eventml.log.embedded.checkpoint import Checkpointer

    started, release = threading.Event(), threading.Event()

    class SlowCheckpoint:  # stands in for a connection in the middle of a long checkpoint
        def execute(self, sql: str) -> SlowCheckpoint:
            started.set()
            release.wait(5)
            return self

        def fetchall(self) -> list[Any]:
            return []

        def close(self) -> None:
            pass

    c = Checkpointer(lambda: SlowCheckpoint(), interval_s=0.01)  # type: ignore[arg-type, return-value]
    c.appended()
    assert started.wait(5)
    threading.Timer(0.3, release.set).start()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: no thread, free locks, a new append would start its own
        ok = not c._running and c._busy.acquire(timeout=1) and c._lock.acquire(timeout=1)
        os._exit(0 if ok else 1)
    waited = time.monotonic() - t0
    _, status = os.waitpid(pid, 0)
    assert waited >= 0.25, waited  # the fork waited for the checkpoint to end
    assert os.waitstatus_to_exitcode(status) == 0


# -- groups across processes ------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from eventml.log import CommitFailed, ConsumerConfig, open_log

    data, name, out_path, status_path, stop_path = sys.argv[1:6]
    log = open_log(f"embedded://{data}")
    consumer = log.consumer(
        "workers", ["jobs"], config=ConsumerConfig(auto_offset_reset="earliest")
    )
    polls = 0
    with open(out_path, "a") as out:
        while not os.path.exists(stop_path):
            records = consumer.poll(max_records=20, timeout_s=0.05)
            polls += 1
            for r in records:
                out.write(f"{r.partition} {r.offset}\\n")
            out.flush()
            if records:
                time.sleep(0.01)  # "processing"
                try:
                    consumer.commit()
                except CommitFailed:
                    pass  # partitions moved: the new owner re-reads from the last commit
            status = {"pid": os.getpid(), "polls": polls,
                      "assigned": sorted(tp.partition for tp in consumer.assignment())}
            with open(status_path + ".tmp", "w") as f:
                json.dump(status, f)
            os.replace(status_path + ".tmp", status_path)
    consumer.close()
    log.close()
    """
)


def _assigned(path: Path) -> set[int] | None:
    """The partitions a worker last reported holding (``None`` before its first report)."""
    try:
        return set(json.loads(path.read_text())["assigned"])
    except (OSError, ValueError):
        return None


def _consumed(paths: list[Path]) -> list[tuple[int, int]]:
    out = []
    for path in paths:
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:  # a killed worker may leave half a line
                out.append((int(parts[0]), int(parts[1])))
    return out


def _holders(db: Path) -> dict[int, str]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT p, member FROM group_owners WHERE grp = 'workers'"))
    finally:
        conn.close()


def test_a_group_spread_over_processes_survives_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = EmbeddedLog(data)
    log.create_topic(TopicSpec("jobs", 6))
    expected: set[tuple[int, int]] = set()
    producing = threading.Event()
    producing.set()

    def produce() -> None:  # a steady stream, so the kill lands mid-work
        i = 0
        while producing.is_set():
            batch = [Message(b"%d" % (i + j), partition=(i + j) % 6) for j in range(30)]
            expected.update((m.partition, m.offset) for m in log.append("jobs", batch))
            i += 30
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    stop = tmp_path / "stop"
    names = ["w0", "w1", "w2"]
    outs = {n: tmp_path / f"{n}.out" for n in names}
    statuses = {n: tmp_path / f"{n}.json" for n in names}
    procs = {
        n: subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(data), n, str(outs[n]), str(statuses[n]), str(stop)]
        )
        for n in names
    }
    survivors = names[1:]
    try:

        def split_between(members: list[str]) -> bool:
            assigned = [_assigned(statuses[n]) or set() for n in members]
            union = set().union(*assigned)
            return all(assigned) and union == set(range(6)) and sum(map(len, assigned)) == 6

        _eventually(lambda: split_between(names), 20, "three workers to split 6 partitions")
        assert len(set(_holders(data / "log.db").values())) == 3
        time.sleep(0.3)  # let everyone work a while

        victim = max(names, key=lambda n: len(_assigned(statuses[n]) or ()))
        survivors = [n for n in names if n != victim]
        os.kill(procs[victim].pid, signal.SIGKILL)  # not reaped yet: a zombie, still "exists"
        took = _eventually(lambda: split_between(survivors), 10, "survivors to take over")
        assert took < 5
        procs[victim].wait()
        holders = _holders(data / "log.db")
        assert sorted(holders) == list(range(6)) and len(set(holders.values())) == 2
        time.sleep(0.3)  # survivors work the victim's partitions under a steady stream
        producing.clear()
        producer.join()
        _eventually(
            lambda: expected <= set(_consumed(list(outs.values()))), 20, "every record consumed"
        )
    finally:
        producing.clear()
        producer.join()
        stop.touch()
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    consumed = _consumed(list(outs.values()))
    assert len(expected) > 1000
    assert expected - set(consumed) == set()  # none missing
    assert set(consumed) <= expected  # nothing invented
    print(f"takeover {took:.2f}s, {len(expected)} records, {len(consumed)} consumed")
    assert all(procs[n].returncode == 0 for n in survivors)
    log.close()
