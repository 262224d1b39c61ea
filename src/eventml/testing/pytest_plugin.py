"""pytest plugin (entry point ``pytest11: eventml``): real Kafka and PostgreSQL servers for tests.

Fixtures:

* ``kafka_bootstrap`` (session): ``"127.0.0.1:PORT"`` of a broker.  Uses the broker
  named by ``$EVENTML_KAFKA_BOOTSTRAP`` when set (it must answer), else starts a
  throwaway :class:`~eventml.testing.kafka.KafkaBroker` for the session.
  If no broker can be started the test is skipped, except under ``CI=true``
  where it fails: CI must never silently skip the Kafka tests.
* ``redis_url`` (session): ``"redis://127.0.0.1:PORT"`` of a real redis-server. Uses
  ``$EVENTML_REDIS_URL`` when set and it answers, else starts a throwaway
  :class:`~eventml.testing.redis.RedisServer` for the session; if none can be
  started the test is skipped, except under ``CI=true`` where it fails.
* ``kafka_topic_name`` (function): a unique topic name for the test,
  ``pytest_<sanitized test name>_<8 hex>``.
* ``postgres_dsn`` (session): ``"postgresql://postgres@127.0.0.1:PORT/eventml"`` of a
  real PostgreSQL server. Uses ``$EVENTML_POSTGRES_DSN`` when set and it answers,
  else starts a throwaway cluster (:class:`~eventml.testing.postgres.PostgresCluster`,
  Debian's server binaries) in a temporary directory. Skipped when impossible, failed
  under ``CI=true``. Tests that share it should use their own schema or table names.
* ``log_url`` (parametrized: memory, embedded, kafka) and ``log`` (that log, opened
  and closed): run one test against every backend (the Kafka case is marked
  ``kafka``).

This module loads in every pytest run, so it imports nothing heavy at import
time: the broker module (stdlib only) and confluent_kafka are imported inside
the fixtures.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from eventml.log.base import Log

_TOPIC_NAME_MAX = 200  # Kafka allows 249; leave room for suffixes tests may add


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    markers = config.getini("markers")
    if not any(str(line).split(":", 1)[0].strip() == "kafka" for line in markers):
        config.addinivalue_line(
            "markers", "kafka: needs a real Kafka broker (started by the session fixture)"
        )
    if not any(str(line).split(":", 1)[0].strip() == "postgres" for line in markers):
        config.addinivalue_line(
            "markers", "postgres: needs a real PostgreSQL server (the postgres_dsn fixture)"
        )


def _own_server(
    what: str, start: Callable[[], str], stop: Callable[[], None], unavailable: type[Exception]
) -> Iterator[str]:
    """Start a server for the session and yield its address; if it cannot start, fail
    under CI (a missing service is never a silent skip there), else skip with the reason."""
    failure: Exception | None = None
    try:
        address = start()
    except unavailable as exc:
        failure = exc
    if failure is not None:  # raised outside ``except`` to keep the report short
        stop()
        if _in_ci():
            pytest.fail(f"{what} unavailable: {failure}", pytrace=False)
        pytest.skip(f"{what} unavailable: {getattr(failure, 'reason', failure)}")
    try:
        yield address
    finally:
        stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address ("127.0.0.1:PORT") of a real Kafka broker for this session."""
    from eventml.testing.kafka import KafkaBroker, KafkaUnavailable, check_bootstrap

    external = os.environ.get("EVENTML_KAFKA_BOOTSTRAP", "").strip()
    if external:
        problem: KafkaUnavailable | None = None
        try:
            check_bootstrap(external, timeout=10.0)
        except KafkaUnavailable as exc:
            problem = exc
        if problem is not None:  # raised outside ``except`` to keep the report short
            pytest.fail(f"EVENTML_KAFKA_BOOTSTRAP={external}: {problem.reason}", pytrace=False)
        yield external
        return

    broker = KafkaBroker()

    def start() -> str:
        broker.start()
        return broker.bootstrap

    # the one-line reason first; under CI the broker log tail (if any) below it
    yield from _own_server("Kafka broker", start, broker.stop, KafkaUnavailable)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL ("redis://127.0.0.1:PORT") of a real redis-server for this session:
    ``$EVENTML_REDIS_URL`` if it answers, else one of its own."""
    from eventml.testing.redis import RedisServer, RedisUnavailable, check_url

    external = os.environ.get("EVENTML_REDIS_URL", "").strip()
    if external:
        try:
            check_url(external)
        except RedisUnavailable:
            external = ""  # not answering: start one of our own
    if external:
        yield external
        return
    server = RedisServer()

    def start() -> str:
        server.start()
        return server.url

    yield from _own_server("Redis", start, server.stop, RedisUnavailable)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """URL ("postgresql://postgres@127.0.0.1:PORT/eventml") of a real PostgreSQL server:
    ``$EVENTML_POSTGRES_DSN`` if it answers, else a throwaway cluster of its own."""
    import tempfile

    from eventml.testing.postgres import PostgresCluster, PostgresUnavailable, check_dsn

    external = os.environ.get("EVENTML_POSTGRES_DSN", "").strip()
    if external:
        try:
            check_dsn(external, timeout=10.0)
        except PostgresUnavailable:
            external = ""  # not answering: start one of our own
    if external:
        yield external
        return
    cluster = PostgresCluster(tempfile.mkdtemp(prefix="eventml-postgres-"))

    def start() -> str:
        dsn = cluster.start()
        check_dsn(dsn, timeout=10.0)
        return dsn

    yield from _own_server("PostgreSQL", start, cluster.remove, PostgresUnavailable)


@pytest.fixture(params=["memory", "embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def log_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Each backend in turn: a memory log of its own name, an embedded log in a fresh
    directory, the session's Kafka broker. Opening the URL twice gives the same log."""
    if request.param == "memory":
        return f"memory://t{uuid.uuid4().hex[:10]}"
    if request.param == "embedded":
        return f"embedded://{tmp_path_factory.mktemp('log')}/data"
    return f"kafka://{request.getfixturevalue('kafka_bootstrap')}"


@pytest.fixture
def log(log_url: str) -> Iterator[Log]:
    """The log at :func:`log_url`, closed after the test."""
    from eventml.log import open_log

    opened = open_log(log_url)
    yield opened
    opened.close()


@pytest.fixture
def kafka_topic_name(request: pytest.FixtureRequest) -> str:
    """A unique, valid Kafka topic name derived from the test's name."""
    sanitized = re.sub(r"[^A-Za-z0-9-]+", "_", request.node.name).strip("_") or "test"
    return f"pytest_{sanitized[:_TOPIC_NAME_MAX]}_{uuid.uuid4().hex[:8]}"
