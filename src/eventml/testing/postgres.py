"""A real, throwaway PostgreSQL server for tests and local development.

It uses the server binaries of Debian's ``postgresql`` package (``initdb``,
``pg_ctl``, ``psql``; found on PATH or in ``/usr/lib/postgresql/*/bin``): no
Docker.  The cluster listens on 127.0.0.1 only, on a free port, with *trust*
authentication for loopback connections: a test cluster, never one for real data.
PostgreSQL refuses to run as root, so as root the binaries run as the ``postgres``
system user (``runuser -u postgres --``) and the cluster directory is theirs.

Library use::

    with PostgresCluster(tmp_dir) as pg:
        connect(pg.dsn)        # "postgresql://postgres@127.0.0.1:PORT/eventml"

Command line (``scripts/postgres`` wraps this, after installing the package if
``initdb`` is missing)::

    python -m eventml.testing.postgres start|status|stop [--dir DIR]

``start`` is idempotent (a running cluster is reused) and prints the URL as the last
line of stdout; ``status`` prints it or "not running" (exit 1). The directory is
``--dir``, else ``$EVENTML_POSTGRES_HOME``, else ``<repo>/.postgres`` when the
``postgres`` user can reach it, else ``/tmp/eventml-postgres-<hash of the repo path>``.

Only the standard library is imported; the readiness check runs ``psql``.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

DATABASE = "eventml"
SUPERUSER = "postgres"
_SYSTEM_USER = "postgres"
_START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started or reached; ``reason`` is one line."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}\n{detail}" if detail else reason)
        self.reason = reason


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, else the newest
    ``/usr/lib/postgresql/<version>/bin``."""
    found = shutil.which("initdb")
    if found is not None:
        real = Path(found).resolve().parent
        if (real / "pg_ctl").exists():
            return real
    versions = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if (Path(p) / "initdb").exists()),
        key=lambda p: _version_key(p.parent.name),
    )
    return versions[-1] if versions else None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _runas() -> list[str]:
    """The prefix that runs a server binary as a user PostgreSQL accepts."""
    if not _as_root():
        return []
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root and 'runuser' is not on PATH")
    try:
        import pwd

        pwd.getpwnam(_SYSTEM_USER)
    except KeyError:
        raise PostgresUnavailable(
            "running as root and there is no 'postgres' system user "
            "(install Debian's postgresql package: scripts/postgres start does)") from None
    return ["runuser", "-u", _SYSTEM_USER, "--"]


def reachable_by_postgres(directory: Path) -> bool:
    """Whether the ``postgres`` user may enter ``directory`` (always true unless root)."""
    if not _as_root():
        return True
    try:
        prefix = _runas()
    except PostgresUnavailable:
        return False
    probe = subprocess.run([*prefix, "test", "-x", str(directory)], capture_output=True)
    return probe.returncode == 0


def default_home() -> Path:
    """``$EVENTML_POSTGRES_HOME``, else ``<repo>/.postgres`` if the ``postgres`` user can
    reach the repo, else a directory under /tmp keyed by the repo's path."""
    env = os.environ.get("EVENTML_POSTGRES_HOME", "").strip()
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    repo = next((p for p in here.parents if (p / "pyproject.toml").exists()), None)
    if repo is None:
        return Path.home() / ".cache" / "eventml" / "postgres"
    if reachable_by_postgres(repo):
        return repo / ".postgres"
    digest = hashlib.sha1(str(repo).encode()).hexdigest()[:10]
    return Path("/tmp") / f"eventml-postgres-{digest}"


