"""One worker: a consumer-group member that runs the app's operators on micro-batches.

Each batch: poll → decode → operators (per partition task) → one commit of the
batch's outputs, dead letters, state changes and input offsets. With
``exactly_once`` that commit is one log transaction (embedded: one SQLite
transaction; Kafka: EOS v2); if it is refused (the partitions moved, or a newer
instance fenced this one), state changes are dropped and the input rewinds to the
committed offsets, so nothing is applied twice. With ``at_least_once`` outputs and
state commit first and offsets after, so a crash in between repeats work but
never loses it.
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from eventml.clock import system_clock_ms
from eventml.deadletter import dead_letter_topic
from eventml.deadletter.retry import RetryPolicy
from eventml.engine import graph as g
from eventml.engine.app import App
from eventml.engine.batching import BatchSizer
from eventml.engine.compile import Plan, compile_topology
from eventml.engine.errors import Guard, WorkerFailed
from eventml.engine.items import Effects, Item
from eventml.log import open_log
from eventml.log.base import (
    CommitFailed,
    Consumer,
    ConsumerConfig,
    Fenced,
    Log,
    LogError,
    Message,
    RebalanceListener,
    Record,
    TopicPartition,
    TopicSpec,
    Transaction,
)
from eventml.observe.tracing import ProcessSpans, process_spans
from eventml.schema.contract import BoundContract, ContractViolation
from eventml.state import backend_for
from eventml.state.base import PartitionStore, StateBackend, StoreSpec

if TYPE_CHECKING:
    from eventml.observe.worker import WorkerMetrics

_log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    """Counters since the worker started."""

    batches: int = 0
    records: int = 0
    outputs: int = 0
    dead_letters: int = 0
    late: int = 0
    retries: int = 0
    commits_refused: int = 0
    batch_sizes: list[int] = field(default_factory=list)


class _Task:
    """One assigned input partition: the operators' state for it."""

    def __init__(self, worker: Worker, tp: TopicPartition) -> None:
        self.worker = worker
        self.tp = tp
        self.partition = tp.partition

    def store(self, ref: g.StoreRef, topic: str | None = None) -> PartitionStore:
        return self.worker._store(ref, TopicPartition(topic or self.tp.topic, self.partition))

    def runtime(self, node_id: str, make: Callable[[], Any]) -> Any:
        key = (node_id, self.partition)
        rt = self.worker._runtimes.get(key)
        if rt is None:
            rt = self.worker._runtimes[key] = make()
        return rt


