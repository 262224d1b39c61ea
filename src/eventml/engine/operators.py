"""Operators at run time: each takes a micro-batch of items for one partition task.

Compiled from the graph's frozen nodes by :mod:`eventml.engine.compile`. An
operator never does I/O: outputs, dead letters and state writes go to the
batch's :class:`Effects`, committed by the worker at the end of the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any, Protocol

from eventml.engine import graph as g
from eventml.engine.errors import FAILED, Guard
from eventml.engine.items import Effects, Item, with_key, with_value, with_values
from eventml.engine.state import KeyState
from eventml.log.base import Message
from eventml.state.base import PartitionStore
from eventml.windows import Emitted, Late, Retracted, WindowedAggregation, WindowedAggregationLogic

STREAM_TIME_KEY = "\x00stream-time"
_VALUE = itemgetter(1)  # Item.value


class Task(Protocol):
    """What an operator needs from the partition task it runs in."""

    partition: int

    def store(self, ref: g.StoreRef, topic: str | None = None) -> PartitionStore: ...

    def runtime(self, node_id: str, make: Callable[[], Any]) -> Any: ...


class Op:
    """Base: forwards a batch to the children."""

    def __init__(self, node: g.Node) -> None:
        self.node = node
        self.children: list[Op] = []

    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        raise NotImplementedError

    def forward(self, items: list[Item], task: Task, fx: Effects) -> None:
        if items:
            for child in self.children:
                child.push(items, task, fx)


class Pass(Op):
    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        self.forward(items, task, fx)


class MapOp(Op):
    def __init__(self, node: g.Map, guard: Guard) -> None:
        super().__init__(node)
        self.fn = node.fn
        self.guard = guard
        self.metadata = node.metadata

    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        if self.metadata:
            self._push_with_metadata(items, task, fx)
            return
        fn, out = self.fn, []
        for it in items:
            try:
                value = fn(it.value)
            except Exception as e:
                value = self.guard.call(fn, (it.value,), it, fx, e)
                if value is FAILED:
                    continue
            out.append(with_value(it, value))
        self.forward(out, task, fx)


    def _push_with_metadata(self, items: list[Item], task: Task, fx: Effects) -> None:
        fn, out = self.fn, []
        for it in items:
            try:
                value = fn(it.value, it)
            except Exception as e:
                value = self.guard.call(fn, (it.value, it), it, fx, e)
                if value is FAILED:
                    continue
            out.append(with_value(it, value))
        self.forward(out, task, fx)


class FilterOp(Op):
    def __init__(self, node: g.Filter, guard: Guard) -> None:
        super().__init__(node)
        self.fn = node.fn
        self.guard = guard

    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        fn, out = self.fn, []
        for it in items:
            try:
                keep = fn(it.value)
            except Exception as e:
                keep = self.guard.call(fn, (it.value,), it, fx, e)
                if keep is FAILED:
                    continue
            if keep:
                out.append(it)
        self.forward(out, task, fx)


class FlatMapOp(Op):
    def __init__(self, node: g.FlatMap, guard: Guard) -> None:
        super().__init__(node)
        self.fn = node.fn
        self.guard = guard

    def _expand(self, it: Item) -> list[Any]:
        return list(self.fn(it.value))

    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        out: list[Item] = []
        for it in items:
            try:
                values = self._expand(it)
            except Exception as e:
                values = self.guard.call(self._expand, (it,), it, fx, e)
                if values is FAILED:
                    continue
            out.extend(Item(it.key, v, it.time_ms, f"{it.id}#{i}", it.record) for i, v in enumerate(values))
        self.forward(out, task, fx)


class MapBatchOp(Op):
    """One call per batch; if it fails, the batch is retried, then split to find the culprit."""

    def __init__(self, node: g.MapBatch, guard: Guard) -> None:
        super().__init__(node)
        self.fn = node.fn
        self.guard = guard

    def _call(self, values: list[Any]) -> list[Any]:
        result = self.fn(values)
        if len(result) != len(values):
            raise ValueError(
                f"map_batch function {g._name(self.fn)} returned {len(result)} values for "
                f"{len(values)}: return exactly one per value"
            )
        return list(result)

    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        if not items:
            return
        try:
            results = self._call(list(map(_VALUE, items)))
            out = with_values(items, results)
        except Exception:  # isolate the failing values one by one
            out = []
            for it in items:
                try:
                    r = self._call([it.value])
                except Exception as e:
                    r = self.guard.call(self._call, ([it.value],), it, fx, e)
                    if r is FAILED:
                        continue
                out.append(with_value(it, r[0]))
        self.forward(out, task, fx)


class ProcessOp(Op):
    def __init__(self, node: g.Process, guard: Guard) -> None:
        super().__init__(node)
        self.fn = node.fn
        self.ref = node.store
        self.guard = guard

    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        store = task.store(self.ref)
        fn, out = self.fn, []
        changed = False
        for it in items:
            key = "" if it.key is None else it.key
            state = KeyState(store, key, it.time_ms)
            try:
                value = fn(it.value, state)
            except Exception as e:
                attempt: list[KeyState] = []

                def again(
                    v: Any, k: str = key, t: int = it.time_ms, tries: list[KeyState] = attempt
                ) -> Any:
                    tries.append(KeyState(store, k, t))  # each retry starts from the stored state
                    return fn(v, tries[-1])

                value = self.guard.call(again, (it.value,), it, fx, e)
                if value is FAILED:
                    continue
                state = attempt[-1]
            changed = state.flush() or changed
            out.append(with_value(it, value))
        if changed:
            fx.touch(store)
        self.forward(out, task, fx)


class KeyByOp(Op):
    def __init__(self, node: g.KeyBy, guard: Guard, encode: Callable[[Item], Message]) -> None:
        super().__init__(node)
        self.fn = node.fn
        self.topic = node.repartition.name
        self.encode = encode
        self.guard = guard

    def _rekeyed(self, it: Item) -> Message:
        key = self.fn(it.value)
        return self.encode(with_key(it, None if key is None else str(key)))

    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        rekeyed, emit, trace = self._rekeyed, fx.emit, fx.trace
        for it in items:
            try:
                message = rekeyed(it)
            except Exception as e:  # the key function failed, or the value cannot be pickled
                message = self.guard.call(rekeyed, (it,), it, fx, e)
                if message is FAILED:
                    continue
            emit(self.topic, fx.traced(message, it) if trace else message)


class WindowOp(Op):
    """Windowed aggregation per partition; its state (open windows, stream time) is
    snapshotted per key into the store at the end of each batch."""

    def __init__(
        self, node: g.Window, encode_late: Callable[[Item], Message] | None, guard: Guard
    ) -> None:
        super().__init__(node)
        self.guard = guard
        self.w = node
        self.config = WindowedAggregation(node.window, node.aggregator, node.grace_ms, node.emit)
        self.extract = node.value
        self.encode_late = encode_late

    def _logic(self, task: Task) -> WindowedAggregationLogic[Any, Any, Any]:
        def make() -> WindowedAggregationLogic[Any, Any, Any]:
            logic = self.config.build()
            store = task.store(self.w.store)
            stream_time = store.get(STREAM_TIME_KEY)
            logic.restore(stream_time, ((k, v) for k, v in store.range() if k != STREAM_TIME_KEY))
            return logic

        logic: WindowedAggregationLogic[Any, Any, Any] = task.runtime(self.node.id, make)
        return logic

    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        logic = self._logic(task)
        extract = self.extract
        out: list[Item] = []
        for it in items:
            if extract is None:
                value = it.value
            else:
                try:
                    value = extract(it.value)
                except Exception as e:
                    value = self.guard.call(extract, (it.value,), it, fx, e)
                    if value is FAILED:
                        continue
            for o in logic.process(it.key, it.time_ms, value):
                if isinstance(o, Emitted):
                    w = o.window
                    out.append(Item(
                        _str_key(o.key), {"start_ms": w.start_ms, "end_ms": w.end_ms, "value": o.value},
                        it.time_ms if self.w.emit == "update" else w.end_ms,
                        f"{self.node.id}:{o.key}:{w.start_ms}:{it.id}", it.record,
                    ))
                elif isinstance(o, Retracted):
                    w = o.window
                    out.append(Item(_str_key(o.key), None, it.time_ms,
                                    f"{self.node.id}:{o.key}:{w.start_ms}:-{it.id}", it.record))
                elif isinstance(o, Late):
                    fx.late += 1
                    if self.encode_late is not None and self.w.late is not None:
                        fx.emit(self.w.late.name, fx.traced(self.encode_late(it), it))
        self._save(logic, task, fx)
        self.forward(out, task, fx)

    def _save(self, logic: WindowedAggregationLogic[Any, Any, Any], task: Task, fx: Effects) -> None:
        touched = logic.take_touched()
        if not touched:
            return
        store = task.store(self.w.store)
        for key in touched:
            snap = logic.snapshot(key)
            skey = "" if key is None else str(key)
            if snap is None:
                store.delete(skey)
            else:
                store.put(skey, snap)
        store.put(STREAM_TIME_KEY, logic.stream_time_ms)
        fx.touch(store)


def _str_key(key: object) -> str | None:
    return None if key is None else str(key)


class TableUpdateOp(Op):
    """Materializes a table topic: the latest value per key (None deletes)."""

    def __init__(self, node: g.Node, ref: g.StoreRef, table: str) -> None:
        super().__init__(node)
        self.ref, self.table = ref, table

    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        store = task.store(self.ref, self.table)
        for it in items:
            key = "" if it.key is None else it.key
            if it.value is None:
                store.delete(key)
            else:
                store.put(key, it.value, time_ms=it.time_ms)
        fx.touch(store)


class TableJoinOp(Op):
    def __init__(self, node: g.TableJoin, guard: Guard) -> None:
        super().__init__(node)
        self.j = node
        self.guard = guard

    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        store = task.store(self.j.store, self.j.table.name)
        fn, out = self.j.fn, []
        for it in items:
            row = store.get("" if it.key is None else it.key)
            try:
                value = fn(it.value, row)
            except Exception as e:
                value = self.guard.call(fn, (it.value, row), it, fx, e)
                if value is FAILED:
                    continue
            out.append(with_value(it, value))
        self.forward(out, task, fx)


class StreamJoinOp(Op):
    """Inner join of two co-partitioned streams within ``within_ms`` of event time.

    Each key keeps both sides' recent items in the store; an item is joined with
    the other side's buffered items close enough in time, then buffered itself.
    Items older than ``stream time - within_ms`` are dropped from the buffers.
    """

    def __init__(self, node: g.StreamJoin) -> None:
        super().__init__(node)
        self.j = node

    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        self._side(items, 0, task, fx)

    def push_right(self, items: list[Item], task: Task, fx: Effects) -> None:
        self._side(items, 1, task, fx)

    def _side(self, items: list[Item], side: int, task: Task, fx: Effects) -> None:
        store = task.store(self.j.store, f"{self.j.store.name}")
        within, fn = self.j.within_ms, self.j.fn
        horizon = store.get(STREAM_TIME_KEY) or 0
        out = []
        for it in items:
            key = "" if it.key is None else it.key
            horizon = max(horizon, it.time_ms)
            buf = store.get(key) or ((), ())
            mine, other = list(buf[side]), buf[1 - side]
            for t, oid, ov in other:
                if abs(t - it.time_ms) <= within:
                    left, right = (it.value, ov) if side == 0 else (ov, it.value)
                    lid, rid = (it.id, oid) if side == 0 else (oid, it.id)
                    out.append(Item(it.key, fn(left, right), max(t, it.time_ms), f"{lid}+{rid}", it.record))
            mine.append((it.time_ms, it.id, it.value))
            cutoff = horizon - within
            kept_mine = tuple(e for e in mine if e[0] >= cutoff)
            kept_other = tuple(e for e in other if e[0] >= cutoff)
            new = (kept_mine, kept_other) if side == 0 else (kept_other, kept_mine)
            if new[0] or new[1]:
                store.put(key, new, time_ms=it.time_ms)
            else:
                store.delete(key)
        store.put(STREAM_TIME_KEY, horizon)
        fx.touch(store)
        self.forward(out, task, fx)


class JoinRightOp(Op):
    def __init__(self, node: g.Node, join: StreamJoinOp) -> None:
        super().__init__(node)
        self.join = join

    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        self.join.push_right(items, task, fx)


class ToOp(Op):
    """Encodes items for a topic; one that cannot be encoded (a value JSON cannot hold,
    a missing key field) is dead-lettered like any operator failure."""

    def __init__(self, node: g.To, encode: Callable[[Item], Message], guard: Guard) -> None:
        super().__init__(node)
        self.topic = node.topic.name
        self.encode = encode
        self.guard = guard

    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        out = fx.outputs[self.topic]
        start = len(out)
        try:
            out.extend(map(self.encode, items))
        except Exception:  # drop the partial extend, then find the culprits one by one
            del out[start:]
            kept: list[Item] = []
            for it in items:
                try:
                    message = self.encode(it)
                except Exception as e:
                    message = self.guard.call(self.encode, (it,), it, fx, e)
                    if message is FAILED:
                        continue
                out.append(message)
                kept.append(it)
            items = kept
        if fx.trace:  # outputs descend from their input record's process span
            fx.trace_outputs(out, start, items)
        self.forward(items, task, fx)


class SinkOp(Op):
    def __init__(self, node: g.Sink) -> None:
        super().__init__(node)
        self.fn = node.fn

    def push(self, items: list[Item], task: Task, fx: Effects) -> None:
        fx.sinks.append((self.fn, items))
        self.forward(items, task, fx)
