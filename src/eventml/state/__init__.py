"""Keyed state per input partition, committed with the batch (exactly-once).

Pick the backend for a log with :func:`backend_for`, then open one store per
stateful operator and assigned partition::

    backend = backend_for(log)
    store = backend.open(StoreSpec("fraud", "card-totals", ttl_ms=86_400_000),
                         TopicPartition("payments", 0), committed_offset)

* embedded log -> :class:`SqliteStateBackend` (a table in the log's SQLite file,
  written in the batch's own SQLite transaction);
* memory log -> :class:`MemoryStateBackend` (beside the log, for tests);
* Kafka (and any other log) -> :class:`ChangelogStateBackend` (a local dict
  restored from a compacted changelog topic, written inside the Kafka transaction).

Values are pickled: state is trusted, app-private data.
"""

from eventml.state.base import PartitionStore, StateBackend, StateError, StoreSpec
from eventml.state.changelog import ChangelogStateBackend
from eventml.state.memory import MemoryStateBackend
from eventml.state.registry import backend_for, register_state_backend
from eventml.state.sqlite import SqliteStateBackend

__all__ = [
    "ChangelogStateBackend",
    "MemoryStateBackend",
    "PartitionStore",
    "SqliteStateBackend",
    "StateBackend",
    "StateError",
    "StoreSpec",
    "backend_for",
    "register_state_backend",
]