class Worker:
    """Runs ``app`` as member ``index`` of its consumer group (the app's name).

    ``admit`` (optional) chooses which polled records to process, e.g. a replay's time
    window; the others are skipped (committed offsets only cover processed records).
    ``dead_letter_topic`` names an input topic's dead-letter topic (``<topic>.dlq``).
    ``metrics`` (a :class:`~eventml.observe.worker.WorkerMetrics`, optional) records
    Prometheus metrics once per batch (none: nothing is recorded).

    The transactional id is ``<app>-<instance>-<index>`` (see ``Settings.instance``):
    a restarted worker with the same index fences its predecessor and aborts the
    transaction it left open. Zombies whose partitions moved are also fenced by the
    group (their offset commit is refused), whatever their id.
    """

    def __init__(
        self,
        app: App,
        *,
        index: int = 0,
        log: Log | None = None,
        clock_ms: Callable[[], int] = system_clock_ms,
        sleep: Callable[[float], None] = time.sleep,
        admit: Callable[[list[Record]], list[Record]] | None = None,
        dead_letter_topic: Callable[[str], str] = dead_letter_topic,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self._admit = admit
        self._dead_letter_topic = dead_letter_topic
        self.settings = app.settings
        self.index = index
        self.clock_ms = clock_ms
        self._sleep = sleep
        self._own_log = log is None
        self.log = log if log is not None else open_log(app.broker)
        self.stats = WorkerStats()
        self.registry: Any = None  # the schema registry, opened when a topic has a contract
        self.plan: Plan = compile_topology(
            app.topology(), app.topics, self.settings.retry, self._guard, self._bind_contracts()
        )
        self._state: StateBackend = backend_for(self.log)
        self._stores: dict[tuple[str, TopicPartition], PartitionStore] = {}
        self._runtimes: dict[tuple[str, int], Any] = {}
        self._tasks: dict[TopicPartition, _Task] = {}
        self._sizer = BatchSizer(self.settings.min_batch, self.settings.max_batch)
        self._stop = threading.Event()
        self._create_topics()
        self.eos = self.settings.guarantee == "exactly_once"
        self.instance = self.settings.instance or socket.gethostname() or "local"
        self._txn_id = f"{app.name}-{self.instance}-{index}"
        self._producer = self._make_producer()
        self.consumer: Consumer = self.log.consumer(
            app.name,
            self.plan.inputs,
            config=self._consumer_config(),
            listener=RebalanceListener(on_assign=self._on_assign, on_revoke=self._on_revoke),
        )
        if metrics is not None:
            metrics.attach(app=app.name, worker=index, instance=self.instance,
                           dead_letter_topics={t: self._dead_letter_topic(t) for t in self.plan.inputs})

    # -- setup --------------------------------------------------------------------
    def _bind_contracts(self) -> dict[str, BoundContract]:
        """Register (or look up) each topic's schema in the registry on this log."""
        topics = [t for t in self.app.topics.values() if t.schema is not None]
        if not topics:
            return {}
        from eventml.schema.registry import SchemaRegistry

        self.registry = SchemaRegistry(self.log)
        return {t.name: t.schema.bind(self.registry, t.name) for t in topics if t.schema is not None}

    def _guard(self, operator: str, policy: RetryPolicy) -> Guard:
        return Guard(operator, self.app.name, policy, clock_ms=self.clock_ms, sleep=self._sleep,
                     dead_letter_topic=self._dead_letter_topic)

    def _create_topics(self) -> None:
        plan = self.plan
        specs: list[TopicSpec] = []
        for ref in plan.topics.values():
            specs.append(TopicSpec(ref.name, ref.partitions,
                                   cleanup_policy="compact" if ref.compact else "delete"))
        for name in plan.inputs:
            if name not in plan.internal:
                specs.append(TopicSpec(self._dead_letter_topic(name), 1))
        for store, follows in plan.stores:
            partitions = plan.topics[follows].partitions if follows in plan.topics else 1
            specs.extend(self._state.required_topics(self._spec(store), partitions))
        for spec in specs:
            self.log.create_topic(spec, exist_ok=True)

    def _spec(self, ref: g.StoreRef) -> StoreSpec:
        return StoreSpec(self.app.name, ref.name, ref.ttl_ms)

    def _consumer_config(self) -> ConsumerConfig:
        s = self.settings
        extra: dict[str, str] = {}
        if s.static_membership:
            extra["group.instance.id"] = self._txn_id
        if any(isinstance(n, g.TableJoin | g.StreamJoin) for n in self.app.topology().nodes):
            # joins need partition p of both topics on the same worker
            extra["partition.assignment.strategy"] = "range"
        return ConsumerConfig(
            auto_offset_reset=s.auto_offset_reset,
            session_timeout_ms=s.session_timeout_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
            extra=extra,
        )

    def _make_producer(self) -> Any:
        if self.eos or not _is_kafka(self.log):
            suffix = "" if self.eos else "-alo"
            return self.log.transactional_producer(self._txn_id + suffix)
        return None

    # -- state ----------------------------------------------------------------------
    def _store(self, ref: g.StoreRef, tp: TopicPartition) -> PartitionStore:
        key = (ref.name, tp)
        store = self._stores.get(key)
        if store is None:
            committed = None
            if tp in self.consumer.assignment():
                committed = self.consumer.committed([tp]).get(tp)
            store = self._state.open(self._spec(ref), tp, committed)
            self._stores[key] = store
        return store

    def _forget(self, partitions: set[int] | None = None) -> None:
        """Drop cached stores and operator runtimes (all, or of some partition numbers)."""
        for key in [k for k in self._stores if partitions is None or k[1].partition in partitions]:
            self._stores.pop(key).rollback()
        for rk in [k for k in self._runtimes if partitions is None or k[1] in partitions]:
            del self._runtimes[rk]

    def _on_assign(self, tps: frozenset[TopicPartition]) -> None:
        for tp in tps:
            self._tasks[tp] = _Task(self, tp)

    def _on_revoke(self, tps: frozenset[TopicPartition]) -> None:
        for tp in tps:
            self._tasks.pop(tp, None)
        self._forget({tp.partition for tp in tps})

    # -- the loop -------------------------------------------------------------------
    def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch."""
        self._stop.set()

    def run(self, *, idle_timeout_s: float | None = None, max_records: int | None = None) -> WorkerStats:
        """Process batches until :meth:`stop`, or no record arrived for ``idle_timeout_s``,
        or ``max_records`` were processed."""
        idle_since = time.monotonic()
        tune_gc()
        try:
            while not self._stop.is_set():
                n = self.step()
                now = time.monotonic()
                if n:
                    idle_since = now
                elif idle_timeout_s is not None and now - idle_since >= idle_timeout_s:
                    break
                if max_records is not None and self.stats.records >= max_records:
                    break
        finally:
            self.close()
        return self.stats

    def step(self) -> int:
        """Poll and process one micro-batch; returns how many records it held."""
        size = self._sizer.size
        records = self.consumer.poll(size, self.settings.max_wait_ms / 1000)
        started = time.perf_counter()
        self._sizer.observe(len(records))
        if self._admit is not None and records:
            records = self._admit(records)
        m = self.metrics
        if not records:
            if m is not None:
                m.sample_lag(self.consumer, self.log, idle=True)
            return 0
        if m is not None:
            m.bind()  # model and drift reports of this batch's operators go to m
        by_tp = _by_partition(records)
        positions = {tp: recs[-1].offset + 1 for tp, recs in by_tp.items()}
        if self.settings.unsafe_commit_first:  # deliberately wrong: for checker tests only
            self.consumer.commit(positions)
        fx = Effects()
        spans = process_spans(records, fx.trace, group=self.app.name, log=self.log)
        try:
            self._process(by_tp, fx)
        except WorkerFailed as e:
            self._rewind(positions)
            if spans is not None:
                spans.end(e)
            raise
        if not (self._commit(fx, positions) if spans is None else self._commit_traced(fx, positions, spans)):
            return len(records)  # refused: rewound, nothing counted
        st = self.stats
        st.batches += 1
        st.records += len(records)
        st.dead_letters += fx.dead_letters
        st.late += fx.late
        st.retries += fx.retries
        if len(st.batch_sizes) < 10_000:
            st.batch_sizes.append(len(records))
        if m is not None:
            m.batch_committed(by_tp, fx.outputs, started, self.clock_ms())
            m.sample_lag(self.consumer, self.log, idle=False)
        return len(records)

    def _process(self, by_tp: Mapping[TopicPartition, list[Record]], fx: Effects) -> None:
        for tp, recs in by_tp.items():
            task = self._tasks.get(tp)
            if task is None:
                task = self._tasks[tp] = _Task(self, tp)
            items, failed = self.plan.decoders[tp.topic].many(recs)
            for r, e in failed:
                # a broken data contract is reported as itself, with the validation errors
                why = e.__cause__ if isinstance(e.__cause__, ContractViolation) else e
                self._guard(f"decode:{tp.topic}", self.settings.retry).dead_letter(
                    Item(None, None, r.timestamp_ms, "", r), why, 1, fx)
            self.plan.roots[tp.topic].push(items, task, fx)
            ttl_stores = [s for s in self._stores.values()
                          if s.spec.ttl_ms is not None and s.partition.partition == tp.partition]
            if ttl_stores and items:
                newest = max(it.time_ms for it in items)
                for s in ttl_stores:
                    if s.expire(newest):
                        fx.touch(s)

    def _commit(self, fx: Effects, positions: Mapping[TopicPartition, int]) -> bool:
        """Commit the batch; False if the commit was refused (and the input rewound)."""
        for fn, items in fx.sinks:  # before the commit: a repeat after a crash is deduplicated by id
            fn(items)
        try:
            txn = self._begin()
        except Fenced as e:
            raise WorkerFailed(f"worker {self._txn_id} was fenced: {e}") from e
        except LogError as e:  # e.g. the previous abort is still pending: retry the batch
            for store in fx.stores.values():
                store.rollback()
            self._rewind(positions)
            _log.warning("could not begin a transaction, retrying the batch: %s", e)
            return False
        try:
            for topic, messages in fx.outputs.items():
                if messages:
                    txn.append(topic, messages)
            for store in fx.stores.values():
                store.stage(txn, positions.get(store.partition, 0))
            if self.eos:
                txn.commit_offsets(positions)
            txn.commit()
        except (CommitFailed, Fenced) as e:
            self.stats.commits_refused += 1
            if self.metrics is not None:
                self.metrics.commit_refused()
            for store in fx.stores.values():
                store.rollback()
            self._rewind(positions)
            if isinstance(e, Fenced):
                raise WorkerFailed(f"worker {self._txn_id} was fenced: {e}") from e
            _log.info("commit refused, reprocessing from the committed offsets: %s", e)
            return False
        except BaseException:
            txn.abort()
            for store in fx.stores.values():
                store.rollback()
            raise
        for store in fx.stores.values():
            store.commit()
        self.stats.outputs += sum(map(len, fx.outputs.values()))
        if not self.eos and not self.settings.unsafe_commit_first:
            try:
                self.consumer.commit(positions)
            except CommitFailed as e:  # at-least-once: the next owner repeats this batch
                self.stats.commits_refused += 1
                if self.metrics is not None:
                    self.metrics.commit_refused()
                _log.info("offset commit refused: %s", e)
        return True

    def _commit_traced(self, fx: Effects, positions: Mapping[TopicPartition, int],
                       spans: ProcessSpans) -> bool:
        """:meth:`_commit`, then the batch's process spans end (failed if it was not committed)."""
        try:
            committed = self._commit(fx, positions)
        except BaseException as e:
            spans.end(e)
            raise
        spans.end(None if committed else "commit refused: the batch is processed again")
        return committed

    def _begin(self) -> Transaction:
        if self._producer is not None:
            return self._producer.begin(self.consumer if self.eos else None)  # type: ignore[no-any-return]
        return _DirectTransaction(self.log)

    def _rewind(self, positions: Mapping[TopicPartition, int]) -> None:
        """Forget uncommitted state and go back to the committed offsets."""
        self._forget({tp.partition for tp in positions})
        owned = self.consumer.assignment()
        tps = [tp for tp in positions if tp in owned]
        committed = self.consumer.committed(tps) if tps else {}
        for tp in tps:
            offset = committed.get(tp)
            if offset is None:
                self.consumer.seek_to_beginning([tp])
            else:
                self.consumer.seek(tp, offset)

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.unbind()
        try:
            self.consumer.close()
        except Exception as e:
            _log.warning("closing the consumer failed: %s", e)
        self._forget()
        if self._producer is not None:
            self._producer.close()
        if self._own_log:
            self.log.close()


class _DirectTransaction(Transaction):
    """At-least-once on Kafka: plain idempotent appends at commit, no transaction."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.pending: list[tuple[str, Sequence[Message]]] = []

    def append(self, topic: str, messages: Sequence[Message]) -> None:
        self.pending.append((topic, messages))

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        raise CommitFailed("at-least-once commits offsets on the consumer, after the outputs")

    def commit(self) -> None:
        for topic, messages in self.pending:
            self.log.append(topic, messages)
        self.pending.clear()

    def abort(self) -> None:
        self.pending.clear()


def _by_partition(records: Sequence[Record]) -> dict[TopicPartition, list[Record]]:
    """``records`` grouped by partition, in order of first appearance, each group in poll
    order (a poll returns runs of one partition: one key comparison per record, in C)."""
    out: dict[TopicPartition, list[Record]] = {}
    for (topic, partition), run in groupby(records, _TOPIC_PARTITION):
        tp = TopicPartition(topic, partition)
        group = out.get(tp)
        if group is None:
            out[tp] = list(run)
        else:
            group.extend(run)
    return out


_TOPIC_PARTITION = itemgetter(0, 1)  # Record: (topic, partition, ...)


def tune_gc() -> None:
    """Fewer garbage collections: a batch allocates many short-lived objects, and
    state holds many long-lived ones that the default thresholds rescan often.
    :meth:`Worker.run` calls it; a loop of its own around :meth:`Worker.step` should too
    (process-wide, idempotent)."""
    gc.freeze()  # what exists now (modules, the app) is never collected
    gen0, _, _ = gc.get_threshold()
    if gen0 < _GC_GEN0:
        gc.set_threshold(_GC_GEN0, 50, 1000)


_GC_GEN0 = 200_000


def _is_kafka(log: Log) -> bool:
    return type(log).__name__ == "KafkaLog"
