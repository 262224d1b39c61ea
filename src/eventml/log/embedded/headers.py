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
    names = _NAMES
    for name, value in headers:
        raw_name = names.get(name) if type(name) is str else None
        if raw_name is None:
            raw_name = _encode_name(name)
        if type(value) is not bytes:
            value = _value_bytes(name, value)
        if len(value) > _MAX_VALUE:
            raise ValueError(f"header {name[:40]!r}: value must be < 4 GiB")
        parts.append(pack(len(raw_name), len(value)))
        parts.append(raw_name)
        parts.append(value)
    return b"".join(parts)


# Header names repeat from record to record (ce_id, ce_type, ...): their encoded form is
# kept, up to a bound, so a record's headers cost one pack and three appends each.
_NAMES: dict[str, bytes] = {}
_MAX_NAMES = 1024


def _encode_name(name: object) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"header names must be str, got {type(name).__name__}")
    raw = name.encode("utf-8", "surrogatepass")
    if len(raw) > _MAX_NAME:
        raise ValueError(f"header {name[:40]!r}: name must be < 64 KiB when encoded")
    if len(_NAMES) < _MAX_NAMES:
        _NAMES[name] = raw
    return raw


def _value_bytes(name: str, value: object) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(
            f"header {name!r}: values must be bytes, got {type(value).__name__}; "
            "encode text first, e.g. value.encode()"
        )
    return bytes(value)


def decode_headers(blob: bytes | None) -> Headers:
    """The headers stored as ``blob`` (``()`` for ``None``)."""
    if not blob:
        return ()
    unpack = _PREFIX.unpack_from
    name_len, value_len = unpack(blob, 0)
    if _PREFIX_SIZE + name_len + value_len == len(blob):  # one header (an event id): no loop
        i = _PREFIX_SIZE + name_len
        return ((blob[_PREFIX_SIZE:i].decode("utf-8", "surrogatepass"), blob[i:]),)
    out: list[tuple[str, bytes]] = []
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
