"""The broker process: configuration rendering, readiness, process helpers and
:class:`KafkaBroker`."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from eventml.testing.kafka._common import (
    BROKER_JVM_OPTS,
    DATA_DIR_PREFIX,
    KAFKA_VERSION,
    LOG_TAIL_LINES,
    LOOPBACK,
    PID_FILE,
    READY_LINE,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    TOOL_JVM_OPTS,
    KafkaUnavailable,
    _tail,
    _text_tail,
    default_home,
)
from eventml.testing.kafka.jars import ensure_jars

_log = logging.getLogger(__name__)


def new_cluster_id() -> str:
    """A KRaft cluster id: 22-char base64url (no padding) of a random UUID.

    Like Kafka's ``Uuid.randomUuid()`` it never starts with ``-``: the storage
    tool's argument parser would take such an id for an option
    ("argument --cluster-id/-t: expected one argument").
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cid.startswith("-"):
            return cid


def pick_free_ports(count: int = 2) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held open together while picking)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def render_server_properties(broker_port: int, controller_port: int, log_dir: Path) -> str:
    """server.properties for one combined broker+controller bound to 127.0.0.1 only."""
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{LOOPBACK}:{controller_port}",
        f"listeners=PLAINTEXT://{LOOPBACK}:{broker_port},CONTROLLER://{LOOPBACK}:{controller_port}",
        f"advertised.listeners=PLAINTEXT://{LOOPBACK}:{broker_port}",
        "inter.broker.listener.name=PLAINTEXT",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={log_dir}",
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "num.network.threads=2",
        "num.io.threads=2",
        "num.recovery.threads.per.data.dir=1",
        "auto.create.topics.enable=false",
        # test brokers only: apply retention and compaction within about a second
        "log.initial.task.delay.ms=0",  # default 30 s: no retention right after start
        "log.retention.check.interval.ms=1000",
        "log.cleaner.backoff.ms=1000",
        "log.segment.delete.delay.ms=0",
        "log.cleaner.min.compaction.lag.ms=0",
    ]
    return "\n".join(lines) + "\n"


def render_log4j2_properties() -> str:
    """Warn-level logging to stderr, plus the KafkaRaftServer line used for readiness."""
    return (
        "status = warn\n"
        "appender.console.type = Console\n"
        "appender.console.name = STDERR\n"
        "appender.console.target = SYSTEM_ERR\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = warn\n"
        "rootLogger.appenderRef.stderr.ref = STDERR\n"
        "logger.raft.name = kafka.server.KafkaRaftServer\n"
        "logger.raft.level = info\n"
    )


def _require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise KafkaUnavailable(
            "java not found on PATH: install a JDK 17+ (e.g. openjdk-17-jdk-headless)"
        )
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaUnavailable(
            f"could not run '{java} -version' ({exc}): check the JDK install"
        ) from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match:
        major = int(match.group(1))
        if major == 1 and match.group(2):  # "1.8.0_x" style
            major = int(match.group(2))
        if major < 17:
            raise KafkaUnavailable(
                f"java {major} found at {java} but Kafka 4 needs Java 17+: install a JDK 17+ "
                "and put it first on PATH"
            )
    return java


# --------------------------------------------------------------------------- readiness


def _rdkafka_logger() -> logging.Logger:
    # librdkafka's own connection errors go to logging instead of raw stderr.
    return logging.getLogger(f"{__name__}.rdkafka")


def check_bootstrap(bootstrap: str, timeout: float = 5.0) -> None:
    """Raise KafkaUnavailable unless a broker at ``bootstrap`` answers a metadata request."""
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError as exc:
        raise KafkaUnavailable(
            "confluent-kafka is not installed: pip install 'eventml[kafka]'"
        ) from exc
    admin = AdminClient({"bootstrap.servers": bootstrap}, logger=_rdkafka_logger())
    try:
        admin.list_topics(timeout=timeout)
    except Exception as exc:  # KafkaException, or a C-level error
        raise KafkaUnavailable(
            f"no Kafka broker answers at {bootstrap} ({exc}): start one (scripts/kafka start) "
            "or fix the address"
        ) from exc


