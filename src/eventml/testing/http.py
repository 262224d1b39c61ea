"""A real HTTP server for an ASGI app in tests: uvicorn in a thread on a free loopback port.

>>> from eventml.api import create_app
>>> with serve_app(create_app()) as url:   # doctest: +SKIP
...     httpx.get(f"{url}/healthz")

The app's lifespan runs (start-up tasks, background threads), unlike an in-process test
client's transport; the socket has ``IPPROTO_TCP`` so asyncio sets ``TCP_NODELAY`` (without
it every response waits for the client's delayed ACK, ~40 ms).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def serve_app(app: Any, *, log_level: str = "warning", start_timeout_s: float = 20.0,
              graceful_s: int = 2) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL (``http://127.0.0.1:PORT``)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, log_config=None,
                                           timeout_graceful_shutdown=graceful_s))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start (see the log above)")
            time.sleep(0.01)
        host, port = sock.getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(graceful_s + 10)
        sock.close()
