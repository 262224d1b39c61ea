"""What the pipeline benchmark's phases share: its state, the inputs, GC and thread
helpers, clean-up."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Protocol

from eventml.demos.fraud.events import transaction_event
from eventml.demos.fraud.generator import generate_transactions
from eventml.demos.fraud.model import FraudModel
from eventml.engine import App, Settings
from eventml.engine import graph as g
from eventml.events import to_message
from eventml.log import ConsumerConfig, Log, Message, open_log
from eventml.log.registry import BrokerUrl
from eventml.state import StoreSpec, backend_for

Progress = Callable[[str], None]
Statistic = Literal["best", "median"]
LatencyWorker = Literal["process", "thread"]

LIVE, LATENCY = 0, 2  # seed streams of the generator (history is 1, see demos.fraud.run)
APPEND_BATCH = 10_000  # pre-appending the inputs
_WATCH_EVERY_S = 0.01  # how often the parent reads forked workers' committed offsets
_START_TIMEOUT_S = 120.0
_new_message = partial(tuple.__new__, Message)


class _Flag(Protocol):
    """A threading or multiprocessing event."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass
class _Counters:
    """What one worker did: records taken from polls, batches, records appended, dead letters."""

    records: int = 0
    batches: int = 0
    outputs: int = 0
    commits_refused: int = 0
    dead_letters: int = 0

    def add(self, other: _Counters) -> None:
        self.records += other.records
        self.batches += other.batches
        self.outputs += other.outputs
        self.commits_refused += other.commits_refused
        self.dead_letters += other.dead_letters


class _Runner(Protocol):
    def step(self) -> int: ...

    def counters(self) -> _Counters: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Drain:
    """One side's timed run over all N records (see :func:`_metrics`)."""

    seconds: float  # clock start -> the last commit
    startup_s: float  # clock start -> the first commit
    first_events: int  # events in that first commit
    counters: _Counters


@dataclass
class _Bench:
    """Everything the phases share."""

    url: str
    parsed: BrokerUrl
    log: Log
    model: FraudModel
    events: int
    workers: int
    partitions: int
    velocity: bool
    settings: dict[str, Any]  # eventml.engine.Settings fields given to the app
    prefix: str
    say: Progress
    input_topic: str = ""
    apps: list[App] = field(default_factory=list)

    @property
    def local(self) -> bool:
        return self.parsed.scheme != "kafka"

    @property
    def in_memory(self) -> bool:
        return self.parsed.scheme == "memory"

    def app_settings(self) -> Settings:
        return Settings(broker=self.url, **self.settings)

    def consumer_config(self) -> ConsumerConfig:
        """The consumer settings the engine's workers use (so the baselines use them too)."""
        s = self.app_settings()
        return ConsumerConfig(
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
        )

    def own_log(self) -> Log:
        """A log object for a worker: the shared one on ``memory://``, else a new one."""
        return self.log if self.in_memory else open_log(self.url)


# -- inputs ----------------------------------------------------------------------------------


def _messages(count: int, seed: tuple[int, int]) -> list[Message]:
    """``count`` generated transactions as ``card.transaction`` messages (keyed by card)."""
    txs = generate_transactions(count, seed=seed).transactions
    return [to_message(transaction_event(tx)) for tx in txs]


def _append_all(log: Log, topic: str, messages: Sequence[Message]) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(messages), APPEND_BATCH):
        log.append(topic, messages[i : i + APPEND_BATCH])
    return time.perf_counter() - t0


@contextlib.contextmanager
def _gc_thresholds_restored() -> Iterator[None]:
    """The workers' GC tuning changes the thresholds for good: put them back at the end."""
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*before)


@contextlib.contextmanager
def _single_threaded_model() -> Iterator[None]:
    """One OpenMP thread per process (see the module's docstring)."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def _stop_when(flag: _Flag, stop: Callable[[], None]) -> None:
    flag.wait()
    stop()


# -- clean-up ------------------------------------------------------------------------------------


def _cleanup(bench: _Bench) -> None:
    """Delete the run's topics (all named after its prefix) and the apps' state."""
    log = bench.log
    with contextlib.suppress(Exception):
        state = backend_for(log)
        for app in bench.apps:
            for node in app.topology().nodes:
                ref = getattr(node, "store", None)
                if isinstance(ref, g.StoreRef):
                    with contextlib.suppress(Exception):
                        state.drop(StoreSpec(app.name, ref.name, ref.ttl_ms))
    for topic in log.list_topics():
        if topic.startswith(bench.prefix):
            with contextlib.suppress(Exception):
                log.delete_topic(topic)