def _port_answers(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_is_broker(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) kafka.Kafka JVM."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            stat = (proc / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False
            return b"kafka.Kafka" in (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            return False
    return True


def _wait_pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_is_broker(pid):
            return True
        time.sleep(0.2)
    return not _pid_is_broker(pid)


def _terminate_pid(pid: int, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds, for a process we don't parent."""
    if not _pid_is_broker(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_pid_gone(pid, timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_pid_gone(pid, 10.0)


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the JVM if this Python process dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def _set() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return _set


# --------------------------------------------------------------------------- broker


class KafkaBroker:
    """A single-node KRaft Kafka broker on 127.0.0.1 with a fresh data dir.

    ``detached=True`` starts the JVM in its own session so it outlives this Python
    process (used by ``scripts/kafka start``); otherwise the JVM is also told to
    exit if this process dies.
    """

    def __init__(
        self,
        home: Path | None = None,
        *,
        kafka_version: str = KAFKA_VERSION,
        start_timeout: float = START_TIMEOUT_S,
        detached: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.home = (home or default_home()).resolve()
        self.kafka_version = kafka_version
        self.start_timeout = start_timeout
        self.detached = detached
        self._progress = progress or (lambda msg: _log.info("%s", msg))
        self.port: int | None = None
        self.controller_port: int | None = None
        self.data_dir: Path | None = None
        self.cluster_id: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- public properties

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise RuntimeError("KafkaBroker is not started")
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self.data_dir / "broker.log" if self.data_dir is not None else None

    # -- lifecycle

    def start(self) -> KafkaBroker:
        if self._proc is not None:
            raise RuntimeError("KafkaBroker already started")
        java = _require_java()
        lib_dir = ensure_jars(self.home, self.kafka_version)
        attempts = 2
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(java, lib_dir)
                return self
            except KafkaUnavailable as exc:
                retry = "Address already in use" in exc.details and attempt < attempts
                self._save_failure_log()
                self._cleanup()
                if not retry:
                    raise
                self._progress("port taken by another process meanwhile; retrying on new ports")
            except BaseException:
                self._cleanup()
                raise
        raise AssertionError("unreachable")

    def _start_once(self, java: str, lib_dir: Path) -> None:
        _sweep_stale_data_dirs()
        self.port, self.controller_port = pick_free_ports(2)
        self.data_dir = Path(tempfile.mkdtemp(prefix=DATA_DIR_PREFIX))
        self.cluster_id = new_cluster_id()
        props = self.data_dir / "server.properties"
        log4j = self.data_dir / "log4j2.properties"
        props.write_text(
            render_server_properties(self.port, self.controller_port, self.data_dir / "kraft")
        )
        log4j.write_text(render_log4j2_properties())
        classpath = str(lib_dir / "*")
        log4j_opt = f"-Dlog4j2.configurationFile={log4j}"

        fmt = subprocess.run(
            [java, *TOOL_JVM_OPTS, log4j_opt, "-cp", classpath, "kafka.tools.StorageTool",
             "format", "-t", self.cluster_id, "-c", str(props)],
            capture_output=True, text=True, timeout=120, check=False, cwd=self.data_dir,
        )  # fmt: skip
        if fmt.returncode != 0:
            output = fmt.stdout + fmt.stderr
            lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
            hint = lines[-1][:300] if lines else "no output"
            if "ClassNotFoundException" in output or "NoClassDefFoundError" in output:
                hint += f" -- the jars look incomplete: delete {lib_dir} to refetch them"
            raise KafkaUnavailable(
                f"kafka.tools.StorageTool format failed (exit {fmt.returncode}): {hint}",
                _text_tail(output),
            )

        log_path = self.data_dir / "broker.log"
        with log_path.open("ab") as log_fh:
            self._proc = subprocess.Popen(
                [java, *BROKER_JVM_OPTS, log4j_opt, "-cp", classpath, "kafka.Kafka", str(props)],
                stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
                cwd=self.data_dir, start_new_session=self.detached,
                preexec_fn=None if self.detached else _parent_death_signal(),
            )  # fmt: skip
        (self.data_dir / PID_FILE).write_text(f"{self._proc.pid}\n")
        self._wait_ready(log_path)

    def _wait_ready(self, log_path: Path) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        started = False
        last_error = "no answer yet"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise KafkaUnavailable(
                    f"Kafka broker exited with code {code} during startup "
                    f"(full log: {self.failure_log_path})",
                    _tail_block(log_path),
                )
            if not started:
                started = READY_LINE in log_path.read_text(errors="replace")
            if started:
                try:
                    check_bootstrap(self.bootstrap, timeout=5.0)
                    return
                except KafkaUnavailable as exc:
                    if "confluent-kafka is not installed" in exc.reason:
                        raise
                    last_error = exc.reason
            if time.monotonic() > deadline:
                what = "AdminClient.list_topics failed" if started else f"no '{READY_LINE}' in log"
                raise KafkaUnavailable(
                    f"Kafka broker not ready after {self.start_timeout:g} s ({what}; "
                    f"{last_error}); machine overloaded? full log: {self.failure_log_path}",
                    _tail_block(log_path),
                )
            time.sleep(0.25)

    @property
    def failure_log_path(self) -> Path:
        """Where the broker log of the last failed start is kept (the data dir is removed)."""
        return self.home / "last-start-failure.log"

    def _save_failure_log(self) -> None:
        log_path = self.log_path
        if log_path is not None and log_path.is_file():
            with contextlib.suppress(OSError):
                self.home.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log_path, self.failure_log_path)

    def stop(self) -> None:
        """SIGTERM the JVM (SIGKILL after 30 s) and remove the data dir."""
        self._cleanup()

    def _cleanup(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def detach(self) -> dict[str, Any]:
        """Forget the running process without stopping it; return the state to record."""
        if self._proc is None or self.data_dir is None:
            raise RuntimeError("KafkaBroker is not started")
        state: dict[str, Any] = {
            "pid": self._proc.pid,
            "bootstrap": self.bootstrap,
            "port": self.port,
            "data_dir": str(self.data_dir),
            "log": str(self.log_path),
            "kafka_version": self.kafka_version,
            "started_at": time.time(),
        }
        self._proc = None
        self.data_dir = None
        return state

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.bootstrap if self.port is not None else "not started"
        return f"KafkaBroker({where}, kafka {self.kafka_version})"


def _tail_block(log_path: Path) -> str:
    tail = _tail(log_path)
    if not tail:
        return "--- the broker log is empty ---"
    return f"--- last {LOG_TAIL_LINES} lines of the broker log ---\n{tail}"


def _sweep_stale_data_dirs(max_age_s: float = 3600.0) -> None:
    """Remove data dirs left by brokers whose owner was killed before it could clean up."""
    now = time.time()
    for path in Path(tempfile.gettempdir()).glob(f"{DATA_DIR_PREFIX}*"):
        try:
            pid_text = (path / PID_FILE).read_text().strip()
        except FileNotFoundError:
            pid_text = ""
        except OSError:
            continue
        try:
            if pid_text:
                stale = not _pid_is_broker(int(pid_text))
            else:  # still being set up by someone, unless it is old
                stale = now - path.stat().st_mtime > max_age_s
        except (OSError, ValueError):
            continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)
