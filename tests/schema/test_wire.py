"""The registry wire format: round trips, typed errors, and a fuzz run of the decoder."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventml.schema
from eventml.schema import (
    BadMagicByte,
    FrameError,
    ShortFrame,
    UnknownSchemaId,
    decode_frame,
    encode_frame,
)


@given(st.integers(0, 0xFFFF_FFFF), st.binary(min_size=1, max_size=512))
def test_frames_round_trip(schema_id: int, payload: bytes) -> None:
    frame = encode_frame(schema_id, payload)
    assert frame[0] == 0 and int.from_bytes(frame[1:5], "big") == schema_id
    assert decode_frame(frame) == (schema_id, payload)


def test_the_layout_is_confluents() -> None:
    # magic byte 0, id 258 as big-endian uint32, then the payload as is
    assert encode_frame(258, b"\x02hi") == b"\x00\x00\x00\x01\x02\x02hi"


@pytest.mark.parametrize(
    ("data", "error", "says"),
    [
        (None, ShortFrame, "no value"),
        (b"", ShortFrame, "0 byte(s)"),
        (b"\x00\x00\x00\x00\x01", ShortFrame, "5 byte(s)"),  # a header with no payload
        (b"\x01\x00\x00\x00\x01{}", BadMagicByte, "first byte is 1"),
        (b'{"amount": 1}', BadMagicByte, "first byte is 123"),  # plain JSON, not a frame
    ],
)
def test_bad_frames_raise_typed_errors(data: bytes | None, error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says.replace("(", r"\(").replace(")", r"\)")):
        decode_frame(data)


def test_encode_refuses_what_no_decoder_could_read() -> None:
    with pytest.raises(ValueError, match="schema id"):
        encode_frame(-1, b"x")
    with pytest.raises(ValueError, match="schema id"):
        encode_frame(2**32, b"x")
    with pytest.raises(ValueError, match="empty"):
        encode_frame(1, b"")


def test_unknown_schema_id_is_a_frame_error_that_names_the_id() -> None:
    e = UnknownSchemaId(42)
    assert isinstance(e, FrameError) and isinstance(e, LookupError) and e.schema_id == 42
    assert "42" in str(e)


@settings(max_examples=3_000)  # CI; the 10^5-input run is a separate fuzz job
@given(st.binary(max_size=64))
def test_fuzz_the_decoder_returns_a_frame_or_a_frame_error(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except FrameError:
        assert len(data) <= 5 or data[0] != 0
    else:
        assert len(data) > 5 and data[0] == 0
        assert encode_frame(frame.schema_id, frame.payload) == data


def test_module_examples() -> None:
    assert doctest.testmod(eventml.schema).failed == 0
