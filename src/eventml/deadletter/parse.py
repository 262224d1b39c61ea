"""Reading dead-letter records back (pure): provenance apart from the original."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from eventml.deadletter.record import (
    AT_MS,
    ATTEMPTS,
    DLQ_PREFIX,
    ERROR_CLASS,
    ERROR_KIND,
    ERROR_MESSAGE,
    SOURCE_PREFIX,
)
from eventml.log.base import Headers, Message, Record


class InvalidDeadLetter(ValueError):
    """A record in a dead-letter topic without (well-formed) ``eventml.dlq.*`` provenance."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-letter record: where it sits, the original message, and its provenance.

    ``headers`` are the original headers, provenance stripped; ``source`` holds the
    ``eventml.dlq.source.*`` fields by name (``topic``, ``partition``, ...), as text.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    source: Mapping[str, str]
    error_class: str
    error_message: str
    error_kind: str | None
    attempts: int
    at_ms: int

    @property
    def source_topic(self) -> str | None:
        return self.source.get("topic")

    @property
    def source_partition(self) -> int | None:
        return _int_or_none(self.source.get("partition"))

    @property
    def source_offset(self) -> int | None:
        return _int_or_none(self.source.get("offset"))

    def original(self) -> Message:
        """The message as it was before it was dead-lettered (partition chosen by key)."""
        return Message(value=self.value, key=self.key, headers=self.headers)


def parse_dead_letter(record: Record) -> DeadLetter:
    """Split a dead-letter record into the original message and its provenance.

    Raises :class:`InvalidDeadLetter` when the error class, attempts or time is
    missing or malformed. Where a provenance header repeats, the last one counts.
    """
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    original: list[tuple[str, bytes]] = []
    fields: dict[str, str] = {}
    for name, raw in record.headers:
        if name.startswith(DLQ_PREFIX):
            fields[name] = raw.decode("utf-8", "replace")
        else:
            original.append((name, raw))
    if ERROR_CLASS not in fields:
        raise InvalidDeadLetter(f"{where} is not a dead letter: no {ERROR_CLASS} header")
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp_ms,
        key=record.key,
        value=record.value,
        headers=tuple(original),
        source={
            k[len(SOURCE_PREFIX) :]: v for k, v in fields.items() if k.startswith(SOURCE_PREFIX)
        },
        error_class=fields[ERROR_CLASS],
        error_message=fields.get(ERROR_MESSAGE, ""),
        error_kind=fields.get(ERROR_KIND),
        attempts=_required_int(fields, ATTEMPTS, where),
        at_ms=_required_int(fields, AT_MS, where),
    )


def _required_int(fields: Mapping[str, str], name: str, where: str) -> int:
    value = _int_or_none(fields.get(name))
    if value is None:
        raise InvalidDeadLetter(f"{where}: header {name} must be an integer, got {fields.get(name)!r}")
    return value


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None
