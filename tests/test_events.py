"""The envelope, its ids, and the CloudEvents bindings round-trip exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventml.events import (
    Event,
    EventDecodeError,
    from_record,
    from_structured,
    new_event_id,
    to_message,
    to_structured,
)
from eventml.log import Record

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)
times = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1),  # noqa: DTZ001 - naive bounds, aware values
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)
ext_names = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10).filter(
    lambda n: n not in {"id", "source", "type", "time", "subject", "dataschema", "specversion"}
)

events = st.builds(
    Event,
    type=names,
    data=json_values,
    source=names,
    key=st.none() | st.text(max_size=20),
    time=times,
    subject=st.none() | names,
    dataschema=st.none() | names,
    headers=st.lists(st.tuples(st.text("xyz-", min_size=1, max_size=5), st.binary(max_size=10)),
                     max_size=3).map(tuple),
    extensions=st.dictionaries(ext_names, st.text(max_size=10), max_size=3),
)


def _as_record(event: Event) -> Record:
    m = to_message(event)
    assert m.timestamp_ms is not None
    return Record("t", 0, 0, m.timestamp_ms, m.key, m.value, m.headers)


@given(events)
def test_binary_binding_round_trips(event: Event) -> None:
    assert from_record(_as_record(event)) == event


@given(events.filter(lambda e: not e.headers))
def test_structured_json_round_trips(event: Event) -> None:
    assert from_structured(to_structured(event)) == event


@given(st.binary(max_size=64))
def test_bytes_data_round_trips_both_ways(payload: bytes) -> None:
    e = Event("blob", payload, datacontenttype="application/octet-stream")
    assert from_record(_as_record(e)).data == payload
    assert from_structured(to_structured(e)).data == payload


def test_binary_binding_uses_ce_headers_and_event_time() -> None:
    e = Event("card.tx", {"a": 1}, source="/pos/7", key="card-1", subject="s")
    m = to_message(e)
    headers = dict(m.headers)
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_id"] == e.id.encode()
    assert headers["ce_type"] == b"card.tx" and headers["ce_source"] == b"/pos/7"
    assert headers["content-type"] == b"application/json"
    assert m.key == b"card-1" and m.value == b'{"a":1}'
    assert m.timestamp_ms == e.time_ms


def test_ids_are_uuid7_and_sort_by_creation() -> None:
    ids = [new_event_id() for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i[14] == "7" for i in ids[:10])


def test_events_reject_naive_time_and_empty_type() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Event("x", time=datetime(2024, 1, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="type"):
        Event("")


@pytest.mark.parametrize(
    ("headers", "value", "message"),
    [
        ((), b"{}", "missing header"),
        ((("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t"), ("ce_specversion", b"0.3")),
         b"{}", "specversion"),
        ((("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t")), b"{bad", "not valid JSON"),
        ((("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t"), ("ce_time", b"yesterday")),
         b"{}", "RFC 3339"),
        ((("ce_id", b"\xff"), ("ce_source", b"s"), ("ce_type", b"t")), b"{}", "UTF-8"),
    ],
)
def test_decoding_errors_say_what_is_wrong(
    headers: tuple[tuple[str, bytes], ...], value: bytes, message: str
) -> None:
    with pytest.raises(EventDecodeError, match=message):
        from_record(Record("t", 0, 0, 0, None, value, headers))


def test_structured_requires_the_cloudevents_attributes() -> None:
    with pytest.raises(EventDecodeError, match="id, source"):
        from_structured({"specversion": "1.0", "type": "t"})
