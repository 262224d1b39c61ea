"""A private redis-server on 127.0.0.1 for tests and local development.

The Redis online store (:mod:`eventml.features.redis_store`) is tested against a
real server, not a fake: the transaction semantics (MULTI/EXEC, WATCH) are what
the tests check. The server runs with no persistence (``--save "" --appendonly
no``): it is a throwaway, and the sync rebuilds it from the log if it restarts.

Library use (the pytest fixture ``redis_url``)::

    with RedisServer() as server:     # a foreground child in a temp dir
        use(server.url)               # "redis://127.0.0.1:PORT"

Command line (``scripts/redis`` wraps this, after installing the Debian package
``redis-server`` if needed)::

    python -m eventml.testing.redis start|status|stop

``start`` leaves a daemonized server running (pid and port files in
``$EVENTML_REDIS_HOME``, else ``~/.cache/eventml/redis``), reuses one already
running, and prints its URL as the last stdout line.

Only the standard library is imported: the readiness check speaks RESP itself, so
this module works before the ``redis`` package is installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

_START_TIMEOUT_S = 10.0
_TRIES = 3  # a free port can be taken between picking it and binding it


class RedisUnavailable(Exception):
    """No redis-server could be found, started or reached; ``reason`` is one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def find_server() -> str:
    """The redis-server executable, or :class:`RedisUnavailable` saying how to get one."""
    found = shutil.which("redis-server")
    if found is None:
        raise RedisUnavailable(
            "redis-server not found on PATH: install the Debian package redis-server "
            "(scripts/redis start does) or set EVENTML_REDIS_URL"
        )
    return found


def check_url(url: str, timeout: float = 2.0) -> None:
    """PING the server at ``url`` (``redis://host:port``); :class:`RedisUnavailable` if
    it does not answer PONG."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        raise RedisUnavailable(f"cannot reach Redis at {url}: {exc}") from None
    if not reply.startswith(b"+PONG"):
        raise RedisUnavailable(f"Redis at {url} answered {reply[:60]!r} to PING")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_args(port: int, workdir: Path) -> list[str]:
    """The server's options: loopback only, no persistence, files in ``workdir``."""
    return [
        "--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "yes",
        "--save", "", "--appendonly", "no", "--dir", str(workdir),
        "--logfile", str(workdir / "redis.log"),
    ]


def _wait_ready(url: str, alive: object, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        try:
            check_url(url, timeout=0.5)
            return
        except RedisUnavailable as exc:
            if not callable(alive) or not alive() or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
                raise RedisUnavailable(f"redis-server did not start: {exc.reason}"
                                       + (f" (log: {' | '.join(tail)})" if tail else "")) from None
        time.sleep(0.05)


class RedisServer:
    """A redis-server child process on a free port, in its own temporary directory,
    stopped by :meth:`stop` (or when the ``with`` block ends)."""

    def __init__(self) -> None:
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> str:
        exe = find_server()
        self._dir = tempfile.TemporaryDirectory(prefix="eventml-redis-")
        workdir = Path(self._dir.name)
        last: RedisUnavailable | None = None
        for _ in range(_TRIES):
            port = free_port()
            proc = subprocess.Popen([exe, *server_args(port, workdir)], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            url = f"redis://127.0.0.1:{port}"
            try:
                _wait_ready(url, lambda p=proc: p.poll() is None, workdir / "redis.log")
            except RedisUnavailable as exc:
                last = exc
                proc.kill()
                proc.wait()
                continue
            self._proc, self.url = proc, url
            return url
        self.stop()
        assert last is not None
        raise last

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# ---- the daemon behind scripts/redis ---------------------------------------------------

def default_home() -> Path:
    env = os.environ.get("EVENTML_REDIS_HOME", "").strip()
    return Path(env) if env else Path.home() / ".cache" / "eventml" / "redis"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_url(home: Path) -> str | None:
    """The URL of the daemon recorded in ``home``, if it is alive and answers."""
    try:
        pid = int((home / "redis.pid").read_text().strip())
        port = int((home / "port").read_text().strip())
    except (OSError, ValueError):
        return None
    url = f"redis://127.0.0.1:{port}"
    if not _pid_alive(pid):
        return None
    try:
        check_url(url, timeout=1.0)
    except RedisUnavailable:
        return None
    return url


def start_daemon(home: Path) -> str:
    """Start a daemonized server recorded in ``home`` (or reuse the running one)."""
    url = running_url(home)
    if url is not None:
        return url
    exe = find_server()
    home.mkdir(parents=True, exist_ok=True)
    last: RedisUnavailable | None = None
    for _ in range(_TRIES):
        port = free_port()
        (home / "redis.pid").unlink(missing_ok=True)
        done = subprocess.run(
            [exe, *server_args(port, home), "--daemonize", "yes", "--pidfile", str(home / "redis.pid")],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            raise RedisUnavailable(f"redis-server exited {done.returncode}: {done.stderr.strip()[-300:]}")
        url = f"redis://127.0.0.1:{port}"
        try:
            _wait_ready(url, lambda: True, home / "redis.log")
        except RedisUnavailable as exc:
            last = exc
            continue
        (home / "port").write_text(f"{port}\n")
        return url
    assert last is not None
    raise last


def stop_daemon(home: Path) -> bool:
    """Stop the daemon recorded in ``home``; False if none was running."""
    try:
        pid = int((home / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return False
    stopped = False
    if _pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        stopped = True
    for name in ("redis.pid", "port"):
        (home / name).unlink(missing_ok=True)
    return stopped


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else ""
    home = default_home()
    if command == "start":
        try:
            print(start_daemon(home))
        except RedisUnavailable as exc:
            print(f"redis: {exc.reason}", file=sys.stderr)
            return 1
        return 0
    if command == "status":
        url = running_url(home)
        print(url or "not running")
        return 0 if url else 1
    if command == "stop":
        print("stopped" if stop_daemon(home) else "not running")
        return 0
    print("usage: redis start|status|stop", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
