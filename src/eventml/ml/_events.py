"""Reading a topic's events for training and evaluation (thin I/O), and labels from events.

:func:`read_events` reads every partition in bulk (no consumer group; on Kafka an
assigned ``read_committed`` consumer) from given offsets up to the end offsets when it
starts, and decodes each record as a CloudEvent. The ranges read are returned with the
events, so a training set can say exactly which records it came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eventml.events import Event, EventDecodeError, from_record
from eventml.log.base import Log, Record, TopicPartition, UnknownTopic
from eventml.ml.records import Label
from eventml.state._readers import read_partition


class EventsError(ValueError):
    """A topic is missing, or holds records that are not the events asked for; one line."""


@dataclass(frozen=True, slots=True)
class TopicEvents:
    """A topic's events in partition then offset order, and the offsets read per partition."""

    topic: str
    events: list[Event]
    start_offsets: dict[int, int]
    end_offsets: dict[int, int]
    records: int  # records read (tombstones included)


def read_events(
    log: Log,
    topic: str,
    *,
    from_offsets: Mapping[int, int] | None = None,
    end_offsets: Mapping[int, int] | None = None,
    timeout_s: float = 120.0,
) -> TopicEvents:
    """The events of ``topic`` from ``from_offsets`` (default: each partition's start) up to
    ``end_offsets`` (default: the end offsets now); a record without ``ce_time`` (not a
    CloudEvent with a time) is an error, since the event time decides what a job sees."""
    try:
        ends = log.end_offsets(topic)
        firsts = log.start_offsets(topic)
    except UnknownTopic:
        raise EventsError(f"topic {topic!r} does not exist (see `eventml topics list`)") from None
    starts = {p: max(firsts[p], (from_offsets or {}).get(p, 0)) for p in ends}
    stops = {p: min(ends[p], (end_offsets or ends).get(p, ends[p])) for p in ends}
    events: list[Event] = []
    records = 0
    for p in sorted(ends):
        if stops[p] <= starts[p]:
            continue
        for batch in read_partition(log, TopicPartition(topic, p), timeout_s, starts[p], stops[p]):
            records += len(batch)
            for key, value, headers in batch:
                if value is None:
                    continue
                hs = tuple(headers or ())
                if not any(name == "ce_time" for name, _ in hs):
                    raise EventsError(f"a record in {topic}[{p}] has no ce_time header: "
                                      "produce CloudEvents with a time (eventml produce, to_message)")
                try:
                    events.append(from_record(Record(topic, p, -1, 0, key, value, hs)))
                except EventDecodeError as e:
                    raise EventsError(f"a record in {topic}[{p}] is not a CloudEvent: {e}") from None
    return TopicEvents(topic, events, starts, stops, records)


def label_from_event(event: Event) -> Label:
    """The :class:`~eventml.ml.records.Label` a label event carries, known from its time.

    The event names the labelled event by ``data["event_id"]``, else by its ``subject``
    (as a ``card.chargeback`` does); its value is ``data["label"]``, and an event without
    one is a positive (1.0): a topic of confirmed cases, as card networks deliver them.
    ``data["time_ms"]``, when present, is when the label became known; else the event time.
    """
    data: Any = event.data if isinstance(event.data, Mapping) else {}
    event_id = data.get("event_id", event.subject)
    if event_id is None:
        raise EventsError(f"label event {event.id} names no event: give data.event_id or a "
                          "subject, or pass label_of= to read its shape")
    try:
        label = float(data.get("label", 1.0))
        known = int(data["time_ms"]) if "time_ms" in data else event.time_ms
    except (TypeError, ValueError) as e:
        raise EventsError(f"label event {event.id}: bad label or time_ms ({e})") from None
    return Label(event_id=str(event_id), label=label, time_ms=known)
