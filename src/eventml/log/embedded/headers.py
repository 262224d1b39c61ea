"""Record headers <-> one compact BLOB (pure; no I/O).

Empty headers are stored as ``NULL`` (the common, fast path). Otherwise each
header is ``<u16 name length><u32 value length><name UTF-8><value bytes>``,
little-endian, concatenated in order. Names round-trip exactly (lone surrogates
included, via ``surrogatepass``); values are raw bytes.
"""

from __future__ import annotations

import struct

from eventml.log.base import Headers

_PREFIX = struct.Struct("<HI")
_PREFIX_SIZE = _PREFIX.size
_MAX_NAME = 0xFFFF
_MAX_VALUE = 0xFFFFFFFF


def encode_headers(headers: Headers) -> bytes | None:
    """The stored form of ``headers``: ``None`` when there are none."""
    if not headers:
        return None
    parts: list[bytes] = []
    pack = _PREFIX.pack
    for name, value in headers:
        if not isinstance(name, str):
            raise TypeError(f"header names must be str, got {type(name).__name__}")
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(
                f"header {name!r}: values must be bytes, got {type(value).__name__}; "
                "encode text first, e.g. value.encode()"
            )
        raw_name = name.encode("utf-8", "surrogatepass")
        raw_value = bytes(value)
        if len(raw_name) > _MAX_NAME or len(raw_value) > _MAX_VALUE:
            raise ValueError(
                f"header {name[:40]!r}: name must be < 64 KiB and value < 4 GiB when encoded"
            )
        parts.append(pack(len(raw_name), len(raw_value)))
        parts.append(raw_name)
        parts.append(raw_value)
    return b"".join(parts)


def decode_headers(blob: bytes | None) -> Headers:
    """The headers stored as ``blob`` (``()`` for ``None``)."""
    if not blob:
        return ()
    out: list[tuple[str, bytes]] = []
    unpack = _PREFIX.unpack_from
    i = 0
    end = len(blob)
    while i < end:
        name_len, value_len = unpack(blob, i)
        i += _PREFIX_SIZE
        name = blob[i : i + name_len].decode("utf-8", "surrogatepass")
        i += name_len
        out.append((name, blob[i : i + value_len]))
        i += value_len
    return tuple(out)


def header_size(blob: bytes | None) -> int:
    """What the headers count for under ``retention_bytes``: name characters plus value bytes.

    Matches :func:`eventml.log._retention.record_size`.
    """
    return sum(len(name) + len(value) for name, value in decode_headers(blob))
