"""A real, throwaway Apache Kafka 4.x broker for tests and local development.

The broker jars come from Maven Central (resolved once with ``mvn`` into a cache
directory), so neither Docker nor the Kafka release tarball is needed; ``java``
(17+) and ``mvn`` must be on PATH.  The broker is a single combined
broker+controller (KRaft) bound to 127.0.0.1 only, on free ports picked at run
time, with a fresh data directory per run.

Library use::

    with KafkaBroker() as broker:
        produce_to(broker.bootstrap)   # "127.0.0.1:PORT"

Command line (``scripts/kafka`` wraps this)::

    python -m eventml.testing.kafka_broker start|stop|status|jars

``start`` leaves a detached broker running and prints its address as the last
line of stdout; ``stop`` stops it.  Cache dir: ``$EVENTML_KAFKA_HOME``, else
``<repo root>/.kafka`` when run inside the repository, else
``~/.cache/eventml/kafka``.

Only the standard library is imported at module import time; confluent_kafka is
imported lazily for the readiness check.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "KAFKA_VERSION",
    "KafkaBroker",
    "KafkaUnavailable",
    "check_bootstrap",
    "default_home",
    "ensure_jars",
    "main",
    "new_cluster_id",
    "pick_free_ports",
    "render_log4j2_properties",
    "render_server_properties",
]

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

_log = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------- pure helpers


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


def render_pom(kafka_version: str, slf4j_binding: str) -> str:
    """A throwaway POM whose runtime dependencies are the broker's classpath."""
    deps = [
        ("org.apache.kafka", "kafka_2.13", kafka_version),
        ("org.apache.logging.log4j", "log4j-api", LOG4J_VERSION),
        ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
        ("org.apache.logging.log4j", slf4j_binding, LOG4J_VERSION),
    ]
    dep_xml = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>eventml.local</groupId>\n"
        "  <artifactId>kafka-broker-classpath</artifactId>\n"
        "  <version>1</version>\n"
        "  <packaging>pom</packaging>\n"
        "  <dependencies>\n"
        f"{dep_xml}\n"
        "  </dependencies>\n"
        "</project>\n"
    )


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _text_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------- prerequisites


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


def _require_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable(
            "mvn not found on PATH: install Maven (e.g. apt-get install maven) to fetch the Kafka "
            "jars, or set EVENTML_KAFKA_HOME to a dir whose lib/ already holds them"
        )
    return mvn


# --------------------------------------------------------------------------- jars


def _jars_complete(lib_dir: Path, kafka_version: str) -> bool:
    marker = lib_dir / MARKER_NAME
    try:
        recorded = marker.read_text().strip()
    except OSError:
        return False
    return recorded == kafka_version and (lib_dir / f"kafka_2.13-{kafka_version}.jar").is_file()


def _slf4j_major(lib_dir: Path) -> int | None:
    for jar in lib_dir.glob("slf4j-api-*.jar"):
        match = re.match(r"slf4j-api-(\d+)\.", jar.name)
        if match:
            return int(match.group(1))
    return None


def _run_mvn(mvn: str, pom: Path, out_dir: Path, kafka_version: str) -> None:
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(pom),
        DEPENDENCY_PLUGIN,
        f"-DoutputDirectory={out_dir}",
        "-DincludeScope=runtime",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired as exc:
        raise KafkaUnavailable(
            f"mvn did not resolve org.apache.kafka:kafka_2.13:{kafka_version} within 15 min: "
            "check network access to Maven Central"
        ) from exc
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        errors = [ln for ln in output.splitlines() if "ERROR" in ln]
        first = errors[0].replace("[ERROR]", "").strip() if errors else "see output"
        raise KafkaUnavailable(
            f"mvn failed (exit {proc.returncode}) resolving org.apache.kafka:kafka_2.13:"
            f"{kafka_version}: {first[:300]} -- check network access to Maven Central and the "
            "version (EVENTML_KAFKA_VERSION)",
            _text_tail(output),
        )


