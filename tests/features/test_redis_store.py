"""The Redis online store against a real redis-server: it serves what OnlineStore and
historical retrieval serve; the sync's effects are exactly-once across crashes (a
checker that catches positions written outside the transaction, or not at all); the
CLI copies and reads with one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from eventml.engine import App, Worker
from eventml.features import (
    HOUR,
    FeatureView,
    OnlineStore,
    RedisOnlineStore,
    RedisSync,
    count,
    get_historical_features,
    materialize,
)
from eventml.features.redis_store import (
    RedisKeys,
    RedisStoreError,
    RedisUnreachable,
    SyncBatch,
    connect,
    read_status,
)
from eventml.log import Log, Message, TopicPartition
from eventml.state._tail import read_rows
from eventml.testing.redis import RedisServer, free_port

from .test_cli import MODULE, cli
from .test_online import _run
from .test_point_in_time import generate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "embedded":
        return f"embedded://{tmp_path}/data"
    return f"kafka://{request.getfixturevalue('kafka_bootstrap')}"


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of the test's own on the session's server, deleted afterwards."""
    name = f"pytest:{uuid.uuid4().hex[:10]}:"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{name}*", count=1_000))
    if keys:
        client.delete(*keys)
    client.close()


def _all_keys(events: list[tuple[str, int, dict[str, Any]]]) -> list[str]:
    return [*sorted({c for c, _, _ in events}), "nobody"]


def test_serves_what_online_store_and_historical_retrieval_serve(
    url: str, redis_url: str, prefix: str
) -> None:
    events = generate(seed=11, cards=40, n=1_500)
    log, view, topics = _run(url, events)
    try:
        with RedisSync(log, view, topics.online, redis_url, key_prefix=prefix, batch_size=37) as sync:
            copied = sync.catch_up(timeout_s=60)
            assert copied > 0 and sync.positions() == log.end_offsets(topics.online)
        memory = OnlineStore(log, view, topics.online)
        memory.refresh()
        keys = _all_keys(events)
        end = max(t for _, t, _ in events)
        with RedisOnlineStore(redis_url, view, key_prefix=prefix) as store:
            assert store.get_online_features(keys) == memory.get_online_features(keys)
            assert store.stream_time_ms == memory.stream_time_ms == end
            for at in (end, end + 1, end + 7_000, end + 20 * 60_000, end + 3 * HOUR):  # cache, decay, TTL
                served = store.get_online_features(keys, at_ms=at)
                assert served == memory.get_online_features(keys, at_ms=at)
                historical = get_historical_features(log, view, [(k, at) for k in keys])
                assert served == [{k: v for k, v in d.items() if k in view.feature_names}
                                  for d in historical.to_dicts()]
            some = ["tx_10m", "secs_since_last"]
            assert store.get_online_features(keys[:3], features=some) == \
                memory.get_online_features(keys[:3], features=some)
            assert store.get_online_features([]) == []
    finally:
        log.close()


def test_ttl_and_unknown_keys_give_none(redis_url: str, prefix: str, tmp_path: Path) -> None:
    events = generate(seed=12, cards=5, n=200)
    log, view, topics = _run(f"embedded://{tmp_path}/data", events)
    try:
        RedisSync(log, view, topics.online, redis_url, key_prefix=prefix).catch_up()
        store = RedisOnlineStore(redis_url, view, key_prefix=prefix)
        end = max(t for _, t, _ in events)
        newest = max(events, key=lambda e: e[1])[0]
        assert store.get_online_features([newest])[0]["tx_10m"] >= 1  # at the stream time
        nones = dict.fromkeys(view.feature_names)
        assert store.get_online_features([newest, "nobody"], at_ms=end + 2 * HOUR + 1) == [nones, nones]
        assert store.get_online_features(["nobody"]) == [nones]
        empty = RedisOnlineStore(redis_url, view, key_prefix=prefix + "empty:")
        assert empty.get_online_features([newest]) == [nones] and empty.stream_time_ms is None
    finally:
        log.close()


