"""Serving a worker's metrics: ``GET /metrics`` in the Prometheus text format.

Each worker process serves its own metrics on its own port, as Kafka Streams exposes
each instance's: Prometheus scrapes every instance and sums over them. (prometheus-client's
multiprocess mode would merge the processes into one page, at the price of a shared
directory of memory-mapped files, restrictions on gauges and no per-instance view.)

The socket is bound by :func:`metrics_endpoints` in the supervisor, before any worker
process is forked, so a port in use fails at once with one error, and ``port=0`` (any
free port) is known there to be printed; each worker process then serves it
(:meth:`MetricsEndpoint.start`) with its own :class:`WorkerMetrics`. A worker restarted by
the supervisor serves the same port, its counters from zero (Prometheus counts resets).
"""

from __future__ import annotations

import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from eventml.observe.worker import WorkerMetrics

__all__ = ["MetricsEndpoint", "metrics_endpoints"]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # no access log on stderr
        pass


class MetricsEndpoint:
    """``http://host:port/metrics`` bound now, serving ``metrics`` once started."""

    def __init__(self, port: int, host: str = "127.0.0.1", metrics: WorkerMetrics | None = None) -> None:
        if not 0 <= port <= 65_535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]

        class Server(_Server):
            address_family = family

        self.host = host
        self._server = make_server(str(address[0]), port, make_wsgi_app(self.metrics.registry),
                                   Server, handler_class=_Quiet)
        self.port = int(self._server.server_port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> None:
        """Serve from a daemon thread of this process."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                            name=f"metrics:{self.port}")
            self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()


def metrics_endpoints(workers: int, port: int, host: str = "127.0.0.1") -> list[MetricsEndpoint]:
    """One bound endpoint per worker: ports ``port``, ``port + 1``, ... (``port=0``: any free
    ones). Raises ``ValueError`` for ports out of range, ``OSError`` if one cannot be bound
    (the ones bound already are closed)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not 0 <= port <= 65_535:
        raise ValueError(f"the metrics port must be in 0..65535, got {port}")
    if port and port + workers - 1 > 65_535:
        raise ValueError(f"metrics ports {port}..{port + workers - 1} (one per worker) go past "
                         f"65535: give a port in 0..{65_536 - workers}")
    out: list[MetricsEndpoint] = []
    try:
        for i in range(workers):
            out.append(MetricsEndpoint(port + i if port else 0, host))
    except BaseException:
        for e in out:
            e.close()
        raise
    return out
