"""Schemas and data contracts (issue 4, in progress): so far the registry wire format.

>>> frame = encode_frame(7, b'{"amount": 12.5}')
>>> frame[:5]
b'\\x00\\x00\\x00\\x00\\x07'
>>> decode_frame(frame)
Frame(schema_id=7, payload=b'{"amount": 12.5}')
"""

from eventml.schema.wire import (
    HEADER_SIZE,
    MAGIC_BYTE,
    BadMagicByte,
    Frame,
    FrameError,
    ShortFrame,
    UnknownSchemaId,
    decode_frame,
    encode_frame,
)

__all__ = [
    "HEADER_SIZE",
    "MAGIC_BYTE",
    "BadMagicByte",
    "Frame",
    "FrameError",
    "ShortFrame",
    "UnknownSchemaId",
    "decode_frame",
    "encode_frame",
]
