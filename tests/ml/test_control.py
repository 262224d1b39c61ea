"""Alias changes as control events: move_alias writes the registry and the control topic;
watchers read it from their own position, each sees every change, and look at most every N ms."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from numpy.typing import NDArray

from eventml.events import from_record
from eventml.log import Log, Record, TopicPartition
from eventml.ml import AliasWatcher, ModelRegistry, move_alias
from eventml.ml.control import alias_changes, publish_alias_change
from eventml.ml.records import ALIAS_TYPE, CONTROL_TOPIC, AliasChange


def double(x: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray(x[:, 0] * 2.0, dtype=np.float64)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models")


def _name() -> str:
    return f"m{uuid.uuid4().hex[:10]}"  # the control topic is shared on the Kafka broker


def test_move_alias_sets_the_registry_and_publishes_a_model_alias_event(
    registry: ModelRegistry, log: Log
) -> None:
    name = _name()
    for _ in range(2):
        registry.register(name, double, flavor="callable", features=["a"])
    registry.set_alias(name, "champion", 1)
    watcher = AliasWatcher(log, every_ms=0)
    start = watcher.start()

    change = move_alias(registry, log, name, "champion", 2, reason="better auc", clock=lambda: 42)
    assert change == AliasChange(name, "champion", 2, previous=1, reason="better auc", at_ms=42)
    assert registry.resolve(f"{name}@champion").version == 2
    assert log.describe_topic(CONTROL_TOPIC).spec.partitions == 1  # one total order of changes

    seen = [c for c in watcher.poll() if c.model == name]
    assert seen == [change]
    end = log.end_offsets(CONTROL_TOPIC)[0]
    records = _records(log, start, end)
    mine = [r for r in records if from_record(r).subject == f"{name}@champion"]
    assert len(mine) == 1
    event = from_record(mine[0])
    assert event.type == ALIAS_TYPE and event.key == f"{name}@champion"
    assert AliasChange.from_dict(event.data) == change
    assert [c for c in alias_changes(log) if c.model == name] == [change]


def _records(log: Log, start: int, end: int) -> list[Record]:
    from eventml.state._tail import read_rows

    rows, _ = read_rows(log, TopicPartition(CONTROL_TOPIC, 0), 10.0, start, end)
    return [Record(CONTROL_TOPIC, 0, 0, 0, k, v, tuple(h or ())) for k, v, h in rows]


def test_a_watcher_starts_at_the_end_and_looks_at_most_every_interval() -> None:
    from eventml.testing import MemoryLog

    log = MemoryLog()
    publish_alias_change(log, AliasChange("m", "champion", 1, at_ms=1))  # before: never seen
    now = [100.0]
    watcher = AliasWatcher(log, every_ms=200, monotonic=lambda: now[0])
    assert watcher.start() == 1
    publish_alias_change(log, AliasChange("m", "champion", 2, previous=1, at_ms=2))
    assert watcher.poll() == [] and watcher.looks == 0  # 0 ms later: not yet
    now[0] += 0.199
    assert watcher.poll() == []
    now[0] += 0.001
    assert [c.version for c in watcher.poll()] == [2] and watcher.looks == 1
    publish_alias_change(log, AliasChange("m", "champion", 3, previous=2, at_ms=3))
    publish_alias_change(log, AliasChange("m", "challenger", 1, at_ms=4))
    assert watcher.poll(force=True) == [
        AliasChange("m", "champion", 3, previous=2, at_ms=3), AliasChange("m", "challenger", 1, at_ms=4)]
    assert watcher.poll(force=True) == [] and watcher.position == 4


def test_every_watcher_sees_every_change_from_its_own_position(tmp_path: Path) -> None:
    """Not a consumer group: two workers' watchers on one log both see each change."""
    url = f"embedded://{tmp_path}/data"
    first, second = AliasWatcher(url, every_ms=0), AliasWatcher(url, every_ms=0)
    first.start()
    second.start()
    try:
        from eventml.log import open_log

        with open_log(url) as log:
            for v in (2, 3, 1):
                publish_alias_change(log, AliasChange("m", "champion", v, at_ms=v))
            log.append(CONTROL_TOPIC, [_not_a_change()])  # ignored, never trusted
        assert [c.version for c in first.poll()] == [2, 3, 1]
        assert [c.version for c in second.poll()] == [2, 3, 1]
    finally:
        first.close()
        second.close()


def _not_a_change() -> Any:
    from eventml.log import Message

    return Message(orjson.dumps({"hello": 1}), b"x", (("ce_type", b"something.else"),))


def test_alias_changes_on_a_log_without_the_topic_is_empty() -> None:
    from eventml.testing import MemoryLog

    assert alias_changes(MemoryLog()) == []
    with pytest.raises(ValueError, match="every_ms"):
        AliasWatcher(MemoryLog(), every_ms=-1)
