"""`eventml serve`: the schema registry over HTTP (Confluent's REST API), on the log."""

from __future__ import annotations

import copy
import errno
import socket
from typing import Annotated, Any

import typer

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, connect, fail
from eventml.schema.errors import SchemaError
from eventml.schema.registry import SchemaRegistry

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
_BIND_HINTS = {
    errno.EADDRINUSE: " (another process listens there: pick another --port)",
    errno.EACCES: " (ports below 1024 need privileges: pick another --port)",
    errno.EADDRNOTAVAIL: " (not an address of this machine: check --host)",
}


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or one line saying why it cannot be."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as e:
        fail(f"cannot resolve --host {host!r}: {e}")
    # getaddrinfo's proto (IPPROTO_TCP) makes asyncio set TCP_NODELAY on each connection;
    # without it every response waits ~40 ms for the client's delayed ACK
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()  # from here connections queue: clients may start once the URL is printed
    except OSError as e:
        sock.close()
        hint = _BIND_HINTS.get(e.errno or 0, "")
        fail(f"cannot listen on {host}:{port}: {e.strerror or e}{hint}")
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, plus the registry's own logger (server-side errors) on stderr."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["eventml"] = {
        "handlers": ["default"],
        "level": "DEBUG" if level in ("debug", "trace") else "INFO",
        "propagate": False,
    }
    return config


def serve(
    broker: BrokerOption = DEFAULT_BROKER,
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0 or :: for every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")] = 8081,
    log_level: Annotated[
        str, typer.Option(help="Server log level: critical, error, warning, info, debug or trace.")
    ] = "info",
) -> None:
    """Serve the schema registry (Confluent-compatible REST API) kept in the log's _schemas topic."""
    level = log_level.lower()
    if level not in LOG_LEVELS:
        fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    try:
        import uvicorn

        from eventml.schema.api import create_app
    except ImportError as e:
        fail(f"eventml serve needs FastAPI and uvicorn ({e}): pip install 'eventml[serve]'")
    sock = _listen(host, port)
    with sock, connect(broker) as log:
        try:
            registry = SchemaRegistry(log)
        except SchemaError as e:
            fail(f"cannot open the schema registry on {broker}: {e}")
        url = _url(sock)
        typer.echo(f"eventml: schema registry at {url} (API docs: {url}/docs), log {broker}")
        config = uvicorn.Config(
            create_app(registry), log_level=level, log_config=_log_config(level), server_header=False
        )
        uvicorn.Server(config).run(sockets=[sock])
