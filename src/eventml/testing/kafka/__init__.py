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

    python -m eventml.testing.kafka start|stop|status|jars

``start`` leaves a detached broker running and prints its address as the last
line of stdout; ``stop`` stops it.  Cache dir: ``$EVENTML_KAFKA_HOME``, else
``<repo root>/.kafka`` when run inside the repository, else
``~/.cache/eventml/kafka``.

Only the standard library is imported at module import time; confluent_kafka is
imported lazily for the readiness check.

Modules: ``_common`` (constants, the error type, the cache dir), ``jars`` (fetching
the classpath), ``broker`` (the broker process), ``cli`` (the commands).
"""

from eventml.testing.kafka._common import KAFKA_VERSION, KafkaUnavailable, default_home
from eventml.testing.kafka.broker import (
    KafkaBroker,
    check_bootstrap,
    new_cluster_id,
    pick_free_ports,
    render_log4j2_properties,
    render_server_properties,
)
from eventml.testing.kafka.cli import main
from eventml.testing.kafka.jars import ensure_jars

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
