"""Chaos tests for the stream engine: kill workers at random and count every event.

:func:`run_chaos` runs ``eventml run eventml.testing._chaos_app:app --workers N`` as a
subprocess (a supervisor that restarts dead workers with the same index), produces
keyed events paced over ``duration_s`` from this process, and every ``kill_every_s``
SIGKILLs a random worker process. Once the app has caught up (the group's committed
input offsets reach the end and the output stops growing) it stops the supervisor,
reads the whole output and checks it:

* every input id exactly once (:func:`~eventml.testing.checkers.check_delivery`);
* per key, ``seq`` strictly ``+1`` in output order, and the state each output was
  computed from held ``seq - 1`` (:func:`~eventml.testing.checkers.check_sequences`).

:func:`run_zombie` checks fencing: a first worker is frozen (SIGSTOP) in the middle
of a batch, a second one (another index) takes its partitions over after the
group's liveness timeout and processes everything; when the first is resumed its
commit must be refused and nothing may be duplicated.

From the shell::

    python -m eventml.testing.chaos --broker embedded:///tmp/chaos/data \\
        --guarantee exactly_once --events 500000 --duration 60 --workers 4 --json

Linux only (``/proc``). Works with the embedded log and Kafka: the workers run in
other processes, so the memory log cannot be used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from eventml.log import ConsumerConfig, Log, LogError, Message, TopicPartition, TopicSpec, open_log
from eventml.testing.checkers import check_delivery, check_sequences

Guarantee = Literal["exactly_once", "at_least_once"]
APP_SPEC = "eventml.testing._chaos_app:app"
ENV = "EVENTML_CHAOS_"  # prefix of the variables that configure the app (see _chaos_app)


# -- reports --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OutputCheck:
    """What the output of a chaos run holds, against what was sent."""

    events: int  # sent (acknowledged) input events
    outputs: int  # output records read
    missing: int  # input ids never in the output
    duplicates: int  # output records beyond the first for their id
    unexpected: int  # output records whose id was never sent, or whose header and payload disagree
    out_of_order_keys: int  # keys whose first deliveries are not in send order
    gaps: int  # per key: seq jumped past previous + 1
    repeats: int  # per key: seq not above the previous output's
    state_mismatches: int  # the state said prev != seq - 1
    complete: bool  # the output was read to its end
    examples: tuple[str, ...] = ()

    @property
    def sequence_violations(self) -> int:
        return self.gaps + self.repeats + self.state_mismatches


@dataclass(frozen=True, slots=True)
class ChaosReport:
    """One chaos run: what was sent and found, and how much chaos there was."""

    broker: str
    guarantee: str
    broken: bool
    workers: int
    events: int
    outputs: int
    missing: int
    duplicates: int
    unexpected: int
    sequence_violations: int
    gaps: int
    repeats: int
    state_mismatches: int
    out_of_order_keys: int
    kills: int
    busy_kills: int  # kills of a worker that was processing a batch
    caught_up: bool  # the app finished the input before the catch-up timeout
    complete: bool  # the whole output was read
    seconds: float  # the whole run
    warm_up_seconds: float  # from the start until every worker took part
    produce_seconds: float
    catch_up_seconds: float  # from the last kill until caught up
    examples: tuple[str, ...] = ()
    log: str = ""  # the supervisor's stderr

    @property
    def exactly_once(self) -> bool:
        """Every id once, sequences and state intact."""
        return (self.complete and not (self.missing or self.duplicates or self.unexpected)
                and self.sequence_violations == 0)

    @property
    def at_least_once(self) -> bool:
        """Every id at least once (duplicates allowed)."""
        return self.complete and self.missing == 0 and self.unexpected == 0

    @property
    def ok(self) -> bool:
        """The run kept the guarantee it asked for."""
        return self.exactly_once if self.guarantee == "exactly_once" else self.at_least_once

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["examples"] = list(self.examples)
        d["ok"] = self.ok
        return d


@dataclass(frozen=True, slots=True)
class ZombieReport:
    """A frozen worker resumed after another took its partitions over."""

    broker: str
    guarantee: str
    events: int
    outputs: int
    missing: int
    duplicates: int
    unexpected: int
    sequence_violations: int
    complete: bool
    stopped_s: float  # how long the first worker was frozen
    commits_refused: int  # by the first worker
    fenced: bool  # the first worker stopped as fenced
    first: dict[str, Any] = field(default_factory=dict)  # its WorkerStats (JSON)
    second: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    examples: tuple[str, ...] = ()
    log: str = ""

    @property
    def ok(self) -> bool:
        return (self.complete and not (self.missing or self.duplicates or self.unexpected)
                and self.sequence_violations == 0 and (self.commits_refused >= 1 or self.fenced))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["examples"] = list(self.examples)
        d["ok"] = self.ok
        return d


# -- the input ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EventPlan:
    """``events`` events over ``keys`` keys, round robin: event ``i`` is key ``i % keys``,
    its ``seq`` is ``i // keys + 1`` and its id (``ce_id``) ``<run>-<i>``."""

    run: str
    events: int
    keys: int

    def key(self, i: int) -> str:
        return f"k{i % self.keys}"

    def seq(self, i: int) -> int:
        return i // self.keys + 1

    def event_id(self, i: int) -> str:
        return f"{self.run}-{i}"

    def index(self, key: str, seq: int) -> int | None:
        """The event of ``key`` and ``seq`` (``None``: not one of this plan's)."""
        if not key.startswith("k") or not key[1:].isdigit():
            return None
        k = int(key[1:])
        if not 0 <= k < self.keys or seq < 1:
            return None
        i = (seq - 1) * self.keys + k
        return i if i < self.events else None

    def messages(self, start: int, stop: int) -> list[Message]:
        now = int(time.time() * 1000)
        out = []
        for i in range(start, stop):
            key = self.key(i)
            value = orjson.dumps({"key": key, "seq": self.seq(i)})
            out.append(Message(value, key.encode(), (("ce_id", self.event_id(i).encode()),), now))
        return out


