"""Records to items and items to messages, per topic codec (CloudEvents binary binding)."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson

from eventml.engine.graph import TopicRef
from eventml.engine.items import Item, _new_item, new_item
from eventml.log.base import Headers, Message, Record
from eventml.schema.contract import BoundContract, ContractViolation

PICKLE = "application/x-eventml-pickle"  # internal topics (repartition) only


class DecodeError(ValueError):
    """A record's value could not be decoded with its topic's codec."""


def decoder(
    topic: TopicRef, *, internal: bool = False, contract: BoundContract | None = None
) -> Decoder:
    """How records of ``topic`` become :class:`Item` s (a :class:`Decoder`).

    With a ``contract`` the value is read through it: unframed or framed, upcast to
    the topic's schema and validated (a violation is a :class:`DecodeError` too).
    """
    loads: Callable[[bytes], Any]
    if contract is not None:
        loads = contract.decode
    elif internal:
        loads = pickle.loads
    elif topic.value == "json":
        loads = orjson.loads
    elif topic.value == "str":
        loads = bytes.decode
    else:
        loads = _identity
    return Decoder(topic, loads, _time_getter(topic.time))


class Decoder:
    """Records of one topic to items: one record (``decoder(record)``, raises
    :class:`DecodeError`) or a whole poll's worth (:meth:`many`)."""

    __slots__ = ("_loads", "_time_of", "topic")

    def __init__(
        self, topic: TopicRef, loads: Callable[[bytes], Any], time_of: Callable[[Any], int] | None
    ) -> None:
        self.topic = topic
        self._loads = loads
        self._time_of = time_of

    def __call__(self, record: Record) -> Item:
        topic = self.topic
        raw = record.value
        try:
            value = None if raw is None else self._loads(raw)
            key = None if record.key is None else record.key.decode()
            ident = event_id(record)
        except ContractViolation as e:
            raise DecodeError(str(e)) from e
        except (ValueError, UnicodeDecodeError, pickle.UnpicklingError) as e:
            raise DecodeError(f"{topic.name}: cannot decode as {topic.value}: {e}") from e
        time_of = self._time_of
        if time_of is None:
            return new_item(key, value, record.timestamp_ms, ident, record)
        try:
            t = time_of(value)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise DecodeError(f"{topic.name}: no event time in the value ({type(e).__name__}: {e})") from e
        return new_item(key, value, t, ident, record)

    def many(self, records: Sequence[Record]) -> tuple[list[Item], list[tuple[Record, DecodeError]]]:
        """The items of ``records`` in order, and the records that could not be decoded
        (with why), in order: exactly what calling the decoder on each record gives.

        A batch decodes column by column (values, keys, times, ids), with no Python call
        per record but the value's own decoding; if anything in it fails, the batch is
        decoded again one record at a time, to find which and why.
        """
        try:
            return self._columns(records), []
        except Exception:  # the one-by-one pass below raises or reports it exactly
            pass
        items: list[Item] = []
        failed: list[tuple[Record, DecodeError]] = []
        for r in records:
            try:
                items.append(self(r))
            except DecodeError as e:
                failed.append((r, e))
        return items, failed

    def _columns(self, records: Sequence[Record]) -> list[Item]:
        loads, time_of = self._loads, self._time_of
        values = [None if raw is None else loads(raw) for raw in map(_VALUE, records)]
        keys = [None if k is None else k.decode() for k in map(_KEY, records)]
        ids = [h[0][1].decode() if h and h[0][0] == "ce_id" else event_id(r)
               for r, h in zip(records, map(_HEADERS, records), strict=True)]
        times = map(_TIMESTAMP, records) if time_of is None else [time_of(v) for v in values]
        return list(map(_new_item, zip(keys, values, times, ids, records, strict=True)))


_VALUE, _KEY, _TIMESTAMP, _HEADERS = (
    itemgetter(Record._fields.index(name)) for name in ("value", "key", "timestamp_ms", "headers")
)


def event_id(record: Record) -> str:
    """The CloudEvents id of a record (``ce_id``), or its log position if it has none."""
    for header in record.headers:
        if header[0] == "ce_id":
            return header[1].decode()
    return f"{record.topic}-{record.partition}-{record.offset}"


def encoder(
    topic: TopicRef, app: str, *, internal: bool = False, contract: BoundContract | None = None
) -> Callable[[Item], Message]:
    """A function from an item to the message written to ``topic``.

    With a ``contract`` the value is validated and written through it (a Confluent
    frame unless the contract says otherwise); a violation raises
    :class:`~eventml.schema.ContractViolation`, which the engine dead-letters.
    """
    dumps: Callable[[Any], bytes]
    if contract is not None:
        dumps = contract.encode
    elif internal:
        dumps = _pickle
    elif topic.value == "json":
        dumps = orjson.dumps
    elif topic.value == "str":
        dumps = str.encode
    else:
        dumps = _identity
    key_of = _key_getter(topic.key)
    source = f"eventml/{app}".encode()
    kind = (topic.event_type or f"{app}.{topic.name}").encode()
    content = (PICKLE if internal else _CONTENT[topic.value]).encode()
    if contract is not None:
        content = _content_of(contract).encode()

    def encode(item: Item) -> Message:
        value = item.value
        key = item.key if key_of is None else key_of(value)
        headers: Headers = (
            ("ce_specversion", b"1.0"),
            ("ce_id", item.id.encode()),
            ("ce_source", source),
            ("ce_type", kind),
            ("ce_time", _iso(item.time_ms)),
            ("content-type", content),
        )
        return Message(
            None if value is None else dumps(value),
            None if key is None else str(key).encode(),
            headers,
            item.time_ms,
        )

    return encode


_CONTENT = {"json": "application/json", "str": "text/plain", "bytes": "application/octet-stream"}


def _content_of(contract: BoundContract) -> str:
    if contract.contract.schema_type == "AVRO":
        return "application/vnd.schemaregistry.v1+avro"
    return "application/vnd.schemaregistry.v1+json" if contract.contract.framed else "application/json"


def _iso(ms: int) -> bytes:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").encode()


def _pickle(value: Any) -> bytes:
    return pickle.dumps(value, protocol=5)


def _identity(value: Any) -> Any:
    return value


def _time_getter(spec: str | Callable[[Any], int] | None) -> Callable[[Any], int] | None:
    if spec is None or callable(spec):
        return spec
    name = spec

    def get(value: Any) -> int:
        return int(value[name])

    return get


def _key_getter(spec: str | Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    if spec is None or callable(spec):
        return spec
    name = spec

    def get(value: Any) -> Any:
        return value[name]

    return get
