"""Test doubles and tools for eventml users' own tests.

* :class:`MemoryLog` — the in-memory log (``memory://``), same semantics as the others.
* :class:`FakeClock` — time that moves only when told to.
* :func:`check_delivery` — counts every event: loss, duplicates, per-key order.
* :func:`check_sequences` — per-key sequence numbers strictly +1, and state that agrees.
* :func:`check_predictions` — a prediction log under hot swap: each event acted on once,
  by a version the alias named, never going back to an earlier one.
* ``eventml.testing.chaos`` — kill workers while they run an app, then count every event
  (``python -m eventml.testing.chaos --broker URL --guarantee exactly_once``).
* ``eventml.testing.faults.refuse_commits`` — make a worker's commits fail now and then, as
  a moved partition would.
* :func:`serve_app` — an ASGI app (e.g. ``eventml.api.create_app(...)``) behind a real
  uvicorn server in a thread, for tests that need sockets (SSE, browsers, fuzzers).
* :class:`KafkaBroker` — a real single-node Kafka 4.x broker from Maven Central jars;
  the pytest plugin (loaded automatically) offers it as the ``kafka_bootstrap`` fixture.
"""

from eventml.log.memory import MemoryLog
from eventml.testing.checkers import (
    DeliveryReport,
    DeliveryViolation,
    PredictionReport,
    SequenceReport,
    SequenceViolation,
    check_delivery,
    check_predictions,
    check_sequences,
)
from eventml.testing.clock import FakeClock
from eventml.testing.http import serve_app
from eventml.testing.kafka import KafkaBroker, KafkaUnavailable

__all__ = [
    "DeliveryReport",
    "DeliveryViolation",
    "FakeClock",
    "KafkaBroker",
    "KafkaUnavailable",
    "MemoryLog",
    "PredictionReport",
    "SequenceReport",
    "SequenceViolation",
    "check_delivery",
    "check_predictions",
    "check_sequences",
    "serve_app",
]
