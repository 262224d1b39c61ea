"""What flows between operators: items, and the per-batch collector of effects."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter
from typing import Any, NamedTuple

from eventml.log.base import Headers, Message, Record, TopicPartition
from eventml.state.base import PartitionStore


class Item(NamedTuple):
    """One value in flight: its key, event time, id (idempotency key) and the input record
    it came from (for dead letters)."""

    key: str | None
    value: Any
    time_ms: int
    id: str
    record: Record | None = None


def with_value(item: Item, value: Any) -> Item:
    """``item`` carrying ``value`` instead (built in C: much cheaper than ``_replace``)."""
    return _new_item((item[0], value, item[2], item[3], item[4]))


def with_values(items: list[Item], values: list[Any]) -> list[Item]:
    """Each item carrying the value at its place in ``values`` (same length), built in C."""
    if len(items) != len(values):
        raise ValueError(f"{len(values)} values for {len(items)} items")
    return list(map(_new_item, zip(
        map(_KEY, items), values, map(_TIME, items), map(_ID, items), map(_RECORD, items),
        strict=True,
    )))


def with_key(item: Item, key: str | None) -> Item:
    return _new_item((key, item[1], item[2], item[3], item[4]))


def new_item(key: str | None, value: Any, time_ms: int, id: str, record: Record | None) -> Item:
    return _new_item((key, value, time_ms, id, record))


_new_item = partial(tuple.__new__, Item)
_KEY, _TIME, _ID, _RECORD = (itemgetter(i) for i in (0, 2, 3, 4))  # Item fields


@dataclass
class Effects:
    """Everything one micro-batch produces; committed together at the end of the batch."""

    outputs: dict[str, list[Message]] = field(default_factory=lambda: defaultdict(list))
    sinks: list[tuple[Any, list[Item]]] = field(default_factory=list)
    stores: dict[int, PartitionStore] = field(default_factory=dict)  # id(store) -> store
    dead_letters: int = 0
    late: int = 0
    retries: int = 0
    source_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    # id(input record) -> the trace headers its outputs carry (only traced records:
    # empty, and never looked at per item, when tracing is off)
    trace: dict[int, Headers] = field(default_factory=dict)

    def emit(self, topic: str, message: Message) -> None:
        self.outputs[topic].append(message)

    def traced(self, message: Message, item: Item) -> Message:
        """``message`` (encoded from ``item``) with the trace headers of ``item``'s record."""
        extra = self.trace.get(id(item[4]))
        if extra is None:
            return message
        return Message(message[0], message[1], message[2] + extra, message[3], message[4])

    def trace_outputs(self, messages: list[Message], start: int, items: list[Item]) -> None:
        """Give ``messages[start:]`` (one per item of ``items``) their items' trace headers."""
        trace = self.trace
        for i, it in enumerate(items, start):
            extra = trace.get(id(it[4]))
            if extra is not None:
                m = messages[i]
                messages[i] = Message(m[0], m[1], m[2] + extra, m[3], m[4])

    def touch(self, store: PartitionStore) -> None:
        self.stores[id(store)] = store
