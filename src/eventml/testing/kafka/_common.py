"""Shared pieces of the throwaway Kafka broker: constants, the error type, the
cache/state dir, a file lock and log-tail helpers."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

KAFKA_VERSION = os.environ.get("EVENTML_KAFKA_VERSION", "4.1.1")
LOG4J_VERSION = "2.24.3"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"
LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 30
BROKER_JVM_OPTS = ("-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError")
TOOL_JVM_OPTS = ("-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
READY_LINE = "Kafka Server started"
DATA_DIR_PREFIX = "eventml-kafka-"
PID_FILE = "broker.pid"
MARKER_NAME = ".complete"


class KafkaUnavailable(RuntimeError):
    """The broker could not be provided.

    ``reason`` is one line saying what to fix; ``details`` (optional) holds
    supporting output such as the tail of the broker log.  ``str()`` gives both.
    """

    def __init__(self, reason: str, details: str = "") -> None:
        self.reason = " ".join(reason.split())
        self.details = details.rstrip()
        super().__init__(self.reason if not self.details else f"{self.reason}\n{self.details}")


# --------------------------------------------------------------------------- paths


def find_repo_root(start: Path | None = None) -> Path | None:
    """The nearest directory at or above ``start`` (default: cwd) holding pyproject.toml."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return None


def default_home() -> Path:
    """Cache/state dir: $EVENTML_KAFKA_HOME, <repo>/.kafka, or ~/.cache/eventml/kafka."""
    env = os.environ.get("EVENTML_KAFKA_HOME")
    if env:
        return Path(env).expanduser().resolve()
    root = find_repo_root()
    if root is not None:
        return root / ".kafka"
    return Path.home() / ".cache" / "eventml" / "kafka"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (blocks), so concurrent runs don't race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _text_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