class _Pacer:
    """Appends the plan's events at an even rate over ``duration_s``, a chunk per call."""

    def __init__(
        self, log: Log, topic: str, plan: EventPlan, duration_s: float, start: int = 0
    ) -> None:
        self.log, self.topic, self.plan = log, topic, plan
        self.duration_s = max(duration_s, 1e-3)
        self.first = self.sent = start
        self.started = time.monotonic()
        self.chunk = max(1, min(5000, plan.events // max(1, int(self.duration_s * 20))))

    @property
    def done(self) -> bool:
        return self.sent >= self.plan.events

    def step(self) -> None:
        elapsed = time.monotonic() - self.started
        todo = self.plan.events - self.first
        due = min(self.plan.events, self.first + int(todo * elapsed / self.duration_s) + 1)
        while self.sent < due:
            stop = min(due, self.sent + self.chunk)
            self.log.append(self.topic, self.plan.messages(self.sent, stop))
            self.sent = stop


# -- processes ------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` that run the same program (the forked workers)."""
    try:
        raw = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        parent_cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    out = []
    for token in raw.split():
        child = int(token)
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        state = stat[stat.rfind(")") + 2:].split()[0]
        if state not in ("Z", "X") and cmd == parent_cmd:
            out.append(child)
    return out


class _Marks:
    """Reads the app's mark file (``pid time`` per partition batch) as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._last: dict[int, float] = {}

    def busy(self, window_s: float) -> set[int]:
        """Processes that began a partition batch in the last ``window_s`` seconds."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            data = b""
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].splitlines():
            pid, _, at = line.partition(b" ")
            with contextlib.suppress(ValueError):
                self._last[int(pid)] = float(at)
        now = time.time()
        return {pid for pid, at in self._last.items() if now - at <= window_s}


def _stop_process(proc: subprocess.Popen[Any], timeout_s: float = 40.0) -> None:
    """SIGTERM ``proc``, then SIGKILL its process group if it does not exit in time."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: leftovers of this run only
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def _env(settings: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV)}
    env.update({ENV + k: v for k, v in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- offsets and output ------------------------------------------------------------------------

class _GroupOffsets:
    """The committed offsets of a consumer group, read without joining it."""

    def __init__(self, log: Log, group: str) -> None:
        self.log, self.group = log, group

    def get(self, topic: str, partitions: int) -> dict[int, int | None]:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        try:
            found = self.log.committed_offsets(self.group, tps)
        except LogError:  # e.g. Kafka's coordinator busy: unknown for now, ask again later
            return {p: None for p in range(partitions)}
        return {tp.partition: found.get(tp) for tp in tps}

    def caught_up(self, topic: str, partitions: int) -> bool:
        ends = self.log.end_offsets(topic)
        committed = self.get(topic, partitions)
        return all((committed.get(p) or 0) >= end for p, end in ends.items() if end > 0)

    def close(self) -> None:
        """Nothing to release: each read is its own (the log's)."""


def _output_total(log: Log, topic: str) -> int:
    return sum(log.end_offsets(topic).values())


def _wait_caught_up(
    log: Log, offsets: _GroupOffsets, source: str, sink: str, partitions: int,
    timeout_s: float, stable_s: float = 2.0, alive: Callable[[], bool] = lambda: True,
) -> bool:
    """Until the group committed the whole input and the output stopped growing."""
    deadline = time.monotonic() + timeout_s
    last_total, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline and alive():
        total = _output_total(log, sink)
        now = time.monotonic()
        if total != last_total:
            last_total, stable_since = total, now
        if offsets.caught_up(source, partitions) and now - stable_since >= stable_s:
            return True
        time.sleep(0.25)
    return False


@dataclass(slots=True)
class _Output:
    key: str
    seq: int
    prev: int | None
    event_id: str


def read_output(log: Log, topic: str, *, idle_s: float = 15.0) -> tuple[list[_Output], bool]:
    """Every committed record of ``topic`` in partition-then-offset order, and whether the
    read reached the end offsets (``False``: nothing came for ``idle_s``, e.g. an open
    Kafka transaction held the rest back)."""
    ends = {TopicPartition(topic, p): o for p, o in log.end_offsets(topic).items()}
    group = f"eventml-chaos-check-{uuid.uuid4().hex[:12]}"
    c = log.consumer(group, [topic], config=ConsumerConfig(auto_offset_reset="earliest"))
    rows: list[tuple[int, int, _Output]] = []
    complete = False
    try:
        last_progress = time.monotonic()
        while True:
            batch = c.poll(20_000, 0.2)
            if batch:
                last_progress = time.monotonic()
            for r in batch:
                headers = dict(r.headers)
                try:
                    v = orjson.loads(r.value) if r.value is not None else {}
                    out = _Output(str(v["key"]), int(v["seq"]), v.get("prev"),
                                  headers.get("ce_id", b"").decode())
                except (ValueError, KeyError, TypeError):
                    out = _Output("?", -1, None, headers.get("ce_id", b"").decode())
                rows.append((r.partition, r.offset, out))
            owned = c.assignment()
            if len(owned) == len(ends) and all(c.position(tp) >= ends[tp] for tp in owned):
                complete = True
                break
            if time.monotonic() - last_progress > idle_s:
                break
    finally:
        c.close()
    rows.sort(key=lambda t: (t[0], t[1]))
    return [o for _, _, o in rows], complete


def check_output(plan: EventPlan, sent: int, outputs: list[_Output], complete: bool) -> OutputCheck:
    """Count every id of the first ``sent`` events of ``plan`` in ``outputs`` (in log order)."""
    ids = Counter(o.event_id for o in outputs)
    unexpected = 0
    items: list[tuple[str, int]] = []
    seqs: list[tuple[str, int, int | None]] = []
    examples: list[str] = []
    for o in outputs:
        i = plan.index(o.key, o.seq)
        if i is None or i >= sent or plan.event_id(i) != o.event_id:
            unexpected += 1
            if len(examples) < 5:
                examples.append(f"unexpected output {o}")
            continue
        items.append((o.key, o.seq))
        seqs.append((o.key, o.seq, o.prev))
    expected_ids = (plan.event_id(i) for i in range(sent))
    missing = sum(1 for e in expected_ids if e not in ids)
    duplicates = sum(n - 1 for n in ids.values() if n > 1)
    delivery = check_delivery(((plan.key(i), plan.seq(i)) for i in range(sent)), items,
                              allow_duplicates=True)
    sequences = check_sequences(seqs)
    if delivery.missing:
        examples.append(f"missing (key, seq) e.g. {list(delivery.missing[:5])}")
    examples.extend(f"{v.kind}: {v}" for v in sequences.examples[:10])
    return OutputCheck(
        events=sent,
        outputs=len(outputs),
        missing=missing,
        duplicates=duplicates,
        unexpected=unexpected,
        out_of_order_keys=len(delivery.out_of_order_keys),
        gaps=sequences.gaps,
        repeats=sequences.repeats,
        state_mismatches=sequences.state_mismatches,
        complete=complete,
        examples=tuple(examples),
    )


# -- the crash run ---------------------------------------------------------------------------

def _prepare_broker(broker: str, workdir: Path) -> str:
    if broker == "embedded":
        return f"embedded://{workdir}/data"
    return broker


def run_chaos(
    broker: str,
    *,
    guarantee: Guarantee = "exactly_once",
    broken: bool = False,
    events: int = 500_000,
    keys: int = 1000,
    partitions: int = 8,
    workers: int = 4,
    duration_s: float = 60.0,
    kill_every_s: float = 2.0,
    pause_ms: float | None = None,
    kill_busy: bool = True,
    warm_up_timeout_s: float = 60.0,
    catch_up_timeout_s: float = 300.0,
    seed: int | None = None,
    app_settings: Mapping[str, str] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ChaosReport:
    """Run the chaos app under ``eventml run --workers N`` while killing its workers.

    First a trickle of events is processed (warm-up, until every worker took part or
    ``warm_up_timeout_s``); then the other events are produced at an even pace over
    ``duration_s`` while a worker is SIGKILLed every ``kill_every_s``.

    ``broker`` is a log URL (``embedded://DIR``, ``kafka://HOST:PORT``; plain
    ``embedded`` makes a data directory in ``workdir``). ``broken`` runs the
    deliberately wrong app (``unsafe_commit_first``, at-least-once, and a ``pause_ms``
    sleep per partition batch after the early commit, default 30 ms) that loses the
    batches a kill interrupts. With ``kill_busy`` each kill picks among the workers that
    began a batch in the last half second (waiting up to ``kill_every_s / 2`` for one;
    then any live worker), so kills land in the middle of processing rather than on
    workers still starting or waiting for a rebalance. ``app_settings`` adds ``EVENTML_CHAOS_*`` variables
    (e.g. ``{"STATIC": "1"}``).
    """
    say = progress or (lambda msg: None)
    rng = random.Random(seed)
    started = time.monotonic()
    work = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="eventml-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    url = _prepare_broker(broker, work)
    run = uuid.uuid4().hex[:8]
    name = f"chaos-{run}"
    source, sink = f"{name}-in", f"{name}-out"
    plan = EventPlan(run, events, keys)
    if broken:
        guarantee = "at_least_once"
        pause_ms = 30.0 if pause_ms is None else pause_ms
    settings = {"APP": name, "INPUT": source, "OUTPUT": sink, "PARTITIONS": str(partitions)}
    if broken:
        settings["UNSAFE_COMMIT_FIRST"] = "1"
    if pause_ms:
        settings["PAUSE_MS"] = str(pause_ms)
    marks = _Marks(work / f"{name}.mark")
    if kill_busy:
        settings["MARK"] = str(marks.path)
    settings.update(app_settings or {})
    log_path = work / f"{name}.log"
    log = open_log(url)
    offsets: _GroupOffsets | None = None
    proc: subprocess.Popen[bytes] | None = None
    kills = busy_kills = 0
    produce_s = catch_up_s = warm_up_s = 0.0
    caught_up = False
    try:
        for topic in (source, sink):
            log.create_topic(TopicSpec(topic, partitions), exist_ok=True)
        offsets = _GroupOffsets(log, name)
        cmd = [sys.executable, "-m", "eventml", "run", APP_SPEC, "--workers", str(workers),
               "--broker", url, "--guarantee", guarantee]
        with open(log_path, "wb") as err:
            proc = subprocess.Popen(cmd, env=_env(settings), stdout=err, stderr=err,
                                    start_new_session=True)
        say(f"{name}: supervisor {proc.pid} on {url} ({guarantee}{', broken' if broken else ''})")
        # warm-up: a trickle of events until every worker has processed some and the
        # group caught up, so that the kills hit a formed group, not workers still joining
        warm = 0
        warm_cap = max(1, events // 4)
        warm_chunk = max(1, min(keys, warm_cap // 50))
        deadline = time.monotonic() + warm_up_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the supervisor exited with {proc.returncode}: see {log_path}")
            if warm < warm_cap:
                stop = min(warm_cap, warm + warm_chunk)
                log.append(source, plan.messages(warm, stop))
                warm = stop
            time.sleep(0.2)
            joined = not kill_busy or len(marks.busy(3600) & set(_children(proc.pid))) >= workers
            if joined and offsets.caught_up(source, partitions):
                break
        warm_up_s = time.monotonic() - started
        say(f"warmed up in {warm_up_s:.1f} s ({warm} events); producing and killing for "
            f"{duration_s:g} s")
        pacer = _Pacer(log, source, plan, duration_s, start=warm)
        next_kill = time.monotonic() + kill_every_s
        kill_until = time.monotonic() + duration_s
        while not pacer.done or time.monotonic() < kill_until:
            if proc.poll() is not None:
                raise RuntimeError(f"the supervisor exited with {proc.returncode}: see {log_path}")
            pacer.step()
            now = time.monotonic()
            if now >= next_kill and now < kill_until:
                live = _children(proc.pid)
                busy = [pid for pid in live if pid in marks.busy(0.5)] if kill_busy else []
                # none busy (e.g. during a rebalance): wait a little for one
                waiting = kill_busy and not busy and now < next_kill + kill_every_s / 2
                if live and not waiting:
                    victim = rng.choice(busy or live)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(victim, signal.SIGKILL)
                        kills += 1
                        busy_kills += bool(busy)
                        say(f"kill {kills}: {'busy' if busy else 'idle'} worker pid {victim} "
                            f"at {now - started:.1f} s, {pacer.sent} events sent")
                    next_kill += kill_every_s
            time.sleep(0.02)
        produce_s = time.monotonic() - pacer.started
        say(f"sent {pacer.sent} events in {produce_s:.1f} s, {kills} kills; waiting to catch up")
        t0 = time.monotonic()
        caught_up = _wait_caught_up(log, offsets, source, sink, partitions, catch_up_timeout_s,
                                    alive=lambda: proc is not None and proc.poll() is None)
        catch_up_s = time.monotonic() - t0
        say(f"caught up: {caught_up} after {catch_up_s:.1f} s")
    finally:
        if proc is not None:
            _stop_process(proc)
        if offsets is not None:
            offsets.close()
    try:
        outputs, complete = read_output(log, sink)
    finally:
        log.close()
    check = check_output(plan, plan.events, outputs, complete)
    return ChaosReport(
        broker=url, guarantee=guarantee, broken=broken, workers=workers,
        events=check.events, outputs=check.outputs, missing=check.missing,
        duplicates=check.duplicates, unexpected=check.unexpected,
        sequence_violations=check.sequence_violations, gaps=check.gaps, repeats=check.repeats,
        state_mismatches=check.state_mismatches, out_of_order_keys=check.out_of_order_keys,
        kills=kills, busy_kills=busy_kills, caught_up=caught_up, complete=complete,
        seconds=round(time.monotonic() - started, 2), warm_up_seconds=round(warm_up_s, 2),
        produce_seconds=round(produce_s, 2),
        catch_up_seconds=round(catch_up_s, 2), examples=check.examples, log=str(log_path),
    )


# -- the zombie run -------------------------------------------------------------------------

def _worker(
    index: int, url: str, guarantee: str, settings: Mapping[str, str], log_file: Any
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "eventml.testing._chaos_app", "--index", str(index),
           "--broker", url, "--guarantee", guarantee]
    return subprocess.Popen(cmd, env=_env(settings), stdout=subprocess.PIPE, stderr=log_file,
                            start_new_session=True)


def _stats(proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> dict[str, Any]:
    """SIGTERM a worker started by :func:`_worker`; the stats it prints on exit."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    lines = [line for line in out.decode(errors="replace").splitlines() if line.startswith("{")]
    if not lines:
        return {"error": f"no stats (exit code {proc.returncode})"}
    stats: dict[str, Any] = json.loads(lines[-1])
    return stats


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def _wait(cond: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


def run_zombie(
    broker: str,
    *,
    guarantee: Guarantee = "exactly_once",
    events: int = 4000,
    keys: int = 200,
    partitions: int = 8,
    pause_ms: float = 200.0,
    session_timeout_ms: int = 6000,
    max_poll_interval_ms: int | None = None,
    resume_s: float = 5.0,
    timeout_s: float = 120.0,
    workdir: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ZombieReport:
    """Freeze a busy worker mid-batch, let another index take over, resume the first.

    Worker 0 processes slowly (``pause_ms`` per partition batch) and owns every
    partition; it is frozen (SIGSTOP) just as a batch begins. Worker 1 starts, gets
    the partitions once the group gives up on worker 0 (``max_poll_interval_ms`` on
    the embedded log, default 3 s; ``session_timeout_ms`` on Kafka, 6 s at least on
    a default broker; ``max_poll_interval_ms`` defaults to 8 s there) and processes
    the rest. Worker 0 is resumed (SIGCONT): it finishes its batch, its commit must be
    refused, and it runs ``resume_s`` more before both are stopped.
    """
    say = progress or (lambda msg: None)
    started = time.monotonic()
    work = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="eventml-zombie-"))
    work.mkdir(parents=True, exist_ok=True)
    url = _prepare_broker(broker, work)
    run = uuid.uuid4().hex[:8]
    name = f"zombie-{run}"
    source, sink = f"{name}-in", f"{name}-out"
    plan = EventPlan(run, events, keys)
    is_kafka = url.startswith("kafka")
    if max_poll_interval_ms is None:
        max_poll_interval_ms = max(8000, session_timeout_ms) if is_kafka else 3000
    mark = work / f"{name}.mark"
    base = {"APP": name, "INPUT": source, "OUTPUT": sink, "PARTITIONS": str(partitions),
            "SESSION_TIMEOUT_MS": str(session_timeout_ms),
            "MAX_POLL_INTERVAL_MS": str(max_poll_interval_ms), "MAX_BATCH": "500"}
    slow = {**base, "PAUSE_MS": str(pause_ms), "MARK": str(mark)}
    log_path = work / f"{name}.log"
    log = open_log(url)
    offsets = _GroupOffsets(log, name)
    first: subprocess.Popen[bytes] | None = None
    second: subprocess.Popen[bytes] | None = None
    stats1: dict[str, Any] = {}
    stats2: dict[str, Any] = {}
    stopped_s = 0.0
    try:
        for topic in (source, sink):
            log.create_topic(TopicSpec(topic, partitions), exist_ok=True)
        log.append(source, plan.messages(0, events))
        with open(log_path, "wb") as err:
            first = _worker(0, url, guarantee, slow, err)
            # it owns every partition and has committed a batch; then freeze it as the
            # next pause begins (mid-batch: polled, not yet committed)
            _wait(lambda: _output_total(log, sink) > 0, timeout_s, "the first worker's output")
            seen = _lines(mark)
            _wait(lambda: _lines(mark) > seen, timeout_s, "the first worker's next batch", 0.005)
            os.kill(first.pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            say(f"{name}: worker 0 (pid {first.pid}) frozen mid-batch")
            second = _worker(1, url, guarantee, base, err)
            _wait(lambda: offsets.caught_up(source, partitions), timeout_s,
                  "the second worker to process everything", 0.25)
            say(f"worker 1 caught up {time.monotonic() - frozen_at:.1f} s after the freeze")
            stopped_s = time.monotonic() - frozen_at
            os.kill(first.pid, signal.SIGCONT)
            time.sleep(resume_s)
            stats1 = _stats(first)
            stats2 = _stats(second)
            say(f"worker 0: {stats1}; worker 1: {stats2}")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                _stop_process(proc)
        offsets.close()
    try:
        outputs, complete = read_output(log, sink)
    finally:
        log.close()
    check = check_output(plan, events, outputs, complete)
    error = str(stats1.get("error") or "")
    return ZombieReport(
        broker=url, guarantee=guarantee, events=check.events, outputs=check.outputs,
        missing=check.missing, duplicates=check.duplicates, unexpected=check.unexpected,
        sequence_violations=check.sequence_violations, complete=complete,
        stopped_s=round(stopped_s, 2), commits_refused=int(stats1.get("commits_refused", 0)),
        fenced="fenced" in error.lower(), first=stats1, second=stats2,
        seconds=round(time.monotonic() - started, 2), examples=check.examples,
        log=str(log_path),
    )


# -- command line ---------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m eventml.testing.chaos",
        description="Kill stream workers at random and count every event (exactly-once check).",
    )
    p.add_argument("--broker", required=True,
                   help="embedded://DIR, kafka://HOST:PORT, or 'embedded' for a temporary directory")
    p.add_argument("--guarantee", choices=["exactly_once", "at_least_once"], default="exactly_once")
    p.add_argument("--broken", action="store_true",
                   help="the deliberately wrong app (commits offsets first): must lose events")
    p.add_argument("--zombie", action="store_true", help="the zombie-fencing run instead")
    p.add_argument("--events", type=int, default=500_000)
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of producing and kills")
    p.add_argument("--kill-every", type=float, default=2.0)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--catch-up-timeout", type=float, default=300.0)
    p.add_argument("--seed", type=int)
    p.add_argument("--static", action="store_true", help="static group membership (Kafka)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    report: ChaosReport | ZombieReport
    if args.zombie:
        report = run_zombie(args.broker, guarantee=args.guarantee, events=args.events,
                            keys=args.keys, partitions=args.partitions, progress=say)
    else:
        report = run_chaos(
            args.broker, guarantee=args.guarantee, broken=args.broken, events=args.events,
            keys=args.keys, partitions=args.partitions, workers=args.workers,
            duration_s=args.duration, kill_every_s=args.kill_every,
            catch_up_timeout_s=args.catch_up_timeout, seed=args.seed,
            app_settings={"STATIC": "1"} if args.static else None, progress=say,
        )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for k, v in report.to_dict().items():
            print(f"{k:>20}: {v}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
