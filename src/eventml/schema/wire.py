"""The Confluent Schema Registry wire format (pure): ``0x00 | schema id (uint32, big-endian) | payload``.

The payload is Avro binary (no container) or UTF-8 JSON. As confluent-kafka's
deserializers do, a frame must be longer than the 5-byte header: a frame of 5
bytes or fewer, or one whose first byte is not 0, is an error. Errors are
typed so a consumer can dead-letter the record with a precise reason.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

MAGIC_BYTE = 0
HEADER_SIZE = 5
MAX_SCHEMA_ID = 0xFFFF_FFFF

_HEADER = struct.Struct(">bI")


class FrameError(ValueError):
    """A record is not a valid schema-registry frame; the message says why."""


class ShortFrame(FrameError):
    pass


class BadMagicByte(FrameError):
    pass


class UnknownSchemaId(FrameError, LookupError):
    """The frame names a schema id the registry does not hold."""

    def __init__(self, schema_id: int) -> None:
        super().__init__(f"unknown schema id {schema_id}: register the schema, or check the registry URL")
        self.schema_id = schema_id


class Frame(NamedTuple):
    schema_id: int
    payload: bytes


def encode_frame(schema_id: int, payload: bytes) -> bytes:
    """The frame carrying ``payload`` written with schema ``schema_id``."""
    if not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise ValueError(f"schema id must be in 0..{MAX_SCHEMA_ID}, got {schema_id}")
    if not payload:
        raise ValueError("payload must not be empty: a frame holds at least one payload byte")
    return _HEADER.pack(MAGIC_BYTE, schema_id) + bytes(payload)


def frame_header(schema_id: int) -> bytes:
    """The 5 bytes every frame of ``schema_id`` starts with (prepend them to a payload)."""
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def decode_frame(data: bytes | bytearray | memoryview | None) -> Frame:
    """The schema id and payload of ``data``; raises :class:`ShortFrame` or :class:`BadMagicByte`."""
    if data is None:
        raise ShortFrame("no value: expected a schema-registry frame (magic byte 0, 4-byte id, payload)")
    raw = bytes(data)
    if len(raw) <= HEADER_SIZE:
        raise ShortFrame(
            f"frame of {len(raw)} byte(s): expected more than {HEADER_SIZE} "
            "(magic byte 0, 4-byte schema id, payload)"
        )
    if raw[0] != MAGIC_BYTE:
        raise BadMagicByte(
            f"first byte is {raw[0]}, expected magic byte {MAGIC_BYTE}: "
            "not written by a schema-registry serializer"
        )
    return Frame(int.from_bytes(raw[1:HEADER_SIZE], "big"), raw[HEADER_SIZE:])