def ensure_jars(cache_dir: Path | None = None, kafka_version: str = KAFKA_VERSION) -> Path:
    """Make sure ``<cache_dir>/lib`` holds the broker's runtime classpath; return that dir.

    Skips everything when ``lib/.complete`` (written after a successful fetch) names
    ``kafka_version``.  Otherwise writes ``<cache_dir>/pom.xml`` and runs
    ``mvn ... maven-dependency-plugin:3.6.1:copy-dependencies`` into a staging dir
    that replaces ``lib`` only once complete.
    """
    home = (cache_dir or default_home()).resolve()
    lib_dir = home / "lib"
    if _jars_complete(lib_dir, kafka_version):
        return lib_dir
    with _file_lock(home / ".fetch.lock"):
        if _jars_complete(lib_dir, kafka_version):  # another process fetched meanwhile
            return lib_dir
        mvn = _require_mvn()
        pom = home / "pom.xml"
        staging = home / f"lib.staging-{os.getpid()}"
        # Kafka 4.x declares slf4j-api 1.7.x; if a release moves to 2.x, switch binding.
        for binding in ("log4j-slf4j-impl", "log4j-slf4j2-impl"):
            shutil.rmtree(staging, ignore_errors=True)
            pom.write_text(render_pom(kafka_version, binding))
            _run_mvn(mvn, pom, staging, kafka_version)
            major = _slf4j_major(staging)
            wants_v2 = binding == "log4j-slf4j2-impl"
            if major is None or (major >= 2) == wants_v2:
                break
        if not any(staging.glob(f"kafka_2.13-{kafka_version}.jar")):
            shutil.rmtree(staging, ignore_errors=True)
            raise KafkaUnavailable(
                f"mvn finished but kafka_2.13-{kafka_version}.jar is missing from {staging}: "
                f"delete {home} and retry"
            )
        (staging / MARKER_NAME).write_text(kafka_version + "\n")
        shutil.rmtree(lib_dir, ignore_errors=True)
        staging.rename(lib_dir)
    return lib_dir


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


# --------------------------------------------------------------------------- CLI


def _state_path(home: Path) -> Path:
    return home / "run" / "state.json"


def _read_state(home: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_state_path(home).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _state_alive(state: dict[str, Any]) -> bool:
    try:
        pid, port = int(state["pid"]), int(state["port"])
    except (KeyError, TypeError, ValueError):
        return False
    return _pid_is_broker(pid) and _port_answers(port)


def _clear_state(home: Path, state: dict[str, Any] | None) -> None:
    if state is not None:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            _terminate_pid(int(state["pid"]))
        data_dir = state.get("data_dir")
        if isinstance(data_dir, str) and Path(data_dir).name.startswith(DATA_DIR_PREFIX):
            shutil.rmtree(data_dir, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        _state_path(home).unlink()


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cmd_start(home: Path, timeout: float) -> int:
    with _file_lock(home / "run" / ".lock"):
        state = _read_state(home)
        if state is not None and _state_alive(state):
            _say(f"Kafka broker already running (pid {state['pid']})")
            print(state["bootstrap"], flush=True)
            return 0
        if state is not None:
            _say("removing stale Kafka broker state")
            _clear_state(home, state)
        if not _jars_complete(home / "lib", KAFKA_VERSION):
            t0 = time.monotonic()
            _say(f"fetching Kafka {KAFKA_VERSION} jars into {home / 'lib'} (once; cached)")
            ensure_jars(home)
            _say(f"jars ready in {time.monotonic() - t0:.1f} s")
        _say(f"starting Kafka {KAFKA_VERSION} broker")
        t1 = time.monotonic()
        broker = KafkaBroker(home, start_timeout=timeout, detached=True, progress=_say)
        broker.start()
        state = broker.detach()
        path = _state_path(home)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(path)
        _say(
            f"Kafka broker started in {time.monotonic() - t1:.1f} s "
            f"(pid {state['pid']}, log {state['log']}); stop it with scripts/kafka stop"
        )
        print(state["bootstrap"], flush=True)
        return 0


def _cmd_stop(home: Path) -> int:
    with _file_lock(home / "run" / ".lock"):
        state = _read_state(home)
        if state is None:
            _say("no Kafka broker recorded; nothing to stop")
            return 0
        _say(f"stopping Kafka broker pid {state.get('pid')} ({state.get('bootstrap')})")
        _clear_state(home, state)
        _say("stopped")
        return 0


def _cmd_status(home: Path) -> int:
    state = _read_state(home)
    if state is not None and _state_alive(state):
        print(state["bootstrap"])
        return 0
    print("not running")
    return 1


def _cmd_jars(home: Path) -> int:
    t0 = time.monotonic()
    lib = ensure_jars(home)
    _say(f"Kafka {KAFKA_VERSION} jars ready in {time.monotonic() - t0:.1f} s")
    print(lib)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/kafka",
        description="Run a throwaway single-node Kafka broker on 127.0.0.1 for development.",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="cache/state dir (default: $EVENTML_KAFKA_HOME, <repo>/.kafka or ~/.cache/eventml/kafka)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start a detached broker (idempotent); prints host:port")
    p_start.add_argument(
        "--timeout", type=float, default=START_TIMEOUT_S, help="readiness budget, s"
    )
    sub.add_parser("stop", help="stop the broker started by 'start'")
    sub.add_parser("status", help="print the address, or 'not running' (exit 1)")
    sub.add_parser("jars", help="only fetch the broker jars")
    args = parser.parse_args(argv)
    home: Path = (args.home or default_home()).resolve()
    try:
        if args.command == "start":
            return _cmd_start(home, float(args.timeout))
        if args.command == "stop":
            return _cmd_stop(home)
        if args.command == "status":
            return _cmd_status(home)
        return _cmd_jars(home)
    except KafkaUnavailable as exc:
        _say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
