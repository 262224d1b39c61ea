"""The declarative API: an :class:`App` of topics and streams, built into a :class:`Topology`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from eventml.deadletter.retry import RetryPolicy
from eventml.engine import graph as g
from eventml.schema.contract import contract_of
from eventml.windows import Aggregator, EmitMode, WindowSpec

Guarantee = Literal["exactly_once", "at_least_once"]


@dataclass(frozen=True, slots=True)
class Settings:
    """How workers run an app.

    Batches hold up to ``max_batch`` records, waiting at most ``max_wait_ms`` for
    them; the runner shrinks batches toward ``min_batch`` while caught up (low
    latency) and grows them toward ``max_batch`` while lagging (throughput).
    """

    broker: str | None = None  # default: $EVENTML_BROKER, else the embedded log
    guarantee: Guarantee = "exactly_once"
    max_batch: int = 5000
    min_batch: int = 100
    max_wait_ms: int = 5
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    session_timeout_ms: int = 6000
    max_poll_interval_ms: int = 10_000
    static_membership: bool = False  # Kafka group.instance.id per worker (instance + index)
    instance: str | None = None
    """Names this machine's workers (default: the host name). With the worker index it
    makes each worker's transactional id ``<app>-<instance>-<index>``: stable across
    restarts, so a restarted worker aborts what its dead predecessor left open, and
    distinct across machines. Give each ``eventml run`` on one host its own instance."""
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    unsafe_commit_first: bool = False
    """Deliberately wrong (commits input offsets before processing): only for testing
    that delivery checkers catch lost events."""

    def __post_init__(self) -> None:
        if self.guarantee not in ("exactly_once", "at_least_once"):
            raise ValueError(
                f"guarantee must be 'exactly_once' or 'at_least_once', got {self.guarantee!r}"
            )
        if not 1 <= self.min_batch <= self.max_batch:
            raise ValueError(f"need 1 <= min_batch <= max_batch, got {self.min_batch}, {self.max_batch}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")


class App:
    """A named stream-processing application: its topics, streams and settings.

    >>> app = App("demo", broker="memory://")
    >>> clicks = app.topic("clicks", key="user")
    >>> app.stream(clicks).filter(lambda v: v["n"] > 0).to(app.topic("positive"))
    Stream(app='demo', node='to-3')
    >>> print(app.topology().describe())
    app demo
      source [source-1] clicks
        filter [filter-2] <lambda>
          to [to-3] positive

    The app's name is its consumer group and the prefix of its internal topics
    (repartition, changelog).
    """

    def __init__(self, name: str, *, broker: str | None = None, **settings: Any) -> None:
        if not name or not all(c.isalnum() or c in "._-" for c in name):
            raise ValueError(f"invalid app name {name!r}: use [a-zA-Z0-9._-]")
        self.name = name
        self.settings = Settings(broker=broker, **settings)
        self._nodes: list[g.Node] = []
        self._topics: dict[str, g.TopicRef] = {}
        self._count = 0

    # -- topics -----------------------------------------------------------------
    def topic(
        self,
        name: str,
        *,
        partitions: int = 1,
        value: g.Codec = "json",
        key: str | Callable[[Any], Any] | None = None,
        time: str | Callable[[Any], int] | None = None,
        event_type: str | None = None,
        compact: bool = False,
        schema: Any = None,
    ) -> g.TopicRef:
        """Declare a topic (created with ``partitions`` if missing when the app runs).

        ``schema`` binds a data contract (see :func:`eventml.schema.contract_of`): a JSON
        Schema or Avro schema (dict or text), a pydantic model, a dataclass, or a
        :class:`~eventml.schema.Contract`. Values written to the topic are validated
        first; values read are validated (and upcast from older schema versions), and
        those that fail go to the dead-letter topic with the validation errors.
        """
        contract = None if schema is None else contract_of(schema)
        ref = g.TopicRef(name, partitions, value, key, time, event_type, compact, contract)
        known = self._topics.get(name)
        if known is not None and known != ref:
            raise ValueError(f"topic {name!r} is already declared differently: {known}")
        self._topics[name] = ref
        return ref

    @property
    def topics(self) -> dict[str, g.TopicRef]:
        return dict(self._topics)

    @property
    def broker(self) -> str:
        from eventml.log import DEFAULT_URL

        return self.settings.broker or os.environ.get("EVENTML_BROKER") or DEFAULT_URL

    def configure(self, **settings: Any) -> None:
        """Change settings (e.g. ``broker`` or ``guarantee``) before running."""
        self.settings = replace(self.settings, **settings)

    # -- streams ------------------------------------------------------------------
    def stream(self, topic: g.TopicRef | str) -> Stream:
        """A stream of the records of ``topic``."""
        ref = self._topics.get(topic) if isinstance(topic, str) else topic
        if ref is None:
            raise ValueError(f"unknown topic {topic!r}: declare it with app.topic(...) first")
        self._topics.setdefault(ref.name, ref)
        return Stream(self, self._add(g.Source, None, topic=ref))

    def _add(self, kind: type[g.Node], parent: str | None, **fields: Any) -> str:
        self._count += 1
        node_id = f"{kind.__name__.lower()}-{self._count}"
        self._nodes.append(kind(id=node_id, parent=parent, **fields))
        return node_id

    def topology(self) -> g.Topology:
        return g.Topology(self.name, tuple(self._nodes))

    @classmethod
    def from_topology(
        cls, topology: g.Topology, topics: Mapping[str, g.TopicRef], settings: Settings
    ) -> App:
        """The app named ``topology.app`` that runs ``topology`` (e.g. a re-targeted copy
        of another app's, as :func:`eventml.replay.replay` makes); ``topics`` are its
        declared topics."""
        app = cls(topology.app)
        app.settings = settings
        app._nodes = list(topology.nodes)
        app._topics = dict(topics)
        app._count = len(app._nodes)
        return app

    def run(self, *, workers: int = 1, **options: Any) -> None:
        """Run until interrupted (``workers`` > 1 starts that many processes)."""
        from eventml.engine.supervisor import run_app

        run_app(self, workers=workers, **options)

    def __repr__(self) -> str:
        return f"App({self.name!r}, broker={self.broker!r})"


class Stream:
    """A handle on one node of the app's graph; each operator returns a new handle."""

    def __init__(self, app: App, node: str) -> None:
        self.app = app
        self.node = node

    def _then(self, kind: type[g.Node], **fields: Any) -> Stream:
        return Stream(self.app, self.app._add(kind, self.node, **fields))

    def map(
        self, fn: Callable[..., Any], *, metadata: bool = False, retry: RetryPolicy | None = None
    ) -> Stream:
        """Each value becomes ``fn(value)``; with ``metadata=True``, ``fn(value, item)``
        where ``item`` (an :class:`~eventml.engine.Item`) has the key, event time and id."""
        return self._then(g.Map, fn=fn, retry=retry, metadata=metadata)

    def filter(self, fn: Callable[[Any], bool], *, retry: RetryPolicy | None = None) -> Stream:
        """Keep the values for which ``fn(value)`` is true."""
        return self._then(g.Filter, fn=fn, retry=retry)

    def flat_map(self, fn: Callable[[Any], Any], *, retry: RetryPolicy | None = None) -> Stream:
        """Each value becomes the values of the iterable ``fn(value)``."""
        return self._then(g.FlatMap, fn=fn, retry=retry)

    def map_batch(
        self, fn: Callable[[list[Any]], Any], *, retry: RetryPolicy | None = None
    ) -> Stream:
        """``fn(values)`` over the whole micro-batch returns one new value per value
        (a list, tuple or numpy array); for vectorized features and model scoring."""
        return self._then(g.MapBatch, fn=fn, retry=retry)

    def predict(self, model: Any, *, features: Sequence[str], **options: Any) -> Stream:
        """Score each micro-batch with ``model`` in one call: see :func:`eventml.ml.inference.predict`.

        Options include ``registry=`` (``"fraud@champion"`` then follows the alias: hot swap at
        batch boundaries), ``shadow=``, ``canary=(model, fraction)``, ``decision=`` (a
        threshold or a function of the score) and ``predictions="topic"`` (every prediction
        logged as a ``model.prediction`` event, in the batch's transaction)."""
        from eventml.ml.inference import predict

        return predict(self, model, features=features, **options)

    def process(
        self,
        fn: Callable[[Any, Any], Any],
        *,
        state: str | g.StoreRef | None = None,
        retry: RetryPolicy | None = None,
    ) -> Stream:
        """``fn(value, state)`` with a dict-like handle on the key's state; returns the new value.

        State commits with the batch (exactly-once) and moves with its partition.
        """
        store = _store(state, f"process-{self.app._count + 1}")
        return self._then(g.Process, fn=fn, store=store, retry=retry)

    def key_by(self, fn: Callable[[Any], Any] | str, *, partitions: int | None = None) -> Stream:
        """Re-key by ``fn(value)`` (or a field name); records pass through a repartition topic."""
        key_fn = _field(fn) if isinstance(fn, str) else fn
        n = partitions or max(t.partitions for t in self.app._topics.values())
        topic = g.TopicRef(f"{self.app.name}-keyby-{self.app._count + 1}-repartition", n)
        return self._then(g.KeyBy, fn=key_fn, repartition=topic)

    def window(
        self,
        window: WindowSpec,
        *,
        grace_ms: int = 0,
        emit: EmitMode = "update",
        late_to: g.TopicRef | None = None,
        store: str | None = None,
    ) -> WindowedStream:
        """Group by key and event-time window; finish with :meth:`WindowedStream.aggregate`."""
        return WindowedStream(self, window, grace_ms, emit, late_to, store)

    def join_table(
        self,
        table: g.TopicRef,
        fn: Callable[[Any, Any], Any] = lambda value, row: (value, row),
    ) -> Stream:
        """Enrich each value with the latest ``table`` row of its key: ``fn(value, row_or_None)``.

        ``table`` must be co-partitioned with this stream (same key, same partition count).
        """
        self.app._topics.setdefault(table.name, table)
        store = g.StoreRef(f"table-{table.name}")
        return self._then(g.TableJoin, table=table, store=store, fn=fn)

    def join(
        self,
        other: Stream,
        *,
        within_ms: int,
        fn: Callable[[Any, Any], Any] = lambda left, right: (left, right),
    ) -> Stream:
        """Inner join with ``other`` (same keys, co-partitioned): ``fn(left, right)`` for each
        pair whose event times differ by at most ``within_ms``."""
        if within_ms < 0:
            raise ValueError(f"within_ms must be >= 0, got {within_ms}")
        store = g.StoreRef(f"join-{self.app._count + 1}", ttl_ms=None)
        return self._then(g.StreamJoin, other=other.node, within_ms=within_ms, store=store, fn=fn)

    def to(self, topic: g.TopicRef | str) -> Stream:
        """Append the values to ``topic`` (inside the batch's transaction)."""
        ref = self.app.topic(topic) if isinstance(topic, str) else topic
        self.app._topics.setdefault(ref.name, ref)
        return self._then(g.To, topic=ref)

    def sink(self, fn: Callable[[list[Any]], None]) -> Stream:
        """Call ``fn(items)`` with each committed batch's items (make it idempotent by ``item.id``)."""
        return self._then(g.Sink, fn=fn)

    def branch(self, *predicates: Callable[[Any], bool]) -> list[Stream]:
        """One stream per predicate (a value goes to every branch it matches)."""
        return [self.filter(p) for p in predicates]

    def __repr__(self) -> str:
        return f"Stream(app={self.app.name!r}, node={self.node!r})"


class WindowedStream:
    def __init__(
        self,
        stream: Stream,
        window: WindowSpec,
        grace_ms: int,
        emit: EmitMode,
        late_to: g.TopicRef | None,
        store: str | None,
    ) -> None:
        self._stream = stream
        self._args = (window, grace_ms, emit, late_to, store)

    def aggregate(
        self, aggregator: Aggregator[Any, Any, Any], *, value: Callable[[Any], Any] | str | None = None
    ) -> Stream:
        """Aggregate ``value(v)`` (default: the value itself) per key and window.

        Emits ``{"start_ms", "end_ms", "value"}`` keyed like the input; late records go
        to ``late_to`` if given (else they are counted and dropped, as Kafka Streams does).
        """
        window, grace_ms, emit, late_to, store = self._args
        s = self._stream
        if late_to is not None:
            s.app._topics.setdefault(late_to.name, late_to)
        ref = g.StoreRef(store or f"window-{s.app._count + 1}")
        extract = _field(value) if isinstance(value, str) else value
        return s._then(
            g.Window, window=window, aggregator=aggregator, store=ref, grace_ms=grace_ms,
            emit=emit, value=extract, late=late_to,
        )


def _store(state: str | g.StoreRef | None, default: str) -> g.StoreRef:
    if isinstance(state, g.StoreRef):
        return state
    return g.StoreRef(state or default)


def _field(name: str) -> Callable[[Any], Any]:
    def get(value: Any) -> Any:
        return value[name]

    get.__qualname__ = f"field({name!r})"
    return get
