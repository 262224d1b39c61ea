"""The Redis side of `eventml features`: `sync` and `get --redis`, with one-line errors.

Apart from :mod:`eventml.cli.features` so that the ``redis`` package (an optional
extra) is imported only when a Redis command runs.
"""

from __future__ import annotations

import contextlib
from typing import Any

from eventml.cli._common import connect, fail
from eventml.features.online import online_topic
from eventml.features.redis_store import (
    RedisOnlineStore,
    RedisStoreError,
    RedisSync,
    RedisUnreachable,
)
from eventml.features.spec import FeatureView
from eventml.log import LogError

_START_HINT = "start one with scripts/redis start"


def sync_to_redis(
    spec: FeatureView, topic: str, broker: str, redis_url: str, key_prefix: str | None, *,
    follow: bool, idle_exit: float | None,
) -> str:
    """Copy ``topic`` into Redis (up to its end now, or on and on with ``follow``); the
    summary line to print."""
    try:
        with connect(broker) as log:
            if topic not in log.list_topics():
                fail(f"no online topic {topic!r}: is {spec.name!r} materialized by that app, and has it run?")
            with RedisSync(log, spec, topic, redis_url, key_prefix=key_prefix) as syncer:
                if follow:
                    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop between batches
                        syncer.run(idle_timeout_s=idle_exit)
                else:
                    syncer.catch_up()
                positions = syncer.positions()
                copied = syncer.records
    except RedisUnreachable as e:
        fail(f"{e}; {_START_HINT}")
    except (RedisStoreError, TimeoutError, LogError, ImportError) as e:
        fail(str(e))
    where = ", ".join(f"{p}:{o}" for p, o in sorted(positions.items())) or "none"
    return f"{spec.name}: {copied:,} records from {topic} to {redis_url} (next offsets {where})"


def get_from_redis(
    view: str, app: str, spec: FeatureView, redis_url: str, key_prefix: str | None,
    keys: list[str], at_ms: int | None,
) -> list[dict[str, Any]]:
    """The online values of ``keys`` as Redis holds them; fails if Redis holds another
    topic's copy, or none."""
    topic = online_topic(app, spec)
    try:
        with RedisOnlineStore(redis_url, spec, key_prefix=key_prefix) as store:
            held = store.status().topic
            if held is None:
                fail(f"Redis at {redis_url} holds nothing for {spec.name!r}: copy it first with "
                     f"eventml features sync {view} --app {app} --redis {redis_url}")
            if held != topic:
                fail(f"Redis at {redis_url} holds a copy of {held!r}, not {topic!r}: "
                     "pass the --key-prefix it was synced with")
            return store.get_online_features(keys, at_ms=at_ms)
    except RedisUnreachable as e:
        fail(f"{e}; {_START_HINT}")
    except (RedisStoreError, ImportError) as e:
        fail(str(e))
