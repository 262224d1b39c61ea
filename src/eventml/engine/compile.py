"""From a :class:`Topology` (data) to runnable operator trees, one per input topic."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from eventml.deadletter.retry import RetryPolicy
from eventml.engine import graph as g
from eventml.engine import operators as ops
from eventml.engine.codecs import Decoder, decoder, encoder
from eventml.engine.errors import Guard
from eventml.schema.contract import BoundContract


@dataclass
class Plan:
    """Per input topic: how to decode its records and the operator tree they enter."""

    roots: dict[str, ops.Op]
    decoders: dict[str, Decoder]
    topics: dict[str, g.TopicRef]  # every topic to create (inputs, outputs, internal)
    stores: list[tuple[g.StoreRef, str]]  # (store, topic whose partitions it follows)
    internal: set[str]

    @property
    def inputs(self) -> list[str]:
        return sorted(self.roots)


def compile_topology(
    topology: g.Topology,
    declared: dict[str, g.TopicRef],
    policy: RetryPolicy,
    make_guard: Callable[[str, RetryPolicy], Guard],
    contracts: Mapping[str, BoundContract] | None = None,
) -> Plan:
    """``contracts`` (topic → bound data contract) make those topics' codecs validate."""
    bound = dict(contracts or {})
    built: dict[str, ops.Op] = {}
    roots: dict[str, ops.Op] = {}
    decoders: dict[str, Decoder] = {}
    topics = dict(declared)
    stores: list[tuple[g.StoreRef, str]] = []
    internal: set[str] = set()
    pending_joins: list[tuple[str, ops.StreamJoinOp]] = []
    app = topology.app

    def add_root(topic: g.TopicRef, op: ops.Op, *, is_internal: bool = False) -> None:
        if topic.name in roots:
            existing = roots[topic.name]
            existing.children.append(op)
            return
        root = ops.Pass(g.Node(f"in:{topic.name}", None))
        root.children.append(op)
        roots[topic.name] = root
        decoders[topic.name] = decoder(topic, internal=is_internal, contract=bound.get(topic.name))
        topics.setdefault(topic.name, topic)

    def guard(node: g.Node, retry: RetryPolicy | None) -> Guard:
        return make_guard(node.id, retry or policy)

    def build(node: g.Node, source_topic: str) -> ops.Op:
        op: ops.Op
        if isinstance(node, g.Map):
            op = ops.MapOp(node, guard(node, node.retry))
        elif isinstance(node, g.Filter):
            op = ops.FilterOp(node, guard(node, node.retry))
        elif isinstance(node, g.FlatMap):
            op = ops.FlatMapOp(node, guard(node, node.retry))
        elif isinstance(node, g.MapBatch):
            op = ops.MapBatchOp(node, guard(node, node.retry))
        elif isinstance(node, g.Process):
            op = ops.ProcessOp(node, guard(node, node.retry))
            stores.append((node.store, source_topic))
        elif isinstance(node, g.KeyBy):
            rep = node.repartition
            topics[rep.name] = rep
            internal.add(rep.name)
            op = ops.KeyByOp(node, guard(node, None), encoder(rep, app, internal=True))
            inner = ops.Pass(g.Node(f"{node.id}:out", node.id))
            add_root(rep, inner, is_internal=True)
            for child in topology.children(node.id):
                inner.children.append(build(child, rep.name))
            built[node.id] = op
            return op
        elif isinstance(node, g.Window):
            late = None
            if node.late is not None:
                late = encoder(node.late, app, contract=bound.get(node.late.name))
            if node.late is not None:
                topics.setdefault(node.late.name, node.late)
            op = ops.WindowOp(node, late, guard(node, None))
            stores.append((node.store, source_topic))
        elif isinstance(node, g.TableJoin):
            op = ops.TableJoinOp(node, guard(node, None))
            add_root(node.table, ops.TableUpdateOp(g.Node(f"{node.id}:table", None), node.store, node.table.name))
            stores.append((node.store, node.table.name))
        elif isinstance(node, g.StreamJoin):
            join = ops.StreamJoinOp(node)
            pending_joins.append((node.other, join))
            stores.append((node.store, source_topic))
            op = join
        elif isinstance(node, g.To):
            op = ops.ToOp(node, encoder(node.topic, app, contract=bound.get(node.topic.name)), guard(node, None))
            topics.setdefault(node.topic.name, node.topic)
        elif isinstance(node, g.Sink):
            op = ops.SinkOp(node)
        else:
            raise TypeError(f"cannot run node {node!r}")
        built[node.id] = op
        for child in topology.children(node.id):
            op.children.append(build(child, source_topic))
        return op

    for node in topology.nodes:
        if isinstance(node, g.Source):
            root = ops.Pass(node)
            built[node.id] = root
            add_root(node.topic, root)
            for child in topology.children(node.id):
                root.children.append(build(child, node.topic.name))
    for other_id, join in pending_joins:
        other = built.get(other_id)
        if other is None:
            raise ValueError(f"join {join.node.id}: unknown stream {other_id}")
        other.children.append(ops.JoinRightOp(g.Node(f"{join.node.id}:right", other_id), join))
    return Plan(roots, decoders, topics, stores, internal)
