"""``replay``: run an app over a time window of history, into a sandbox (thin I/O).

The replay fixes each input partition's offset range up front, commits the start
offsets for the sandbox's consumer group, then steps one worker of the sandboxed
app (see :mod:`eventml.replay._sandbox`) with an ``admit`` filter that keeps the
window's records (see :mod:`eventml.replay._bounds`), until every input partition
has been read to its end offset and the sandbox topics the app reads back are
drained. State starts empty: windows and per-key state warm up from the window's
start, so decisions right after it may differ from the live run's.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eventml.engine import App, Worker
from eventml.engine.worker import tune_gc
from eventml.log.base import ConsumerConfig, Log, TopicPartition, TopicSpec
from eventml.replay._bounds import Admission
from eventml.replay._errors import ReplayError
from eventml.replay._read import reached, require_topics
from eventml.replay._sandbox import Sandbox, sandbox_app
from eventml.replay._time import TimeWindow
from eventml.state import backend_for
from eventml.state.base import StoreSpec


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did. ``read`` counts the events processed per live input topic,
    ``skipped`` those polled but outside the window; ``written`` the records per
    sandbox topic; ``topics`` maps each live topic the app writes to its sandbox copy."""

    app: str
    sandbox: str
    sandbox_app: str
    start_ms: int
    end_ms: int
    read: Mapping[str, int] = field(default_factory=dict)
    skipped: Mapping[str, int] = field(default_factory=dict)
    written: Mapping[str, int] = field(default_factory=dict)
    topics: Mapping[str, str] = field(default_factory=dict)
    dead_letters: int = 0
    sinks_disabled: int = 0
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return sum(self.read.values())

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "app": self.app, "sandbox": self.sandbox, "sandbox_app": self.sandbox_app,
            "from_ms": self.start_ms, "to_ms": self.end_ms, "events": self.events,
            "read": dict(self.read), "skipped": dict(self.skipped), "written": dict(self.written),
            "topics": dict(self.topics), "dead_letters": self.dead_letters,
            "sinks_disabled": self.sinks_disabled, "seconds": round(self.seconds, 3),
            "events_per_s": round(self.events_per_s, 1),
        }


def replay(
    app: App,
    log: Log,
    *,
    start_ms: int,
    end_ms: int,
    sandbox: str,
    reset: bool = False,
    timeout_s: float = 3600.0,
    clock: Callable[[], float] = time.monotonic,
) -> ReplayResult:
    """Run ``app``'s pipeline over the records of its input topics whose timestamps are
    in ``[start_ms, end_ms)``, writing into sandbox ``sandbox`` (``<sandbox>.<topic>``)
    as the consumer group ``<sandbox>.<app>``, with empty state.

    The live app's topics, offsets and state are never written. A sandbox that was
    used before is refused unless ``reset`` (its topics and state are then deleted
    first). Raises :class:`ReplayError` for a bad window, sandbox or missing topic,
    and :class:`~eventml.engine.WorkerFailed` if the pipeline fails fatally.
    """
    window = TimeWindow(start_ms, end_ms)
    box = sandbox_app(app, sandbox)
    require_topics(log, (*box.sources, *box.tables))
    if not box.sources:
        raise ReplayError(f"app {app.name!r} reads no topic it does not write itself: nothing to replay")
    _prepare(log, box, reset)
    starts: dict[TopicPartition, int] = {}
    ends: dict[TopicPartition, int] = {}
    for topic in (*box.sources, *box.tables):
        first = log.start_offsets(topic) if topic in box.tables else log.offsets_for_time(topic, start_ms)
        for p, end in log.offsets_for_time(topic, end_ms).items():
            starts[TopicPartition(topic, p)] = first[p]
            ends[TopicPartition(topic, p)] = end
    _commit_start(log, box, starts, min(timeout_s, 120.0))
    admission = Admission(window, starts, ends, frozenset(box.tables))
    worker = Worker(box.app, log=log, admit=admission, dead_letter_topic=box.dead_letter_topic)
    tune_gc()  # as Worker.run does: ~1.4x events/s on the fraud app
    started = clock()
    try:
        while not _done(worker, ends, box.internal, log):
            if clock() - started > timeout_s:
                raise ReplayError(f"the replay did not finish within {timeout_s:.0f} s")
            worker.step()
        seconds = clock() - started
    finally:
        worker.close()
    return ReplayResult(
        app=app.name, sandbox=sandbox, sandbox_app=box.app.name, start_ms=start_ms, end_ms=end_ms,
        read=_counts(admission.read, (*box.sources, *box.tables)), skipped=dict(admission.skipped),
        written=count_records(log, box.output_topics()), topics=dict(box.renamed),
        dead_letters=worker.stats.dead_letters, sinks_disabled=box.sinks_disabled, seconds=seconds,
    )


