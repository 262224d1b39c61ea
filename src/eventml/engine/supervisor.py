"""Running workers: one in this process, or N processes restarted when they die."""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from eventml._spec import import_attribute
from eventml.engine.app import App

if TYPE_CHECKING:
    from eventml.observe.endpoint import MetricsEndpoint

_log = logging.getLogger(__name__)


def load_app(spec: str) -> App:
    """The :class:`App` named by ``"module:attribute"`` (the current directory is importable)."""
    app = import_attribute(spec, "pipelines.fraud:app")
    if not isinstance(app, App):
        raise ValueError(f"{spec}: {spec.partition(':')[2]!r} is not an eventml App (got {type(app).__name__})")
    return app


def run_worker(app: App, index: int = 0, *, metrics: MetricsEndpoint | None = None,
               **options: Any) -> None:
    """Run one worker in this process until SIGTERM/SIGINT; with ``metrics``, it records
    its metrics there and this process serves them."""
    from eventml.engine.worker import Worker

    if metrics is not None:
        metrics.start()
    worker = Worker(app, index=index, metrics=None if metrics is None else metrics.metrics)

    def stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.run(**options)


def _child(app: App, index: int, options: dict[str, Any], metrics: MetricsEndpoint | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the supervisor's handler (forked)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides
    run_worker(app, index, metrics=metrics, **options)


def run_app(app: App, *, workers: int = 1, restart: bool = True,
            metrics: Sequence[MetricsEndpoint] | None = None, **options: Any) -> None:
    """Run ``workers`` workers; with more than one, each is a process (fork) and a dead one
    is restarted with the same index (so it fences its predecessor's transactions).
    ``metrics``: one endpoint per worker (see :func:`eventml.observe.endpoint.metrics_endpoints`),
    each served by its worker's process."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if metrics is not None and len(metrics) != workers:
        raise ValueError(f"{len(metrics)} metrics endpoints for {workers} workers: give one each")
    if workers == 1:
        run_worker(app, 0, metrics=None if metrics is None else metrics[0], **options)
        return
    ctx = mp.get_context("fork")
    procs: dict[int, Any] = {}
    stopping = False

    def start(i: int) -> None:
        endpoint = None if metrics is None else metrics[i]
        p = ctx.Process(target=_child, args=(app, i, options, endpoint), name=f"{app.name}-worker-{i}")
        p.start()
        procs[i] = p

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for i in range(workers):
        start(i)
    try:
        while not stopping:
            time.sleep(0.2)
            for i, p in list(procs.items()):
                if not p.is_alive() and not stopping:
                    if not restart:
                        del procs[i]
                        continue
                    _log.warning("worker %d exited with %s; restarting it", i, p.exitcode)
                    start(i)
            if not procs:
                return
    finally:
        for p in procs.values():
            if p.is_alive():
                p.terminate()
        deadline = time.monotonic() + 30
        for p in procs.values():
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
