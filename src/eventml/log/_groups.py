"""Pure group-coordination rules shared by the memory and embedded logs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from eventml.log.base import TopicPartition


def assign_partitions(
    subscriptions: Mapping[str, Iterable[str]],
    partitions_per_topic: Mapping[str, int],
) -> dict[str, frozenset[TopicPartition]]:
    """Kafka's range assignment: per topic, contiguous partition ranges to members in id order.

    ``subscriptions`` maps member id -> subscribed topics; topics missing from
    ``partitions_per_topic`` (deleted, not yet created) are ignored.
    """
    result: dict[str, set[TopicPartition]] = {m: set() for m in subscriptions}
    by_topic: dict[str, list[str]] = {}
    for member in sorted(subscriptions):
        for topic in set(subscriptions[member]):
            by_topic.setdefault(topic, []).append(member)
    for topic, members in by_topic.items():
        n = partitions_per_topic.get(topic)
        if not n:
            continue
        per, extra = divmod(n, len(members))
        start = 0
        for i, member in enumerate(members):
            count = per + (1 if i < extra else 0)
            result[member].update(TopicPartition(topic, p) for p in range(start, start + count))
            start += count
    return {m: frozenset(tps) for m, tps in result.items()}
