"""W3C traceparent / tracestate: parse and format, malformed input, headers of records."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventml.log import Message, Record
from eventml.observe.tracing import (
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    TraceContext,
    TraceParent,
    child_traceparent,
    context_of,
    format_traceparent,
    format_tracestate,
    header_context,
    new_span_id,
    new_trace_id,
    parse_traceparent,
    parse_tracestate,
    traced_records,
    with_context,
)

EXAMPLE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

hex_ids = st.integers(min_value=1, max_value=2**128 - 1).map(lambda n: f"{n:032x}")
span_ids = st.integers(min_value=1, max_value=2**64 - 1).map(lambda n: f"{n:016x}")
traceparents = st.builds(TraceParent, hex_ids, span_ids, st.integers(0, 255))


def test_the_w3c_example_parses() -> None:
    tp = parse_traceparent(EXAMPLE)
    assert tp == TraceParent("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1)
    assert tp.sampled
    assert str(tp) == EXAMPLE
    assert parse_traceparent(EXAMPLE.encode()) == tp
    assert parse_traceparent(f" {EXAMPLE}\t") == tp  # optional whitespace of a header value
    assert not parse_traceparent(EXAMPLE[:-2] + "00").sampled  # type: ignore[union-attr]


@given(traceparents)
def test_format_then_parse_is_identity(tp: TraceParent) -> None:
    text = format_traceparent(tp)
    assert len(text) == 55
    assert parse_traceparent(text) == tp
    assert parse_traceparent(text.encode()) == tp


@given(traceparents, span_ids)
def test_a_child_keeps_the_trace_and_flags_with_a_new_parent(tp: TraceParent, span: str) -> None:
    child = child_traceparent(tp, span)
    assert (child.trace_id, child.parent_id, child.flags) == (tp.trace_id, span, tp.flags)
    fresh = child_traceparent(tp)
    assert fresh.trace_id == tp.trace_id and parse_traceparent(str(fresh)) == fresh


def test_new_ids_are_valid_and_distinct() -> None:
    ids = {new_trace_id() for _ in range(100)}
    spans = {new_span_id() for _ in range(100)}
    assert len(ids) == 100 and len(spans) == 100
    assert all(parse_traceparent(f"00-{t}-{s}-01") for t, s in zip(ids, spans, strict=True))


@pytest.mark.parametrize("bad", [
    "",
    "00",
    EXAMPLE[:-1],  # short
    EXAMPLE + "0",  # version 00 is exactly 55 characters
    EXAMPLE + "-extra",  # version 00 has no more fields
    EXAMPLE.upper(),  # hex is lowercase
    "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
    "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # all-zero trace id
    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # all-zero parent id
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff is invalid
    "0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
    "00-0af7651916cd43dd8448eb211c8031zz-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333x-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0x",
    "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",  # later version: '-' after flags
    b"\xff" * 55,
])
def test_malformed_traceparents_are_absent(bad: str | bytes) -> None:
    assert parse_traceparent(bad) is None
    assert context_of(bad, "a=b") is None


def test_a_later_version_may_append_fields() -> None:
    tp = parse_traceparent("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future")
    assert tp == TraceParent("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1)
    assert str(tp).startswith("00-")  # passed on as the version this code knows


@given(st.text(max_size=80) | st.binary(max_size=80))
def test_anything_parses_to_a_valid_context_or_none(value: str | bytes) -> None:
    tp = parse_traceparent(value)
    if tp is not None:
        assert parse_traceparent(format_traceparent(tp)) == tp


tracestate_keys = st.from_regex(r"[a-z][a-z0-9_\-*/]{0,10}|[a-z0-9][a-z0-9_]{0,5}@[a-z][a-z0-9]{0,5}",
                                fullmatch=True)
tracestate_values = st.from_regex(r"[!-+\--<>-~]([ -+\--<>-~]{0,10}[!-+\--<>-~])?", fullmatch=True)


@given(st.dictionaries(tracestate_keys, tracestate_values, min_size=1, max_size=32))
def test_tracestate_round_trips(members: dict[str, str]) -> None:
    entries = tuple(members.items())
    assert parse_tracestate(format_tracestate(entries)) == entries
    assert parse_tracestate(" , ".join(f"{k}={v}" for k, v in entries) + ",") == entries


@pytest.mark.parametrize("bad", [
    "", ",", "novalue", "=v", "Upper=v", "k=v,k=w", "k=a,b", "k=v=w", "k=a\tb", "k=\x7f", "k= ",
    ",".join(f"k{i}=v" for i in range(33)),  # at most 32 members
    b"k=\xff",
])
def test_malformed_tracestates_are_absent(bad: str | bytes) -> None:
    assert parse_tracestate(bad) is None


def test_a_context_drops_a_bad_tracestate_but_keeps_the_parent() -> None:
    ctx = context_of(EXAMPLE, "Bad=1")
    assert ctx == TraceContext(parse_traceparent(EXAMPLE), None)  # type: ignore[arg-type]
    assert context_of(EXAMPLE, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7") == TraceContext(
        parse_traceparent(EXAMPLE), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")  # type: ignore[arg-type]


def _record(headers: tuple[tuple[str, bytes], ...], offset: int = 0) -> Record:
    return Record("t", 0, offset, 0, None, b"{}", headers)


def test_record_headers_prefer_the_cloudevents_extension_over_a_plain_traceparent() -> None:
    other = "00-11111111111111111111111111111111-2222222222222222-00"
    both = (("ce_id", b"x"), ("traceparent", other.encode()), (TRACEPARENT_HEADER, EXAMPLE.encode()),
            (TRACESTATE_HEADER, b"a=1"))
    assert header_context(both) == context_of(EXAMPLE, "a=1")
    assert header_context((("traceparent", other.encode()), ("tracestate", b"b=2"))) == context_of(other, "b=2")
    # a malformed extension falls back to the plain header, and none at all is None
    assert header_context(((TRACEPARENT_HEADER, b"junk"), ("traceparent", other.encode()))) == context_of(other)
    assert header_context((("ce_id", b"x"),)) is None


def test_traced_records_finds_only_records_with_valid_context() -> None:
    plain = _record((("ce_id", b"a"), ("content-type", b"application/json")), 0)
    traced = _record((("ce_id", b"b"), (TRACEPARENT_HEADER, EXAMPLE.encode())), 1)
    broken = _record((("ce_id", b"c"), (TRACEPARENT_HEADER, b"00-junk")), 2)
    bare = _record((), 3)
    found = traced_records([plain, traced, broken, bare])
    assert found == [(traced, context_of(EXAMPLE))]


def test_with_context_replaces_the_trace_headers_of_a_message() -> None:
    old = (("ce_id", b"a"), (TRACEPARENT_HEADER, b"00-old"), (TRACESTATE_HEADER, b"x=1"), ("other", b"o"))
    ctx = context_of(EXAMPLE, "y=2")
    assert ctx is not None
    m = with_context(Message(b"{}", None, old), ctx)
    assert m.headers == (("ce_id", b"a"), ("other", b"o"), (TRACEPARENT_HEADER, EXAMPLE.encode()),
                         (TRACESTATE_HEADER, b"y=2"))
    assert context_of(EXAMPLE).headers() == ((TRACEPARENT_HEADER, EXAMPLE.encode()),)  # type: ignore[union-attr]


# -- which tracing is in force ----------------------------------------------------------


def test_the_environment_turns_tracing_on_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from eventml.observe import tracing

    monkeypatch.setattr(tracing, "_env_checked", False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    try:
        on = tracing.current()
        assert on is not None and on.provider is not None
        assert tracing.current() is on
    finally:
        tracing.disable()
    assert tracing.current() is None  # read once: disable() is final


def test_a_bad_exporter_in_the_environment_leaves_tracing_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from eventml.observe import tracing

    monkeypatch.setattr(tracing, "_env_checked", False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    assert tracing.current() is None
    assert "tracing stays off" in caplog.text and "zipkin" in caplog.text
    with pytest.raises(ValueError, match="unknown span exporter 'zipkin'"):
        tracing.configure_from_env()


def test_a_global_sdk_provider_turns_tracing_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from eventml.observe import tracing

    assert tracing.current() is None
    provider = TracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    on = tracing.current()
    assert on is not None and tracing.current() is on
