"""An app re-targeted into a sandbox (pure): same operators, its own name and outputs.

Every topic the app writes (``to`` outputs, late-record topics, repartition topics)
becomes ``<sandbox>.<topic>``; a stream that reads a topic the app itself writes
reads the sandbox copy. The app is renamed ``<sandbox>.<app>``, which is also its
consumer group and the namespace of its state stores and changelogs, so a replay
never shares offsets, state or outputs with the live app. Input records that fail
go to ``<sandbox>.<input>.dlq``. ``sink`` callbacks are side effects outside the
log, so the sandbox replaces them with no-ops (and counts them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from eventml.deadletter import dead_letter_topic
from eventml.engine import App
from eventml.engine import graph as g
from eventml.replay._errors import ReplayError

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


@dataclass(frozen=True, slots=True)
class Sandbox:
    """``app`` re-targeted into sandbox ``name`` (see :func:`sandbox_app`)."""

    name: str
    app: App
    renamed: Mapping[str, str]  # live topic the app writes -> its sandbox topic
    sources: tuple[str, ...]  # live topics streams read: bounded by the replay window
    tables: tuple[str, ...]  # live topics joined as tables: read up to the window's end
    internal: tuple[str, ...]  # sandbox topics the app reads back (repartition, loops)
    stores: tuple[g.StoreRef, ...]
    sinks_disabled: int

    @property
    def prefix(self) -> str:
        return f"{self.name}."

    def dead_letter_topic(self, topic: str) -> str:
        """Where the sandbox dead-letters records of ``topic`` (never a live ``.dlq``)."""
        inside = topic if topic.startswith(self.prefix) else self.prefix + topic
        return dead_letter_topic(inside)

    def output_topics(self) -> list[str]:
        """The sandbox topics a run writes (state changelogs aside)."""
        dlqs = [self.dead_letter_topic(t) for t in (*self.sources, *self.tables)]
        return sorted({*self.renamed.values(), *dlqs})


def check_sandbox_name(sandbox: str, topics: list[str] | tuple[str, ...] = ()) -> None:
    """Raise :class:`ReplayError` unless ``sandbox`` is a valid name that no ``topics``
    (the live app's) use as their first dotted part."""
    if not _NAME.match(sandbox):
        raise ReplayError(f"invalid sandbox name {sandbox!r}: use 1-100 characters of [a-zA-Z0-9_-]")
    for topic in topics:
        if topic == sandbox or topic.split(".", 1)[0] == sandbox:
            raise ReplayError(
                f"sandbox {sandbox!r} is the prefix of live topic {topic!r}: choose another name"
            )


def sandbox_app(app: App, sandbox: str) -> Sandbox:
    """``app`` re-targeted into ``sandbox``: outputs, internal topics, group and state
    renamed (see the module doc); the live app is not changed."""
    topology = app.topology()
    written = _written(topology.nodes)
    check_sandbox_name(sandbox, sorted({*app.topics, *written}))
    prefix = f"{sandbox}."

    def move(ref: g.TopicRef) -> g.TopicRef:
        if ref.name not in written:
            return ref
        # keep the live CloudEvents type: by default it derives from the app and topic names
        kind = ref.event_type or f"{app.name}.{ref.name}"
        return replace(ref, name=prefix + ref.name, event_type=kind)

    nodes = tuple(_retarget(node, move) for node in topology.nodes)
    name = f"{sandbox}.{app.name}"
    topics = {move(ref).name: move(ref) for ref in app.topics.values()}
    for node in nodes:  # every topic a node names is declared
        for ref in _refs(node):
            topics.setdefault(ref.name, ref)
    settings = replace(
        app.settings, auto_offset_reset="earliest", static_membership=False, instance="replay",
        unsafe_commit_first=False,
    )
    clone = App.from_topology(g.Topology(name, nodes), topics, settings)
    read = [n.topic.name for n in topology.nodes if isinstance(n, g.Source)]
    joined = [n.table.name for n in topology.nodes if isinstance(n, g.TableJoin)]
    read += [n.repartition.name for n in topology.nodes if isinstance(n, g.KeyBy)]
    sources = tuple(sorted({t for t in read if t not in written}))
    tables = tuple(sorted({t for t in joined if t not in written and t not in sources}))
    internal = tuple(sorted({prefix + t for t in (*read, *joined) if t in written}))
    stores = tuple(_unique(s for n in topology.nodes if (s := getattr(n, "store", None)) is not None))
    sinks = sum(isinstance(n, g.Sink) for n in topology.nodes)
    return Sandbox(
        sandbox, clone, {t: prefix + t for t in sorted(written)}, sources, tables, internal,
        stores, sinks,
    )


def _written(nodes: tuple[g.Node, ...]) -> set[str]:
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, g.To):
            out.add(node.topic.name)
        elif isinstance(node, g.KeyBy):
            out.add(node.repartition.name)
        elif isinstance(node, g.Window) and node.late is not None:
            out.add(node.late.name)
    return out


def _retarget(node: g.Node, move: Any) -> g.Node:
    if isinstance(node, g.Source | g.To):
        return replace(node, topic=move(node.topic))
    if isinstance(node, g.KeyBy):
        return replace(node, repartition=move(node.repartition))
    if isinstance(node, g.Window) and node.late is not None:
        return replace(node, late=move(node.late))
    if isinstance(node, g.TableJoin):
        return replace(node, table=move(node.table))
    if isinstance(node, g.Sink):
        return replace(node, fn=_disabled_sink)
    return node


def _refs(node: g.Node) -> list[g.TopicRef]:
    refs = [getattr(node, a, None) for a in ("topic", "repartition", "late", "table")]
    return [r for r in refs if isinstance(r, g.TopicRef)]


def _unique(stores: Any) -> list[g.StoreRef]:
    seen: dict[str, g.StoreRef] = {}
    for store in stores:
        seen.setdefault(store.name, store)
    return list(seen.values())


def _disabled_sink(items: list[Any]) -> None:
    """A replay calls no sink: sinks act outside the log (e-mails, databases)."""
