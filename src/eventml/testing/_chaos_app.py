"""The app :mod:`eventml.testing.chaos` runs, configured from ``EVENTML_CHAOS_*`` variables.

Importable as ``eventml.testing._chaos_app:app``, so ``eventml run`` can start it in
worker processes (the supervisor forks them after importing this module)::

    input (N partitions, keyed) -> [pause per batch] -> process(track, state="seq") -> output

``track`` keeps the key's last ``seq`` in state and emits ``{"key", "seq", "prev"}``,
``prev`` being what the state held: under exactly-once every output has
``prev == seq - 1`` and per key the outputs' ``seq`` go up by one.

``python -m eventml.testing._chaos_app --index I`` runs one worker of that index
(no supervisor) until SIGTERM/SIGINT or ``--idle-exit`` seconds without input, then
prints its :class:`~eventml.engine.WorkerStats` as one JSON line on stdout.

Variables, all ``EVENTML_CHAOS_<NAME>`` and optional: ``APP`` (name, also the
group), ``INPUT``, ``OUTPUT`` (default ``<app>-in``, ``<app>-out``), ``PARTITIONS``
(8), ``BROKER``, ``GUARANTEE``, ``UNSAFE_COMMIT_FIRST`` (1: the deliberately broken
commit), ``PAUSE_MS`` (sleep once per partition batch, after any early commit),
``MARK`` (a file that gets a line ``pid time`` as each partition batch begins),
``SESSION_TIMEOUT_MS``, ``MAX_POLL_INTERVAL_MS``, ``MAX_BATCH``, ``STATIC`` (1:
static group membership), ``LOG_LEVEL`` (e.g. ``INFO``: the workers log to stderr).
Started by the harness (``APP`` set), ``kill -USR1`` a worker to have it print every
thread's stack to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any

from eventml.engine import App, KeyState
from eventml.testing.chaos import ENV

STORE = "seq"


def track(value: dict[str, Any], state: KeyState) -> dict[str, Any]:
    """Remember the key's last seq; output it with the seq the state held before."""
    prev = state.get("seq", 0)
    state["seq"] = value["seq"]
    return {"key": value["key"], "seq": value["seq"], "prev": prev}


def _pause(ms: float, mark: str | None) -> Any:
    """Once per partition batch: note ``pid time`` in ``mark`` (the batch is under way),
    then sleep ``ms``."""

    def pause(values: list[Any]) -> list[Any]:
        if mark:
            with open(mark, "a") as f:
                f.write(f"{os.getpid()} {time.time():.3f}\n")
        if ms > 0:
            time.sleep(ms / 1000)
        return values

    return pause


def build_app(env: Mapping[str, str] | None = None) -> App:
    """The chaos app as the ``EVENTML_CHAOS_*`` entries of ``env`` (default: os.environ) say."""
    env = os.environ if env is None else env

    def get(name: str, default: str = "") -> str:
        return env.get(ENV + name, default).strip()

    name = get("APP", "eventml-chaos")
    settings: dict[str, Any] = {}
    if get("GUARANTEE"):
        settings["guarantee"] = get("GUARANTEE")
    if get("UNSAFE_COMMIT_FIRST") == "1":
        settings["unsafe_commit_first"] = True
    if get("SESSION_TIMEOUT_MS"):
        settings["session_timeout_ms"] = int(get("SESSION_TIMEOUT_MS"))
    if get("MAX_POLL_INTERVAL_MS"):
        settings["max_poll_interval_ms"] = int(get("MAX_POLL_INTERVAL_MS"))
    if get("MAX_BATCH"):
        settings["max_batch"] = int(get("MAX_BATCH"))
        settings["min_batch"] = min(100, settings["max_batch"])
    if get("STATIC") == "1":
        settings["static_membership"] = True
    app = App(name, broker=get("BROKER") or None, **settings)
    partitions = int(get("PARTITIONS", "8"))
    source = app.topic(get("INPUT") or f"{name}-in", partitions=partitions)
    sink = app.topic(get("OUTPUT") or f"{name}-out", partitions=partitions)
    stream = app.stream(source)
    pause_ms = float(get("PAUSE_MS", "0") or 0)
    mark = get("MARK") or None
    if pause_ms > 0 or mark:
        stream = stream.map_batch(_pause(pause_ms, mark))
    stream.process(track, state=STORE).to(sink)
    return app


app = build_app()
if ENV + "APP" in os.environ:  # started by the chaos harness (not merely imported)
    if os.environ.get(ENV + "LOG_LEVEL"):  # before the supervisor forks: workers log too
        logging.basicConfig(
            level=os.environ[ENV + "LOG_LEVEL"].upper(),
            format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        )
    # kill -USR1 <worker> prints where each of its threads is, to stderr
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)


def main(argv: list[str] | None = None) -> int:
    """One worker of ``app`` with a given index; prints its stats as JSON when it stops."""
    from eventml.engine import Worker

    p = argparse.ArgumentParser(prog="python -m eventml.testing._chaos_app")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--broker")
    p.add_argument("--guarantee", choices=["exactly_once", "at_least_once"])
    p.add_argument("--idle-exit", type=float, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(  # no-op if LOG_LEVEL configured it already
        level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
    )
    if args.broker:
        app.configure(broker=args.broker)
    if args.guarantee:
        app.configure(guarantee=args.guarantee)
    worker = Worker(app, index=args.index)

    def stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    error: str | None = None
    try:
        worker.run(idle_timeout_s=args.idle_exit)
    except Exception as e:  # reported, not hidden: the caller reads the JSON
        error = f"{type(e).__name__}: {e}"
    stats = dataclasses.asdict(worker.stats)
    stats.pop("batch_sizes", None)
    stats["index"] = args.index
    stats["error"] = error
    sys.stdout.write(json.dumps(stats) + "\n")
    sys.stdout.flush()
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