def test_run_follows_new_records_and_rebuilds_a_redis_that_lost_them(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    url = f"embedded://{tmp_path}/data"
    events = generate(seed=13, cards=12, n=600)
    log, view, topics = _run(url, events[:300])
    try:
        sync = RedisSync(log, view, topics.online, redis_url, key_prefix=prefix, batch_size=50)
        stop = threading.Event()
        follower = threading.Thread(target=sync.run, kwargs={"stop": stop})
        follower.start()
        # more events through the same app: its worker appends to the online topic
        app_name = topics.online.removesuffix(f"-features-{view.name}")
        app = App(app_name, broker=url, max_batch=97, min_batch=7)
        app.topic(view.source, partitions=3)
        materialize(app, view, log_served=True)
        log.append(view.source, [Message(orjson.dumps(v), c.encode(), timestamp_ms=t)
                                 for c, t, v in events[300:]])
        Worker(app).run(idle_timeout_s=0.3)
        ends = log.end_offsets(topics.online)
        sync.catch_up()  # (the follower may have got there first: then this copies nothing)
        stop.set()
        follower.join(10)
        assert not follower.is_alive() and sync.positions() == ends

        memory = OnlineStore(log, view, topics.online)
        memory.refresh()
        store = RedisOnlineStore(redis_url, view, key_prefix=prefix)
        keys = _all_keys(events)
        assert store.get_online_features(keys) == memory.get_online_features(keys)

        # Redis restarted without persistence: its keys are gone; the sync notices
        # (its positions no longer match Redis) and copies everything again
        client = redis.Redis.from_url(redis_url)
        client.delete(*client.scan_iter(match=f"{prefix}*"))
        assert store.get_online_features(keys[:1]) == [dict.fromkeys(view.feature_names)]
        sync.catch_up()
        assert sync.positions() == ends
        assert store.get_online_features(keys) == memory.get_online_features(keys)
    finally:
        log.close()


# ---- exactly-once effects across crashes -----------------------------------------------

AUDIT = b"audit"


class Crashed(Exception):
    pass


class AuditedSync(RedisSync):
    """The real sync, also recording each applied range in the batch's transaction (the
    effect whose count the checker reads)."""

    def _queue(self, pipe: Any, batch: SyncBatch, stream_time: int | None) -> None:
        super()._queue(pipe, batch, stream_time)
        pipe.rpush(self.keys.prefix + AUDIT, f"{batch.partition}:{batch.start}:{batch.position}")


class PositionsAfterExec(AuditedSync):
    """Broken: the position is written after EXEC, in a command of its own."""

    def _queue(self, pipe: Any, batch: SyncBatch, stream_time: int | None) -> None:
        if batch.records:
            pipe.mset(batch.records)
        pipe.rpush(self.keys.prefix + AUDIT, f"{batch.partition}:{batch.start}:{batch.position}")

    def _apply(self, batch: SyncBatch) -> bool:
        ok = super()._apply(batch)  # on_commit (the crash) runs in here, after EXEC
        self.client.hset(self.keys.positions, str(batch.partition), str(batch.position))
        return ok


class PositionsNotWritten(AuditedSync):
    """Broken: positions never reach Redis (a restart starts over)."""

    def _queue(self, pipe: Any, batch: SyncBatch, stream_time: int | None) -> None:
        if batch.records:
            pipe.mset(batch.records)
        pipe.rpush(self.keys.prefix + AUDIT, f"{batch.partition}:{batch.start}:{batch.position}")


def crash_after(commits: int) -> Callable[[SyncBatch], None]:
    seen = [0]

    def hook(batch: SyncBatch) -> None:
        seen[0] += 1
        if seen[0] >= commits:
            raise Crashed(f"after commit {seen[0]}")

    return hook


def check_exactly_once(log: Log, topic: str, client: Any, keys: RedisKeys) -> list[str]:
    """What is wrong with Redis as a copy of ``topic``: each partition's applied ranges
    must tile ``[0, position)`` once each (no range twice, no gap), and the entity
    records must be exactly the newest per entity in those ranges."""
    problems: list[str] = []
    positions = read_status(client, keys).positions
    applied: dict[int, list[tuple[int, int]]] = {}
    for item in client.lrange(keys.prefix + AUDIT, 0, -1):
        p, start, end = map(int, item.decode().split(":"))
        applied.setdefault(p, []).append((start, end))
    expected: dict[bytes, bytes] = {}
    for p in sorted(log.end_offsets(topic)):
        ranges, position = applied.get(p, []), positions.get(p, 0)
        at = 0
        for start, end in ranges:
            if start != at:
                problems.append(f"partition {p}: range [{start}, {end}) applied after [.., {at})"
                                + (" (again)" if start < at else " (gap)"))
            at = end
        if at != position:
            problems.append(f"partition {p}: effects up to {at}, position {position}")
        rows, _ = read_rows(log, TopicPartition(topic, p), 30.0, 0, position)
        for key, value, _ in rows:
            if key is not None and value is not None:
                expected[keys.entity(key)] = value
    held = {k: client.get(k) for k in client.scan_iter(match=keys.prefix + b"e:*", count=1_000)}
    if held != expected:
        extra = sorted(set(held) - set(expected))[:3]
        missing = sorted(set(expected) - set(held))[:3]
        differ = sorted(k for k in set(held) & set(expected) if held[k] != expected[k])[:3]
        problems.append(f"entity states differ from the positions: extra {extra}, "
                        f"missing {missing}, other values {differ}")
    return problems


def crash_and_resume(
    variant: type[RedisSync], log: Log, topic: str, view: FeatureView, redis_url: str, prefix: str
) -> tuple[list[str], list[str]]:
    """Crash after 3 batches, check; resume (same variant), check. The problems found
    at the crash and after the resume."""
    client = connect(redis_url)
    keys = RedisKeys(prefix.encode())
    with pytest.raises(Crashed):
        variant(log, view, topic, redis_url, key_prefix=prefix, batch_size=29,
                on_commit=crash_after(3)).catch_up()
    at_crash = check_exactly_once(log, topic, client, keys)
    enough = 2 * sum(-(-end // 29) for end in log.end_offsets(topic).values()) + 5
    resumed = variant(log, view, topic, redis_url, key_prefix=prefix, batch_size=29,
                      on_commit=crash_after(enough))  # a guard: a variant that never finishes
    try:
        resumed.catch_up(timeout_s=60)
        after = check_exactly_once(log, topic, client, keys)
        if resumed.positions() != log.end_offsets(topic):
            after.append(f"positions {resumed.positions()} != end offsets {log.end_offsets(topic)}")
    except Crashed:
        after = ["the resumed sync never reached the end", *check_exactly_once(log, topic, client, keys)]
    return at_crash, after


@pytest.mark.parametrize("variant", [AuditedSync, PositionsAfterExec, PositionsNotWritten],
                         ids=lambda v: v.__name__)
def test_crash_then_resume_applies_each_batch_exactly_once(
    url: str, redis_url: str, prefix: str, variant: type[RedisSync]
) -> None:
    events = generate(seed=14, cards=30, n=900)
    log, view, topics = _run(url, events, max_batch=31)  # many small online batches
    try:
        at_crash, after = crash_and_resume(variant, log, topics.online, view, redis_url, prefix)
        if variant is AuditedSync:
            assert at_crash == [] and after == []
            memory = OnlineStore(log, view, topics.online)
            memory.refresh()
            keys = _all_keys(events)
            store = RedisOnlineStore(redis_url, view, key_prefix=prefix)
            assert store.get_online_features(keys) == memory.get_online_features(keys)
        else:
            # caught twice: at the crash (a state ahead of its position, or a range
            # applied again) and after the resume (ranges applied twice)
            assert at_crash and after, "the checker missed a broken sync"
    finally:
        log.close()


_KILLED = """
import os, signal, sys
from tests.features.test_online import _view
from tests.features.test_redis_store import AuditedSync
from eventml.log import open_log

log_url, source, topic, redis_url, prefix = sys.argv[1:6]
seen = []
def die(batch):
    seen.append(batch)
    if len(seen) == 4:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: a real crash
with open_log(log_url) as log:
    AuditedSync(log, _view(source), topic, redis_url, key_prefix=prefix, batch_size=23,
                on_commit=die).catch_up()
"""


def test_sigkilled_sync_resumes_exactly_once(redis_url: str, prefix: str, tmp_path: Path) -> None:
    url = f"embedded://{tmp_path}/data"
    events = generate(seed=15, cards=25, n=700)
    log, view, topics = _run(url, events, max_batch=31)
    try:
        killed = subprocess.run(
            [sys.executable, "-c", _KILLED, url, view.source, topics.online, redis_url, prefix],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        client, keys = connect(redis_url), RedisKeys(prefix.encode())
        assert check_exactly_once(log, topics.online, client, keys) == []
        assert 0 < sum(read_status(client, keys).positions.values()) < sum(log.end_offsets(topics.online).values())
        resumed = AuditedSync(log, view, topics.online, redis_url, key_prefix=prefix, batch_size=23)
        resumed.catch_up()
        assert resumed.positions() == log.end_offsets(topics.online)
        assert check_exactly_once(log, topics.online, client, keys) == []
    finally:
        log.close()


def test_a_prefix_holds_one_topic(redis_url: str, prefix: str, tmp_path: Path) -> None:
    log, view, topics = _run(f"embedded://{tmp_path}/data", generate(seed=16, n=50))
    try:
        RedisSync(log, view, topics.online, redis_url, key_prefix=prefix).catch_up()
        with pytest.raises(RedisStoreError, match="another key prefix"):
            RedisSync(log, view, f"{topics.online}-other", redis_url, key_prefix=prefix).catch_up()
    finally:
        log.close()


def test_unreachable_redis_and_missing_package_say_what_to_do(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = FeatureView("v", entity="k", source="s", features=[count("n", 60_000)])
    dead = f"redis://127.0.0.1:{free_port()}"
    with pytest.raises(RedisUnreachable, match=f"cannot reach Redis at {dead}"):
        RedisOnlineStore(dead, view)
    with RedisServer() as server:  # one that goes away while a store uses it
        store = RedisOnlineStore(server.url, view)
        assert store.get_online_features(["k"]) == [{"n": None}]
    with pytest.raises(RedisUnreachable, match=f"cannot reach Redis at {server.url}"):
        store.get_online_features(["k"])
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r"pip install 'eventml\[redis\]'"):
        RedisOnlineStore(dead, view)


# ---- the command line ------------------------------------------------------------------

def test_cli_sync_and_get(tmp_path: Path, redis_url: str, prefix: str) -> None:
    url = f"embedded://{tmp_path}/data"
    events = generate(seed=17, n=300)
    log, view, topics = _run(url, events)
    app = topics.online.removesuffix(f"-features-{view.name}")
    ends = log.end_offsets(topics.online)
    log.close()
    (tmp_path / "myfeatures.py").write_text(MODULE.format(source=view.source))
    redis_args = ("--redis", redis_url, "--key-prefix", prefix)

    synced = cli(tmp_path, url, "sync", "myfeatures:view", "--app", app, *redis_args)
    assert synced.returncode == 0, synced.stderr
    where = ", ".join(f"{p}:{o}" for p, o in sorted(ends.items()))
    assert synced.stdout.strip().endswith(f"to {redis_url} (next offsets {where})"), synced.stdout
    again = cli(tmp_path, url, "sync", "myfeatures:view", "--app", app, "--follow", "--idle-exit", "0.2",
                *redis_args)
    assert again.returncode == 0 and " 0 records " in again.stdout, (again.stdout, again.stderr)

    card = max(events, key=lambda e: e[1])[0]
    from_log = cli(tmp_path, url, "get", "myfeatures:view", "--app", app, card, "nobody")
    from_redis = cli(tmp_path, url, "get", "myfeatures:view", "--app", app, card, "nobody", *redis_args)
    assert from_redis.returncode == 0, from_redis.stderr
    assert from_redis.stdout == from_log.stdout and orjson.loads(from_redis.stdout.splitlines()[0])["tx_10m"] >= 1

    dead = f"redis://127.0.0.1:{free_port()}"
    for args, needle in [
        (("sync", "myfeatures:view", "--app", app, "--redis", dead),
         f"cannot reach Redis at {dead}"),
        (("get", "myfeatures:view", "--app", app, "k", "--redis", dead), "start one with scripts/redis start"),
        (("get", "myfeatures:view", "--app", app, "k", "--redis", redis_url, "--key-prefix", prefix + "x:"),
         "holds nothing"),
        (("get", "myfeatures:view", "--app", "other", "k", *redis_args), "pass the --key-prefix"),
        (("sync", "myfeatures:view", "--app", "other", *redis_args), "no online topic"),
        (("sync", "myfeatures:view", "--app", app, "--idle-exit", "1", *redis_args), "needs --follow"),
    ]:
        bad = cli(tmp_path, url, *args)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and needle in bad.stderr, bad.stderr
