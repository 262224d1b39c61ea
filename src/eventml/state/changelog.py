"""State stores backed by a compacted changelog topic: Kafka's way, usable on any log.

Each partition store is a dict in this process. A batch's writes are appended,
inside the batch's transaction, to partition ``p`` of ``spec.changelog_topic``
(``p`` = the input partition): one record per key (value pickled, ``None`` for a
delete; see :mod:`eventml.state._codec` for the layout). The topic is compacted,
so it keeps the latest write per key. When a partition is assigned, :meth:`open`
rebuilds the dict by reading that changelog partition from its start to its
end, in batches of thousands, with a reader that never joins the application's
consumer group (Kafka: an assigned consumer, no group protocol).

Records carry the input offset their batch committed (``eventml.src_offset``);
records past the group's committed offset come from a batch that never
committed (possible only when writes and offsets do not commit atomically, as
under at-least-once) and are skipped. Two limits of that safety net: compaction
may already have removed the older, committed value of such a key; and it
assumes the batches that later reprocess that input rewrite the same keys
(deterministic processing). Under exactly-once (Kafka transactions,
read_committed) uncommitted records are never read at all.

A store's changelog is per store, not per input topic: use a store with one
input topic (or co-partitioned topics whose keys never collide).
Values are pickled: state is trusted, app-private data.
"""

from __future__ import annotations

from contextlib import suppress

from eventml.log.base import Log, TopicPartition, TopicSpec, Transaction, UnknownTopic
from eventml.state import _codec
from eventml.state._readers import read_partition
from eventml.state._store import BufferedStore
from eventml.state._table import Table, Writes
from eventml.state.base import PartitionStore, StateBackend, StateError, StoreSpec

RESTORE_TIMEOUT_S = 120.0


class ChangelogStateBackend(StateBackend):
    """Local dicts restored from, and written through to, compacted changelog topics of ``log``.

    ``topic_config`` is added to the changelog topics' configs (Kafka topic
    settings such as ``segment.ms``); ``restore_timeout_s`` bounds how long a
    restore may go without progress.
    """

    def __init__(
        self,
        log: Log,
        *,
        topic_config: dict[str, str] | None = None,
        restore_timeout_s: float = RESTORE_TIMEOUT_S,
    ) -> None:
        self.log = log
        self.topic_config = dict(topic_config or {})
        self.restore_timeout_s = restore_timeout_s

    def required_topics(self, spec: StoreSpec, partitions: int) -> list[TopicSpec]:
        return [
            TopicSpec(
                spec.changelog_topic,
                partitions,
                cleanup_policy="compact",
                config=self.topic_config,
            )
        ]

    def drop(self, spec: StoreSpec) -> None:
        """Delete the changelog topic; create ``required_topics`` again before the next open."""
        with suppress(UnknownTopic):
            self.log.delete_topic(spec.changelog_topic)

    def open(
        self, spec: StoreSpec, partition: TopicPartition, committed_offset: int | None
    ) -> PartitionStore:
        topic = spec.changelog_topic
        try:
            partitions = len(self.log.end_offsets(topic))
        except UnknownTopic:
            raise StateError(
                f"store {spec.name!r} has no changelog topic {topic!r}: create the topics of "
                "backend.required_topics(spec, partitions) first"
            ) from None
        if partition.partition >= partitions:
            raise StateError(
                f"changelog {topic!r} has {partitions} partition(s) but the input "
                f"{partition.topic!r} has partition {partition.partition}: give the changelog "
                "as many partitions as the input (required_topics)"
            )
        replay = _codec.Replay(committed_offset)
        changelog = TopicPartition(topic, partition.partition)
        for batch in read_partition(self.log, changelog, self.restore_timeout_s):
            replay.feed(batch)
        return _ChangelogStore(spec, partition, replay.table(), topic)


class _ChangelogStore(BufferedStore):
    def __init__(self, spec: StoreSpec, partition: TopicPartition, table: Table, topic: str):
        super().__init__(spec, partition, table)
        self._topic = topic

    def _write_through(self, txn: Transaction, writes: Writes, source_offset: int) -> None:
        messages = _codec.changelog_messages(writes, self.partition.partition, source_offset)
        txn.append(self._topic, messages)