def _prepare(log: Log, box: Sandbox, reset: bool) -> None:
    """Refuse a used sandbox (or, with ``reset``, delete its topics); drop its state."""
    backend = backend_for(log)
    specs = [StoreSpec(box.app.name, s.name, s.ttl_ms) for s in box.stores]
    changelogs = [t.name for spec in specs for t in backend.required_topics(spec, 1)]
    existing = set(log.list_topics())
    used = sorted(t for t in {*box.output_topics(), *box.internal, *changelogs} if t in existing)
    if used and not reset:
        raise ReplayError(
            f"sandbox {box.name!r} was used before ({used[0]} exists): "
            "pass --reset to start it over, or choose another sandbox name"
        )
    for topic in used:
        log.delete_topic(topic)
    for spec in specs:
        backend.drop(spec)
    backend.close()


def _commit_start(
    log: Log, box: Sandbox, starts: Mapping[TopicPartition, int], timeout_s: float
) -> None:
    """Commit the window's start offsets (and the beginning of each sandbox topic the app
    reads back) for the sandbox's group, so its worker starts there."""
    offsets = dict(starts)
    topics = box.app.topics
    for name in box.internal:
        ref = topics[name]
        log.create_topic(TopicSpec(name, ref.partitions), exist_ok=True)
        offsets.update({TopicPartition(name, p): o for p, o in log.start_offsets(name).items()})
    consumer = log.consumer(
        box.app.name, sorted({tp.topic for tp in offsets}),
        config=ConsumerConfig(auto_offset_reset="earliest"),
    )
    deadline = time.monotonic() + timeout_s
    try:
        while not offsets.keys() <= consumer.assignment():
            if time.monotonic() > deadline:
                raise ReplayError(f"could not join the consumer group {box.app.name!r}: is the broker healthy?")
            consumer.poll(1, 0.2)
        consumer.commit(offsets)
    finally:
        consumer.close()


def _done(worker: Worker, ends: Mapping[TopicPartition, int], internal: Iterable[str], log: Log) -> bool:
    consumer = worker.consumer
    if not reached(consumer, ends):
        return False
    drained = {TopicPartition(t, p): end for t in internal for p, end in log.end_offsets(t).items()}
    return reached(consumer, drained)


def count_records(log: Log, topics: Iterable[str]) -> dict[str, int]:
    """Records per topic (for the sandbox's outputs; topics that do not exist count 0)."""
    from eventml.replay._read import read_all

    existing = set(log.list_topics())
    out: dict[str, int] = {}
    for topic in topics:
        if topic not in existing:
            continue
        starts, ends = log.start_offsets(topic), log.end_offsets(topic)
        held = sum(ends[p] - starts.get(p, 0) for p in ends)
        # on Kafka transaction markers take offsets too: count the records themselves
        out[topic] = 0 if held == 0 else sum(1 for _ in read_all(log, topic))
    return out


def _counts(counter: Counter[str], topics: Iterable[str]) -> dict[str, int]:
    return {t: counter.get(t, 0) for t in topics}
