"""Redis as an online store: serve a feature view from other processes or machines.

:func:`~eventml.features.materialize` keeps each entity's newest state on the
compacted topic ``<app>-features-<view>``. :class:`RedisSync` copies that topic into
Redis; :class:`RedisOnlineStore` answers ``get_online_features`` from Redis with one
round trip, by the same rules as :class:`~eventml.features.OnlineStore`
(:mod:`eventml.features._serving`), so any number of servers can share one copy
without each tailing the log.

Keys, under a prefix (default ``eventml:features:<view>:``):

* ``e:<entity>``: the entity's online record as on the topic (JSON
  ``{"entity", "t", "state"}``);
* ``m:positions``: a hash, partition → the next offset of the topic to copy;
* ``m:stream_time``: the newest event time copied (the default "as of" time);
* ``m:topic``: the topic copied, so two views (or apps) never share a prefix unnoticed.

Exactly-once effects: each batch (a range of one partition) writes its entities'
states, the partition's next offset and the stream time in one MULTI/EXEC, under a
WATCH of the positions. A crash therefore never leaves a state ahead of or behind its
position; a restart resumes from the positions in Redis; a batch another writer
already applied (or a Redis that lost its data) is noticed by the WATCH and the
stored positions, and the sync re-reads from there. Re-applying a batch writes the
same values, so it is idempotent.

The ``redis`` package is an optional dependency: ``pip install 'eventml[redis]'``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import orjson

from eventml.features._serving import ServedValues, select
from eventml.features.spec import FeatureView
from eventml.features.state import EntityState
from eventml.log.base import Log, LogError, TopicPartition
from eventml.state._tail import Row, read_rows

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline


class RedisStoreError(Exception):
    """The Redis online store cannot go on; the message says what to do."""


class RedisUnreachable(RedisStoreError):
    """No answer from the Redis server at the URL given."""


def _redis() -> ModuleType:
    try:
        import redis
    except ImportError:
        raise ImportError(
            "the Redis online store needs the redis package: pip install 'eventml[redis]'"
        ) from None
    return redis


def connect(url: str, *, timeout_s: float = 5.0) -> Redis:
    """A client for ``url`` (``redis://host:port[/db]``) that has answered a PING."""
    redis = _redis()
    try:
        client: Redis = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        client.ping()
    except ValueError as exc:
        raise RedisStoreError(f"bad Redis URL {url!r}: {exc}") from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise RedisUnreachable(f"cannot reach Redis at {url}: {exc}") from None
    return client


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Where a view's data lives in Redis (see the module docstring)."""

    prefix: bytes

    @classmethod
    def for_view(cls, view: FeatureView, prefix: str | None = None) -> RedisKeys:
        return cls((prefix if prefix is not None else f"eventml:features:{view.name}:").encode())

    def entity(self, key: str | bytes) -> bytes:
        return self.prefix + b"e:" + (key if isinstance(key, bytes) else key.encode())

    @property
    def positions(self) -> bytes:
        return self.prefix + b"m:positions"

    @property
    def stream_time(self) -> bytes:
        return self.prefix + b"m:stream_time"

    @property
    def topic(self) -> bytes:
        return self.prefix + b"m:topic"


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """What Redis holds for a view: the topic copied, how far, and its stream time."""

    topic: str | None
    positions: dict[int, int]
    stream_time_ms: int | None


def read_status(client: Redis, keys: RedisKeys) -> SyncStatus:
    """The :class:`SyncStatus` under ``keys`` (one round trip)."""
    pipe = client.pipeline(transaction=False)
    pipe.get(keys.topic)
    pipe.hgetall(keys.positions)
    pipe.get(keys.stream_time)
    topic, positions, stream_time = pipe.execute()
    return SyncStatus(
        None if topic is None else topic.decode(),
        {int(p): int(o) for p, o in positions.items()},
        None if stream_time is None else int(stream_time),
    )


@dataclass(frozen=True, slots=True)
class SyncBatch:
    """One range ``[start, position)`` of one partition, as written in one MULTI/EXEC:
    ``records`` maps Redis keys to the newest online record of each entity in it."""

    partition: int
    start: int
    position: int
    records: dict[bytes, bytes]
    newest_t: int | None
    rows: int


def _batch(keys: RedisKeys, partition: int, start: int, position: int, rows: list[Row]) -> SyncBatch:
    """The effects of ``rows``: the newest record per entity (later rows win), and the
    newest event time. Tombstones and keyless rows are skipped, as OnlineStore does."""
    records: dict[bytes, bytes] = {}
    newest: int | None = None
    for key, value, _headers in rows:
        if key is None or value is None:
            continue
        records[keys.entity(key)] = value
        t = int(orjson.loads(value)["t"])
        if newest is None or t > newest:
            newest = t
    return SyncBatch(partition, start, position, records, newest, len(rows))


class RedisSync:
    """Copies ``topic`` (a view's online topic) into Redis, with exactly-once effects.

    :meth:`catch_up` copies up to the end offsets at call time; :meth:`run` keeps
    copying until ``stop`` is set or nothing new came for ``idle_timeout_s``.
    ``on_commit`` is called after each batch's EXEC (progress reports; tests raise from
    it to simulate a crash between batches).
    """

    def __init__(
        self, log: Log, view: FeatureView, topic: str, redis_url: str, *,
        key_prefix: str | None = None, batch_size: int = 5_000, timeout_s: float = 30.0,
        poll_interval_s: float = 0.05, on_commit: Callable[[SyncBatch], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.log, self.view, self.topic, self.redis_url = log, view, topic, redis_url
        self.keys = RedisKeys.for_view(view, key_prefix)
        self.batch_size, self.timeout_s, self.poll_interval_s = batch_size, timeout_s, poll_interval_s
        self.on_commit = on_commit
        self.client = connect(redis_url)
        redis = _redis()
        self._lost = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self._watch_error: type[Exception] = redis.exceptions.WatchError
        self._positions: dict[int, int] | None = None  # as stored in Redis; None: read them
        self.records = 0  # rows copied by this object (re-reads included)
        self._load()  # a prefix holding another topic's copy fails here, not mid-run

    def positions(self) -> dict[int, int]:
        """Per partition, the next offset to copy (as stored in Redis at the last read)."""
        return dict(self._load())

    def catch_up(self, timeout_s: float = 60.0) -> int:
        """Copy up to the topic's end offsets at call time; returns the rows copied.
        :class:`TimeoutError` if they are not reached within ``timeout_s`` (a Kafka
        transaction left open holds the read back)."""
        ends = self._ends()
        deadline = time.monotonic() + timeout_s
        copied = 0
        while True:
            copied += self.poll(ends)
            behind = {p: e for p, e in ends.items() if self._load().get(p, 0) < e}
            if not behind:
                return copied
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.topic}: still behind the end offsets {behind} "
                                   f"after {timeout_s:g} s (positions {self.positions()})")
            time.sleep(self.poll_interval_s)

    def run(self, *, stop: threading.Event | None = None, idle_timeout_s: float | None = None) -> int:
        """Keep copying until ``stop`` is set or, with ``idle_timeout_s``, until nothing new
        came for that long; returns the rows copied."""
        copied = 0
        idle_since = time.monotonic()
        while stop is None or not stop.is_set():
            n = self.poll()
            if n:
                copied += n
                idle_since = time.monotonic()
                continue
            if idle_timeout_s is not None and time.monotonic() - idle_since >= idle_timeout_s:
                break
            if stop is not None:
                stop.wait(self.poll_interval_s)
            else:
                time.sleep(self.poll_interval_s)
        return copied

    def poll(self, ends: dict[int, int] | None = None) -> int:
        """One pass over the partitions up to ``ends`` (default: the end offsets now),
        ``batch_size`` rows per transaction; returns the rows copied."""
        if ends is None:
            ends = self._ends()
        copied = 0
        self._positions = None  # Redis may have restarted empty, or another sync moved on
        try:
            for partition, end in sorted(ends.items()):
                tp = TopicPartition(self.topic, partition)
                while (start := self._load().get(partition, 0)) < end:
                    upto = min(end, start + self.batch_size)
                    rows, position = read_rows(self.log, tp, self.timeout_s, start, upto)
                    if position <= start:
                        break  # Kafka: a transaction still open; read it next time
                    if self._apply(_batch(self.keys, partition, start, position, rows)):
                        copied += len(rows)
        except self._lost as exc:
            raise RedisUnreachable(f"cannot reach Redis at {self.redis_url}: {exc}") from None
        self.records += copied
        return copied

    def _ends(self) -> dict[int, int]:
        try:
            return self.log.end_offsets(self.topic)
        except LogError:
            return {}  # not created yet: nothing to copy

    def _load(self) -> dict[int, int]:
        if self._positions is None:
            status = read_status(self.client, self.keys)
            if status.topic is None:
                self.client.set(self.keys.topic, self.topic.encode(), nx=True)
                status = read_status(self.client, self.keys)
            if status.topic != self.topic:
                raise RedisStoreError(
                    f"Redis keys {self.keys.prefix.decode()}* hold a copy of topic {status.topic!r}, "
                    f"not {self.topic!r}: give this view another key prefix"
                )
            self._positions = status.positions
        return self._positions

    def _apply(self, batch: SyncBatch) -> bool:
        """Write ``batch`` in one MULTI/EXEC if Redis is still at ``batch.start`` for its
        partition; else (another writer, or Redis lost its data) re-read the positions
        and return False."""
        k = self.keys
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(k.positions)  # type: ignore[no-untyped-call]  # untyped in redis-py
                stored = pipe.hget(k.positions, str(batch.partition))
                if int(stored or 0) != batch.start:
                    self._positions = None
                    return False
                old = pipe.get(k.stream_time)
                stream_time = batch.newest_t
                if old is not None and (stream_time is None or int(old) > stream_time):
                    stream_time = int(old)
                pipe.multi()
                self._queue(pipe, batch, stream_time)
                pipe.execute()
            except self._watch_error:
                self._positions = None
                return False
        self._load()[batch.partition] = batch.position
        if self.on_commit is not None:
            self.on_commit(batch)
        return True

    def _queue(self, pipe: Pipeline, batch: SyncBatch, stream_time: int | None) -> None:
        """The batch's writes, queued inside MULTI: states, position, stream time."""
        if batch.records:
            pipe.mset(batch.records)
        pipe.hset(self.keys.positions, str(batch.partition), str(batch.position))
        if stream_time is not None:
            pipe.set(self.keys.stream_time, str(stream_time))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RedisSync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RedisOnlineStore:
    """The latest state of every entity of ``view``, read from Redis (as
    :class:`RedisSync` keeps it): the :class:`~eventml.features.OnlineStore` contract,
    one round trip (MGET) per call.

    Restored states are cached per entity (up to ``cache_size``) and reused while Redis
    holds the very record they came from, so a hot key costs one MGET and a compare.
    """

    def __init__(
        self, redis_url: str, view: FeatureView, *, key_prefix: str | None = None,
        cache_size: int = 100_000,
    ) -> None:
        self.redis_url, self.view, self.cache_size = redis_url, view, cache_size
        self.keys = RedisKeys.for_view(view, key_prefix)
        self.client = connect(redis_url)
        redis = _redis()
        self._lost = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self._served = ServedValues(view)
        self._states: dict[str, tuple[bytes, EntityState]] = {}
        self.stream_time_ms: int | None = None  # as of the last call

    def status(self) -> SyncStatus:
        """What Redis holds for this view (topic, positions, stream time)."""
        return read_status(self.client, self.keys)

    def get_online_features(
        self, keys: Iterable[Any], *, at_ms: int | None = None, features: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """Per key, the view's values as of ``at_ms`` (default: the stream time); a key
        with no state in Redis (or past the TTL) gets ``None`` values."""
        names = list(features) if features is not None else self.view.feature_names
        entities = [str(key) for key in keys]
        try:
            blobs = cast("list[bytes | None]",  # a client without decode_responses: bytes
                         self.client.mget([self.keys.stream_time, *map(self.keys.entity, entities)]))
        except self._lost as exc:
            raise RedisUnreachable(f"cannot reach Redis at {self.redis_url}: {exc}") from None
        self.stream_time_ms = stream_time = None if blobs[0] is None else int(blobs[0])
        out = []
        for entity, blob in zip(entities, blobs[1:], strict=True):
            values = self._served.values_of(entity, self._state(entity, blob), at_ms, stream_time)
            out.append(select(values, names))
        return out

    def _state(self, entity: str, blob: bytes | None) -> EntityState | None:
        hit = self._states.get(entity)
        if hit is not None and hit[0] == blob:
            return hit[1]
        self._served.forget(entity)
        if blob is None:
            self._states.pop(entity, None)
            return None
        state = EntityState.restore(self.view, orjson.loads(blob)["state"])
        if hit is None and len(self._states) >= self.cache_size:
            oldest = next(iter(self._states))
            del self._states[oldest]
            self._served.forget(oldest)
        self._states[entity] = (blob, state)
        return state

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RedisOnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
