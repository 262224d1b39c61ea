"""A poll's records decode in one pass (``Decoder.many``) exactly as one at a time."""

from __future__ import annotations

import pytest

from eventml.engine.codecs import DecodeError, Decoder, decoder
from eventml.engine.graph import TopicRef
from eventml.engine.items import Item
from eventml.log import Record


def _record(offset: int, value: bytes | None, *, key: bytes | None = None,
            headers: tuple[tuple[str, bytes], ...] | None = None) -> Record:
    if headers is None:
        headers = (("ce_id", f"id-{offset}".encode()),)
    return Record("t", 0, offset, 1_000 + offset, key, value, headers)


def _one_by_one(dec: Decoder, records: list[Record]) -> tuple[list[Item], list[tuple[Record, str]]]:
    items, failed = [], []
    for r in records:
        try:
            items.append(dec(r))
        except DecodeError as e:
            failed.append((r, str(e)))
    return items, failed


def _many(dec: Decoder, records: list[Record]) -> tuple[list[Item], list[tuple[Record, str]]]:
    items, failed = dec.many(records)
    return items, [(r, str(e)) for r, e in failed]


GOOD = [
    _record(0, b'{"n": 1, "at": 5}', key=b"k"),
    _record(1, None),  # a tombstone
    _record(2, b'{"n": 2, "at": 6}', headers=()),  # no ce_id: the id is the position
    _record(3, b'{"n": 3, "at": 7}', headers=(("x", b"1"), ("ce_id", b"late"), ("ce_id", b"second"))),
    _record(4, b'{"n": 4, "at": 8}', headers=(("ce_id", b"first"), ("ce_id", b"second"))),
]


@pytest.mark.parametrize("time", [None, "at"])
def test_a_clean_batch_decodes_as_one_by_one(time: str | None) -> None:
    records = [r for r in GOOD if time is None or r.value is not None]
    dec = decoder(TopicRef("t", time=time))
    assert _many(dec, records) == _one_by_one(dec, records)
    items, _ = dec.many(records)
    ids = ["id-0", "t-0-2", "late", "first"] if time else ["id-0", "id-1", "t-0-2", "late", "first"]
    assert [it.id for it in items] == ids
    assert items[0] == Item("k", {"n": 1, "at": 5}, 5 if time else 1_000, "id-0", records[0])


def test_a_batch_with_bad_records_reports_them_in_order_and_keeps_the_rest() -> None:
    bad = [
        _record(10, b"{not json"),
        _record(11, b'{"n": 11}', key=b"\xff"),  # key not UTF-8
        _record(12, b'{"n": 12}'),  # no "at": no event time
    ]
    records = [GOOD[0], bad[0], GOOD[2], bad[1], GOOD[3], bad[2], GOOD[4]]
    dec = decoder(TopicRef("t", time="at"))
    items, failed = _many(dec, records)
    assert (items, failed) == _one_by_one(dec, records)
    assert [it.record.offset for it in items if it.record] == [0, 2, 3, 4]
    assert [r.offset for r, _ in failed] == [10, 11, 12]
    assert "no event time" in failed[2][1]


def test_an_error_that_is_not_a_decode_error_still_propagates() -> None:
    records = [GOOD[0], _record(1, b"{}", headers=(("ce_id", None),))]  # type: ignore[arg-type]
    dec = decoder(TopicRef("t"))
    with pytest.raises(AttributeError):
        dec(records[1])
    with pytest.raises(AttributeError):
        dec.many(records)
