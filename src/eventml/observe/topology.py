"""An app's topology as a drawable graph: topics, sources, operators and sinks, in layers.

Pure: :func:`pipeline_graph` turns a :class:`~eventml.engine.Topology` into vertices
and edges; the dashboard draws them left to right by :attr:`GraphNode.layer`. An edge
into a topic carries that topic's append rate, an edge out of a topic the rate at which
the app's consumer group commits it (:func:`edge_rates`), so every figure on the graph
is measured on the log, not estimated.

>>> from eventml.engine import App
>>> app = App("demo", broker="memory://")
>>> app.stream(app.topic("clicks")).filter(bool).to(app.topic("kept"))
Stream(app='demo', node='to-3')
>>> g = pipeline_graph(app.topology())
>>> [(e.source, e.target) for e in g.edges]
[('topic:clicks', 'source-1'), ('source-1', 'filter-2'), ('filter-2', 'topic:kept')]
>>> [n.layer for n in g.nodes]
[0, 1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from eventml.engine import graph as g

Kind = Literal["topic", "source", "operator", "sink"]
Direction = Literal["into", "out_of", "within"]
TOPIC_PREFIX = "topic:"


@dataclass(frozen=True, slots=True)
class GraphNode:
    """A vertex: ``id`` unique in the graph (topics are ``topic:NAME``)."""

    id: str
    kind: Kind
    label: str
    detail: str = ""
    layer: int = 0


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """``source`` feeds ``target``; ``topic`` is set on edges into or out of a topic."""

    source: str
    target: str
    topic: str | None = None
    direction: Direction = "within"


@dataclass(frozen=True, slots=True)
class PipelineGraph:
    """The app's graph; ``group`` is its consumer group (the app's name)."""

    app: str
    group: str
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]

    @property
    def topics_read(self) -> list[str]:
        return sorted({e.topic for e in self.edges if e.topic and e.direction == "out_of"})

    @property
    def topics_written(self) -> list[str]:
        return sorted({e.topic for e in self.edges if e.topic and e.direction == "into"})


def topic_id(name: str) -> str:
    return TOPIC_PREFIX + name


def pipeline_graph(topology: g.Topology) -> PipelineGraph:
    """The graph of ``topology`` (see the module docstring). ``To`` nodes become edges
    into their topic; a ``KeyBy`` goes through its repartition topic."""
    vertices: dict[str, GraphNode] = {}
    edges: list[GraphEdge] = []
    via: dict[str, str] = {}  # node id -> the vertex its children read from

    def topic(name: str) -> str:
        vid = topic_id(name)
        vertices.setdefault(vid, GraphNode(vid, "topic", name))
        return vid

    def into(src: str, name: str) -> None:
        edges.append(GraphEdge(src, topic(name), name, "into"))

    def out_of(name: str, dst: str) -> None:
        edges.append(GraphEdge(topic(name), dst, name, "out_of"))

    for node in topology.nodes:
        parent = None if node.parent is None else via.get(node.parent, node.parent)
        if isinstance(node, g.To):
            if parent is not None:
                into(parent, node.topic.name)
            via[node.id] = topic_id(node.topic.name)
            continue
        if isinstance(node, g.Source):
            topic(node.topic.name)  # the topic left of its source
        kind: Kind = ("source" if isinstance(node, g.Source)
                      else "sink" if isinstance(node, g.Sink) else "operator")
        label = node.topic.name if isinstance(node, g.Source) else node.label
        vertices[node.id] = GraphNode(node.id, kind, label, node.detail())
        if isinstance(node, g.Source):
            out_of(node.topic.name, node.id)
        elif parent is not None:
            edges.append(GraphEdge(parent, node.id))
        if isinstance(node, g.KeyBy):
            into(node.id, node.repartition.name)
            via[node.id] = topic_id(node.repartition.name)
            vertices[topic_id(node.repartition.name)] = GraphNode(
                topic_id(node.repartition.name), "topic", node.repartition.name)
        if isinstance(node, g.Window) and node.late is not None:
            into(node.id, node.late.name)
        if isinstance(node, g.TableJoin):
            out_of(node.table.name, node.id)
        if isinstance(node, g.StreamJoin):
            edges.append(GraphEdge(via.get(node.other, node.other), node.id))
    layers = _layers(list(vertices), edges)
    nodes = tuple(GraphNode(v.id, v.kind, v.label, v.detail, layers[v.id]) for v in vertices.values())
    return PipelineGraph(topology.app, topology.app, nodes, tuple(edges))


def _layers(ids: list[str], edges: list[GraphEdge]) -> dict[str, int]:
    """Longest-path layering (a vertex one right of its furthest parent); bounded, so a
    cycle (an app reading a topic it writes) cannot loop forever."""
    layer = dict.fromkeys(ids, 0)
    for _ in range(len(ids)):
        moved = False
        for e in edges:
            if (e.source in layer and e.target in layer and layer[e.target] <= layer[e.source]
                    and layer[e.source] + 1 < len(ids)):
                layer[e.target] = layer[e.source] + 1
                moved = True
        if not moved:
            break
    return layer


def edge_rates(graph: PipelineGraph, append_eps: Mapping[str, float | None],
               consume_eps: Mapping[str, float | None]) -> list[float | None]:
    """Per edge of ``graph`` (in order): events/s into a topic (its append rate), out of a
    topic (the group's commit rate on it), ``None`` between operators (not measured)."""
    rates: list[float | None] = []
    for e in graph.edges:
        if e.topic is None:
            rates.append(None)
        elif e.direction == "into":
            rates.append(append_eps.get(e.topic))
        else:
            rates.append(consume_eps.get(e.topic))
    return rates
