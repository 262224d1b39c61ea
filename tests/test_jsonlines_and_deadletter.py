"""JSON lines parsing and dead-letter records (pure parts of `eventml produce`)."""

from __future__ import annotations

from eventml.deadletter import dead_letter_message, redact
from eventml.events.jsonlines import BadLine, LineOptions, parse_lines


def test_good_and_bad_lines_are_numbered() -> None:
    lines = [b'{"card": "c1", "amount": 5}\n', b"\n", b"{oops\n", b"[1]\n", b'{"amount": 2}\n',
             b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "partitionkey": "k"}\n']
    out = list(parse_lines(lines, LineOptions(key_field="card", type="tx")))
    numbers = {n: type(item).__name__ for n, item in out}
    assert numbers == {1: "Event", 3: "BadLine", 4: "BadLine", 5: "BadLine", 6: "Event"}
    bad = {n: item for n, item in out if isinstance(item, BadLine)}
    assert "invalid JSON" in bad[3].error
    assert "expected a JSON object" in bad[4].error
    assert "no field 'card'" in bad[5].error
    assert bad[3].raw == b"{oops"
    event = out[0][1]
    assert not isinstance(event, BadLine)
    assert event.key == "c1" and event.type == "tx" and event.data == {"card": "c1", "amount": 5}
    structured = out[-1][1]
    assert not isinstance(structured, BadLine)
    assert structured.key == "k" and structured.id == "1"


def test_time_field_accepts_epoch_and_rfc3339() -> None:
    opts = LineOptions(time_field="ts")
    (_, a), (_, b), (_, c) = parse_lines(
        [b'{"ts": 1700000000}', b'{"ts": 1700000000000}', b'{"ts": "2023-11-14T22:13:20Z"}'], opts)
    assert not isinstance(a, BadLine) and not isinstance(b, BadLine) and not isinstance(c, BadLine)
    assert a.time_ms == b.time_ms == c.time_ms == 1_700_000_000_000


def test_dead_letter_keeps_original_bytes_and_adds_provenance() -> None:
    m = dead_letter_message(b"\x00raw", key=b"k", headers=(("h", b"v"),),
                            error=ValueError("bad password=hunter2 here"),
                            source={"topic": "t", "line": 3}, now_ms=5)
    headers = dict(m.headers)
    assert m.value == b"\x00raw" and m.key == b"k" and headers["h"] == b"v"
    assert headers["eventml.dlq.source.topic"] == b"t"
    assert headers["eventml.dlq.source.line"] == b"3"
    assert headers["eventml.dlq.error.class"] == b"builtins.ValueError"
    assert b"hunter2" not in headers["eventml.dlq.error.message"]


def test_redact_masks_secrets_and_bounds_length() -> None:
    assert redact("token: abc123 and api_key=zz") == "token: *** and api_key=***"
    assert len(redact("x" * 5000)) == 500