class PostgresCluster:
    """One cluster in ``directory`` (``data/`` the cluster, ``postgres.log`` its log,
    ``port`` the last port it used). :meth:`start` creates it on first use."""

    def __init__(self, directory: str | Path, *, bin_dir: Path | None = None) -> None:
        self.directory = Path(directory)
        self.data = self.directory / "data"
        self.logfile = self.directory / "postgres.log"
        self._bin_dir = bin_dir

    # -- facts ----------------------------------------------------------------------
    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_bin_dir()
            if self._bin_dir is None:
                raise PostgresUnavailable(
                    "no PostgreSQL server binaries (initdb) on PATH or in /usr/lib/postgresql/*/bin: "
                    "run scripts/postgres start, or apt-get install postgresql")
        return self._bin_dir

    def running_port(self) -> int | None:
        """The port of the server running on this cluster, or ``None``."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, IndexError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, another user's
        return port

    @property
    def dsn(self) -> str:
        port = self.running_port()
        if port is None:
            raise PostgresUnavailable(f"no server is running on {self.data}")
        return dsn_for(port)

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> str:
        """Start the server (creating the cluster first if needed); returns :attr:`dsn`."""
        if self.running_port() is None:
            prefix = _runas()
            if not (self.data / "PG_VERSION").exists():
                self._init(prefix)
            wanted = self._pick_port()
            self._run([*prefix, str(self.bin_dir / "pg_ctl"), "start", "-D", str(self.data),
                       "-l", str(self.logfile), "-w", "-t", str(_START_TIMEOUT_S),
                       "-o", f"-p {wanted}"], "pg_ctl start")
            (self.directory / "port").write_text(f"{wanted}\n")
        port = self.running_port()
        if port is None:
            raise PostgresUnavailable("the server stopped right after starting", self._log_tail())
        self._ensure_database(port)
        return dsn_for(port)

    def stop(self) -> None:
        """Stop the server (fast shutdown); no error if it is not running."""
        if self.running_port() is None:
            return
        self._run([*_runas(), str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data),
                   "-m", "fast", "-w", "-t", str(_START_TIMEOUT_S)], "pg_ctl stop")

    def remove(self) -> None:
        """Stop the server and delete the cluster directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # -- steps ----------------------------------------------------------------------
    def _init(self, prefix: list[str]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if prefix:  # as root: the postgres user owns the whole directory
            shutil.chown(self.directory, _SYSTEM_USER, _SYSTEM_USER)
            if not reachable_by_postgres(self.directory):
                raise PostgresUnavailable(
                    f"the postgres user cannot reach {self.directory}: "
                    "set EVENTML_POSTGRES_HOME to a directory under /tmp")
        self._run([*prefix, str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                   "-E", "UTF8", "--locale=C", "--auth=trust", "--no-instructions"], "initdb")
        # Test cluster only: loopback clients are trusted without a password, nothing else
        # can connect (the server listens on 127.0.0.1 only, no Unix socket).
        hba = ("local all all trust\n"
               "host all all 127.0.0.1/32 trust\n")
        conf = ("\n# eventml test cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n"  # TCP only: no socket path length limits
                "max_connections = 200\n"
                "shared_buffers = 128MB\n")
        # written in place, so the files keep their owner (the postgres user)
        (self.data / "pg_hba.conf").write_text(hba)
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(conf)

    def _pick_port(self) -> int:
        with contextlib.suppress(OSError, ValueError):
            last = int((self.directory / "port").read_text())
            if _port_free(last):
                return last
        return free_port()

    def _ensure_database(self, port: int) -> None:
        psql = self.bin_dir / "psql"
        if not psql.exists():
            psql = Path(shutil.which("psql") or "psql")
        base = [str(psql), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, "-d", "postgres",
                "-v", "ON_ERROR_STOP=1", "-tAc"]
        found = self._run([*base, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
                          "psql")
        if found.strip() != "1":
            self._run([*base, f"CREATE DATABASE {DATABASE}"], "psql")

    def _run(self, argv: list[str], what: str) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                                  cwd=self.directory if self.directory.exists() else None)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PostgresUnavailable(f"{what} failed: {e}") from None
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            first = lines[0] if lines else f"exit {done.returncode}"
            raise PostgresUnavailable(f"{what} failed: {first}",
                                      "\n".join([*lines[1:], self._log_tail()]).strip())
        return done.stdout

    def _log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def dsn_for(port: int, database: str = DATABASE) -> str:
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database}"


def check_dsn(dsn: str, timeout: float = 10.0) -> None:
    """Connect to ``dsn`` with psycopg and run ``SELECT 1``; :class:`PostgresUnavailable` if not."""
    try:
        import psycopg
    except ImportError:
        raise PostgresUnavailable(
            "psycopg is not installed: pip install 'eventml[postgres]'") from None
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, round(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise PostgresUnavailable(f"cannot connect: {first}") from None


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` (a URL) whose sessions put their tables in ``schema`` first."""
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options=-csearch_path%3D{schema}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eventml.testing.postgres",
                                     description="A throwaway PostgreSQL server on 127.0.0.1.")
    parser.add_argument("command", choices=["start", "status", "stop"])
    parser.add_argument("--dir", type=Path, default=None,
                        help="cluster directory (default: $EVENTML_POSTGRES_HOME or <repo>/.postgres)")
    args = parser.parse_args(argv)
    cluster = PostgresCluster(args.dir or default_home())
    try:
        if args.command == "start":
            print(f"cluster: {cluster.directory}", file=sys.stderr)
            print(cluster.start())
        elif args.command == "status":
            port = cluster.running_port()
            if port is None:
                print("not running")
                return 1
            print(dsn_for(port))
        else:
            cluster.stop()
    except PostgresUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
