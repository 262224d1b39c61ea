"""The stream graph as data: frozen nodes, each naming its parent.

An :class:`eventml.engine.App` builds these through its fluent stream API; the
runtime compiles them into batch functions. Being plain data, a topology can be
printed (``eventml describe``) and compared in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from eventml.deadletter.retry import RetryPolicy
from eventml.schema.contract import Contract
from eventml.windows import Aggregator, EmitMode, WindowSpec

Codec = Literal["json", "bytes", "str"]


@dataclass(frozen=True, slots=True)
class TopicRef:
    """A topic the app reads or writes, and how its values and keys are coded.

    ``key`` names the field of a (dict) value that keys records written to the
    topic, or is a function of the value; ``None`` keeps the item's key.
    ``time`` likewise names the event-time field (milliseconds) of values read
    from it; by default the record timestamp (the CloudEvents ``time``) is used.
    """

    name: str
    partitions: int = 1
    value: Codec = "json"
    key: str | Callable[[Any], Any] | None = None
    time: str | Callable[[Any], int] | None = None
    event_type: str | None = None  # CloudEvents type of events written here
    compact: bool = False
    schema: Contract | None = None  # data contract: validated on write and read

    def __post_init__(self) -> None:
        if self.value not in ("json", "bytes", "str"):
            raise ValueError(f"topic {self.name!r}: value must be 'json', 'bytes' or 'str'")
        if self.partitions < 1:
            raise ValueError(f"topic {self.name!r}: partitions must be >= 1")
        if self.schema is not None and self.value != "json":
            raise ValueError(f"topic {self.name!r}: a schema needs value='json' (Python values)")


@dataclass(frozen=True, slots=True)
class StoreRef:
    """A keyed state store of the app; ``ttl_ms`` is in event time."""

    name: str
    ttl_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Node:
    """Base of every node: an id unique in the app, and the parent it reads from."""

    id: str
    parent: str | None

    @property
    def label(self) -> str:
        return type(self).__name__.lower()

    def detail(self) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class Source(Node):
    topic: TopicRef

    def detail(self) -> str:
        return self.topic.name


@dataclass(frozen=True, slots=True)
class Map(Node):
    fn: Callable[..., Any]
    retry: RetryPolicy | None = None
    metadata: bool = False  # call fn(value, item): the item's key, time and id too

    def detail(self) -> str:
        return _name(self.fn)


@dataclass(frozen=True, slots=True)
class Filter(Node):
    fn: Callable[[Any], bool]
    retry: RetryPolicy | None = None

    def detail(self) -> str:
        return _name(self.fn)


@dataclass(frozen=True, slots=True)
class FlatMap(Node):
    fn: Callable[[Any], Any]
    retry: RetryPolicy | None = None

    def detail(self) -> str:
        return _name(self.fn)


@dataclass(frozen=True, slots=True)
class MapBatch(Node):
    """``fn(values: list) -> list`` of the same length, over a whole micro-batch."""

    fn: Callable[[list[Any]], Any]
    retry: RetryPolicy | None = None

    def detail(self) -> str:
        return _name(self.fn)


@dataclass(frozen=True, slots=True)
class Process(Node):
    """``fn(value, state) -> value`` with the key's state (a dict-like handle)."""

    fn: Callable[[Any, Any], Any]
    store: StoreRef
    retry: RetryPolicy | None = None

    def detail(self) -> str:
        return f"{_name(self.fn)} state={self.store.name}"


@dataclass(frozen=True, slots=True)
class KeyBy(Node):
    """Re-key; records go through ``repartition`` so each key lands on one partition."""

    fn: Callable[[Any], Any]
    repartition: TopicRef

    def detail(self) -> str:
        return f"{_name(self.fn)} via {self.repartition.name}"


@dataclass(frozen=True, slots=True)
class Window(Node):
    window: WindowSpec
    aggregator: Aggregator[Any, Any, Any]
    store: StoreRef
    grace_ms: int = 0
    emit: EmitMode = "update"
    value: Callable[[Any], Any] | None = None
    late: TopicRef | None = None

    def detail(self) -> str:
        late = f" late->{self.late.name}" if self.late else ""
        return f"{self.window!r} {type(self.aggregator).__name__} emit={self.emit} grace={self.grace_ms}ms{late}"


@dataclass(frozen=True, slots=True)
class TableJoin(Node):
    """Enrich each item with the latest value of its key in ``table`` (a compacted topic)."""

    table: TopicRef
    store: StoreRef
    fn: Callable[[Any, Any], Any]

    def detail(self) -> str:
        return f"{self.table.name} {_name(self.fn)}"


@dataclass(frozen=True, slots=True)
class StreamJoin(Node):
    """Join with another stream of the same keys: pairs whose times differ by <= ``within_ms``."""

    other: str  # the other side's node id
    within_ms: int
    store: StoreRef
    fn: Callable[[Any, Any], Any]

    def detail(self) -> str:
        return f"with {self.other} within {self.within_ms}ms {_name(self.fn)}"


@dataclass(frozen=True, slots=True)
class To(Node):
    topic: TopicRef

    def detail(self) -> str:
        return self.topic.name


@dataclass(frozen=True, slots=True)
class Sink(Node):
    """``fn(items)`` for a batch of output :class:`~eventml.engine.Item`; called after the
    batch committed (at-least-once: make it idempotent by ``item.id``)."""

    fn: Callable[[list[Any]], None]

    def detail(self) -> str:
        return _name(self.fn)


@dataclass(frozen=True, slots=True)
class Topology:
    """An app's nodes in the order they were added."""

    app: str
    nodes: tuple[Node, ...] = field(default_factory=tuple)

    def children(self, node_id: str | None) -> list[Node]:
        return [n for n in self.nodes if n.parent == node_id]

    def sources(self) -> list[Source]:
        return [n for n in self.nodes if isinstance(n, Source)]

    def describe(self) -> str:
        """The topology as an indented tree, one node per line."""
        lines = [f"app {self.app}"]

        def walk(node: Node, depth: int) -> None:
            detail = node.detail()
            lines.append(f"{'  ' * depth}{node.label} [{node.id}]{' ' + detail if detail else ''}")
            for child in self.children(node.id):
                walk(child, depth + 1)

        for root in self.children(None):
            walk(root, 1)
        return "\n".join(lines)


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__
