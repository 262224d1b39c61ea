"""W3C trace context carried in event headers, and OpenTelemetry spans around it.

The pure part (no dependencies) parses and formats ``traceparent`` / ``tracestate``
(W3C Trace Context level 1) and finds them in a record's headers. A record carries its
trace context as the CloudEvents distributed-tracing extension in the Kafka binary
binding: headers ``ce_traceparent`` and ``ce_tracestate`` (what :func:`eventml.events.to_message`
writes for an event's ``traceparent`` extension). A plain ``traceparent`` record header, as
OpenTelemetry's Kafka instrumentations write it, is read too; ``ce_traceparent`` wins.

The adapter records spans when tracing is on: :func:`configure` was called, or
OpenTelemetry's global tracer provider is an SDK one, or ``OTEL_TRACES_EXPORTER`` names an
exporter (``console``, ``otlp``: read once, on first use). Then:

* HTTP ingest records an ``ingest TOPIC`` span (PRODUCER) per request whose events carry
  trace context (the request's ``traceparent`` header, or a CloudEvent's ``traceparent``
  attribute, which wins for that event), and writes the span's context in each event's
  ``ce_traceparent``;
* a worker records a ``process TOPIC`` span (CONSUMER, one per traced input record, the
  record's context as parent), and every output derived from that record (``to``,
  ``key_by`` repartitions, late events) carries the span's context, so an alert descends
  from the ingest request in ONE trace.

Events without trace context get no span and no header (unless ``configure(root_spans=True)``
has ingest start new traces). With tracing off the worker does nothing per record; the
ingest route still forwards a request's ``traceparent`` into the events unchanged.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from eventml.log.base import Headers, Message, Record

if TYPE_CHECKING:
    from types import TracebackType

TRACEPARENT_HEADER = "ce_traceparent"
TRACESTATE_HEADER = "ce_tracestate"
W3C_TRACEPARENT = "traceparent"
W3C_TRACESTATE = "tracestate"
ENV_EXPORTER = "OTEL_TRACES_EXPORTER"
INSTRUMENTATION = "eventml"
_log = logging.getLogger(__name__)

_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_MAX_TRACESTATE_MEMBERS = 32
_TS_KEY = re.compile(r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}")
_TS_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


# -- the pure part -------------------------------------------------------------------


class TraceParent(NamedTuple):
    """A W3C ``traceparent``: the trace, the span that is the parent, the flags."""

    trace_id: str  # 32 lowercase hex digits, not all zero
    parent_id: str  # 16 lowercase hex digits, not all zero
    flags: int = 1  # bit 0: sampled

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 1)

    def __str__(self) -> str:
        return format_traceparent(self)


def _is_hex(text: str) -> bool:
    return _HEX.issuperset(text)


def parse_traceparent(value: str | bytes | None) -> TraceParent | None:
    """The trace context in ``value``, or None if it is absent or malformed.

    Version ``00`` is exactly ``00-<32 hex>-<16 hex>-<2 hex>``, lowercase; a later
    version may append ``-...`` fields (ignored); version ``ff`` and all-zero ids are
    invalid. Surrounding blanks are tolerated (HTTP header values)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    text = value.strip(" \t")
    if len(text) < 55 or text[2] != "-" or text[35] != "-" or text[52] != "-":
        return None
    version, trace_id, parent_id, flags = text[:2], text[3:35], text[36:52], text[53:55]
    if not _is_hex(version) or version == "ff":
        return None
    if len(text) > 55 and (version == "00" or text[55] != "-"):
        return None
    if not (_is_hex(trace_id) and _is_hex(parent_id) and _is_hex(flags)):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, parent_id, int(flags, 16))


def format_traceparent(tp: TraceParent) -> str:
    """``tp`` as a version-00 ``traceparent`` value."""
    return f"00-{tp.trace_id}-{tp.parent_id}-{tp.flags & 0xFF:02x}"


def new_trace_id() -> str:
    """A random trace id (never all zero)."""
    return f"{random.getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    """A random span id (never all zero)."""
    return f"{random.getrandbits(64) or 1:016x}"


def child_traceparent(tp: TraceParent, span_id: str | None = None) -> TraceParent:
    """The context a span started under ``tp`` passes on: same trace and flags, that
    span's id (``span_id``, default a new one) as the parent."""
    return TraceParent(tp.trace_id, span_id or new_span_id(), tp.flags)


def parse_tracestate(value: str | bytes | None) -> tuple[tuple[str, str], ...] | None:
    """The ``tracestate`` members in order, or None if absent or malformed (then the
    whole header is ignored, as W3C says). Empty members are skipped."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    members: list[tuple[str, str]] = []
    seen: set[str] = set()
    for part in value.split(","):
        member = part.strip(" \t")
        if not member:
            continue
        key, eq, val = member.partition("=")
        if not eq or not _TS_KEY.fullmatch(key) or not _TS_VALUE.fullmatch(val) or key in seen:
            return None
        seen.add(key)
        members.append((key, val))
    if not members or len(members) > _MAX_TRACESTATE_MEMBERS:
        return None
    return tuple(members)


def format_tracestate(members: Iterable[tuple[str, str]]) -> str:
    return ",".join(f"{k}={v}" for k, v in members)


class TraceContext(NamedTuple):
    """A traceparent and its (validated, formatted) tracestate, if any."""

    parent: TraceParent
    state: str | None = None

    def headers(self) -> Headers:
        """As record headers (``ce_traceparent``, ``ce_tracestate``)."""
        tp = (TRACEPARENT_HEADER, format_traceparent(self.parent).encode())
        if self.state:
            return (tp, (TRACESTATE_HEADER, self.state.encode()))
        return (tp,)


def context_of(traceparent: str | bytes | None, tracestate: str | bytes | None = None,
               ) -> TraceContext | None:
    """The context of a ``traceparent`` / ``tracestate`` pair (a bad tracestate is dropped)."""
    tp = parse_traceparent(traceparent)
    if tp is None:
        return None
    members = parse_tracestate(tracestate)
    return TraceContext(tp, None if members is None else format_tracestate(members))


_TRACE_NAMES = frozenset({TRACEPARENT_HEADER, W3C_TRACEPARENT})
_CONTEXT_NAMES = _TRACE_NAMES | {TRACESTATE_HEADER, W3C_TRACESTATE}


def header_context(headers: Headers) -> TraceContext | None:
    """The trace context a record's headers carry (``ce_traceparent`` first, then a plain
    ``traceparent``), or None."""
    found: dict[str, bytes] = {}
    for name, value in headers:
        if name in _CONTEXT_NAMES:
            found.setdefault(name, value)
    for tp_name, ts_name in ((TRACEPARENT_HEADER, TRACESTATE_HEADER), (W3C_TRACEPARENT, W3C_TRACESTATE)):
        ctx = context_of(found.get(tp_name), found.get(ts_name))
        if ctx is not None:
            return ctx
    return None


def traced_records(records: Sequence[Record]) -> list[tuple[Record, TraceContext]]:
    """The records that carry valid trace context, with it (one tight pass over the
    header names; records without any trace header cost one loop over their headers)."""
    out: list[tuple[Record, TraceContext]] = []
    names = _TRACE_NAMES
    for r in records:
        for h in r[6]:
            if h[0] in names:
                ctx = header_context(r[6])
                if ctx is not None:
                    out.append((r, ctx))
                break
    return out


def without_trace_headers(headers: Headers) -> Headers:
    return tuple(h for h in headers if h[0] not in (TRACEPARENT_HEADER, TRACESTATE_HEADER))


def with_context(message: Message, ctx: TraceContext) -> Message:
    """``message`` carrying ``ctx`` (replacing any trace headers it had)."""
    return message._replace(headers=(*without_trace_headers(message.headers), *ctx.headers()))


# -- the OpenTelemetry adapter ---------------------------------------------------------


def _otel() -> tuple[Any, Any]:
    """(``opentelemetry.trace``, ``opentelemetry.trace.status``), or ImportError saying what to install."""
    try:
        from opentelemetry import trace
        from opentelemetry.trace import status
    except ImportError as e:
        raise ImportError(
            f"tracing needs OpenTelemetry ({e}): pip install 'eventml[otel]'"
        ) from None
    return trace, status


class Tracing:
    """Records eventml's spans with one OpenTelemetry tracer."""

    def __init__(self, tracer: Any, *, root_spans: bool = False) -> None:
        self.tracer = tracer
        self.root_spans = root_spans
        self.provider: Any = None  # the provider configure() made (shut down by disable())
        self._trace, status = _otel()
        self._error = status.StatusCode.ERROR
        self._status = status.Status
        t = self._trace
        self._span_types = (t.NonRecordingSpan, t.SpanContext, t.TraceFlags, t.TraceState)

    # contexts --------------------------------------------------------------------
    def _parent(self, ctx: TraceContext | None) -> Any:
        """An OpenTelemetry context whose current span is the remote parent ``ctx``."""
        if ctx is None:
            return None
        NonRecordingSpan, SpanContext, TraceFlags, TraceState = self._span_types
        state = TraceState(list(parse_tracestate(ctx.state) or ())) if ctx.state else None
        sc = SpanContext(int(ctx.parent.trace_id, 16), int(ctx.parent.parent_id, 16), is_remote=True,
                         trace_flags=TraceFlags(ctx.parent.flags & 0xFF), trace_state=state)
        return self._trace.set_span_in_context(NonRecordingSpan(sc))

    @staticmethod
    def context_of_span(span: Any) -> TraceContext:
        """The context a span passes on to what it produces."""
        sc = span.get_span_context()
        state = sc.trace_state.to_header() if sc.trace_state else None
        return TraceContext(TraceParent(f"{sc.trace_id:032x}", f"{sc.span_id:016x}",
                                        int(sc.trace_flags)), state or None)

    def fail(self, span: Any, error: BaseException | str) -> None:
        """Mark ``span`` failed: the error's type and one-line message, no traceback."""
        if isinstance(error, BaseException):
            span.set_attribute("error.type", type(error).__qualname__)
            error = str(error)
        span.set_status(self._status(self._error, " ".join(error.split())[:300]))

    # process -------------------------------------------------------------------------
    def process(self, traced: Sequence[tuple[Record, TraceContext]], out: dict[int, Headers], *,
                group: str, system: str) -> ProcessSpans:
        """Start one span per traced record; ``out[id(record)]`` gets the headers its
        outputs must carry."""
        kind = self._trace.SpanKind.CONSUMER
        spans = []
        for record, ctx in traced:
            attrs: dict[str, Any] = {
                "messaging.system": system,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.consumer.group.name": group,
                "messaging.kafka.offset": record.offset,
            }
            for name, value in record.headers:
                if name == "ce_id":
                    attrs["messaging.message.id"] = value.decode(errors="replace")
                    break
            span = self.tracer.start_span(f"process {record.topic}", context=self._parent(ctx),
                                          kind=kind, attributes=attrs)
            out[id(record)] = self.context_of_span(span).headers()
            spans.append(span)
        return ProcessSpans(self, spans)


class ProcessSpans:
    """A batch's process spans, ended together once the batch is committed (or not)."""

    def __init__(self, tracing: Tracing, spans: list[Any]) -> None:
        self._tracing = tracing
        self.spans = spans

    def end(self, error: BaseException | str | None = None) -> None:
        for span in self.spans:
            if error is not None:
                self._tracing.fail(span, error)
            span.end()
        self.spans = []


class IngestSpans:
    """The trace context of one ingest request: as a context manager, the spans (one per
    distinct parent) are open while the events are appended; :attr:`messages` carry them."""

    def __init__(self, tracing: Tracing | None, headers: Mapping[str, str], topic: str,
                 messages: list[Message], system: str = "eventml") -> None:
        self._tracing = tracing
        self.spans: list[Any] = []
        request = context_of(headers.get(W3C_TRACEPARENT), headers.get(W3C_TRACESTATE))
        self.messages = messages
        if tracing is None and request is None:
            return
        own = [_own_context(m) for m in messages]
        if tracing is None:  # forward the request's context unchanged into events without one
            assert request is not None
            self.messages = [m if ctx is not None else with_context(m, request)
                             for m, ctx in zip(messages, own, strict=True)]
            return
        current = tracing._trace.get_current_span()  # e.g. an ASGI instrumentation's server span
        use_current = current.get_span_context().is_valid
        by_parent: dict[TraceContext | None, TraceContext] = {}
        out: list[Message] = []
        for m, ctx in zip(messages, own, strict=True):
            parent = ctx or request
            if parent is None and not use_current and not tracing.root_spans:
                out.append(m)
                continue
            child = by_parent.get(parent)
            if child is None:
                span = self._start(tracing, parent, use_current and ctx is None, topic, system,
                                   [m2 for m2, c2 in zip(messages, own, strict=True) if (c2 or request) == parent])
                self.spans.append(span)
                child = by_parent[parent] = tracing.context_of_span(span)
            out.append(with_context(m, child))
        self.messages = out

    @staticmethod
    def _start(tracing: Tracing, parent: TraceContext | None, under_current: bool, topic: str,
               system: str, messages: list[Message]) -> Any:
        attrs: dict[str, Any] = {
            "messaging.system": system,
            "messaging.operation.type": "send",
            "messaging.operation.name": "ingest",
            "messaging.destination.name": topic,
            "http.request.method": "POST",
            "http.route": "/v1/topics/{topic}/events",
        }
        if len(messages) > 1:
            attrs["messaging.batch.message_count"] = len(messages)
        else:
            ids = [v for n, v in messages[0].headers if n == "ce_id"]
            if ids:
                attrs["messaging.message.id"] = ids[0].decode(errors="replace")
        # under no parent (root_spans), the current context has no span: a new trace
        context = None if under_current else tracing._parent(parent)
        return tracing.tracer.start_span(f"ingest {topic}", context=context,
                                         kind=tracing._trace.SpanKind.PRODUCER, attributes=attrs)

    def __enter__(self) -> list[Message]:
        return self.messages

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.end(error)

    def end(self, error: BaseException | None = None) -> None:
        tracing = self._tracing
        for span in self.spans:
            if error is not None and tracing is not None:
                tracing.fail(span, getattr(error, "message", None) or error)
            span.end()
        self.spans = []


def _own_context(message: Message) -> TraceContext | None:
    for name, _ in message.headers:
        if name == TRACEPARENT_HEADER:
            return context_of(*_pair(message.headers))
    return None


def _pair(headers: Headers) -> tuple[bytes | None, bytes | None]:
    d = dict(headers)
    return d.get(TRACEPARENT_HEADER), d.get(TRACESTATE_HEADER)


# -- which tracer: configure(), the global provider, or the environment ------------------

_lock = threading.Lock()
_configured: Tracing | None = None
_global: tuple[Any, Tracing | None] = (None, None)  # (provider seen, its Tracing)
_env_checked = False
_otel_missing = False


def configure(
    exporter: Any = None,
    *,
    provider: Any = None,
    service_name: str | None = None,
    root_spans: bool = False,
    batch: bool = True,
) -> Tracing:
    """Turn tracing on for this process and return it.

    ``provider``: an OpenTelemetry ``TracerProvider`` to use as is. Otherwise a new SDK
    provider (service ``service_name``, default ``$OTEL_SERVICE_NAME`` or ``eventml``)
    exports to ``exporter``: a ``SpanExporter``, ``"console"``, ``"otlp"`` (needs
    ``opentelemetry-exporter-otlp``) or None (spans are made, not exported); ``batch``
    exports in the background (``BatchSpanProcessor``), else as each span ends.
    ``root_spans``: ingest starts a new trace for events that come without one.
    eventml's provider is its own: OpenTelemetry's global one is left alone."""
    global _configured
    _otel()
    if provider is None:
        provider = _sdk_provider(exporter, service_name, batch)
    tracing = Tracing(provider.get_tracer(INSTRUMENTATION), root_spans=root_spans)
    tracing.provider = provider
    with _lock:
        _configured = tracing
    return tracing


def _sdk_provider(exporter: Any, service_name: str | None, batch: bool) -> Any:
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError as e:
        raise ImportError(f"tracing needs the OpenTelemetry SDK ({e}): pip install 'eventml[otel]'"
                          ) from None
    name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "eventml"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    if exporter == "console":
        exporter = ConsoleSpanExporter()
    elif exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter,
            )
        except ImportError:
            raise ImportError("OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: pip install "
                              "opentelemetry-exporter-otlp-proto-http") from None
        exporter = OTLPSpanExporter()
    elif isinstance(exporter, str):
        raise ValueError(f"unknown span exporter {exporter!r}: use 'console', 'otlp' or a "
                         "SpanExporter (OTEL_TRACES_EXPORTER: console, otlp or none)")
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    return provider


def disable() -> None:
    """Turn off what :func:`configure` turned on (OpenTelemetry's global provider, if it
    is an SDK one, still counts)."""
    global _configured
    with _lock:
        tracing, _configured = _configured, None
    provider = None if tracing is None else tracing.provider
    if provider is not None and hasattr(provider, "shutdown"):
        provider.shutdown()


def configure_from_env() -> Tracing | None:
    """:func:`configure` with ``$OTEL_TRACES_EXPORTER`` (``console`` or ``otlp``; unset or
    ``none``: nothing). Raises ImportError/ValueError naming what is missing or wrong."""
    name = os.environ.get(ENV_EXPORTER, "").strip().lower()
    if not name or name == "none":
        return None
    return configure(name)


def current() -> Tracing | None:
    """The tracing in force, or None (cheap: called once per batch and per request)."""
    global _env_checked, _otel_missing, _global
    tracing = _configured
    if tracing is not None:
        return tracing
    if not _env_checked:
        _env_checked = True
        if os.environ.get(ENV_EXPORTER, "").strip().lower() not in ("", "none"):
            try:
                return configure_from_env()
            except (ImportError, ValueError) as e:  # the CLI fails on it at start-up; code goes on
                _log.warning("tracing stays off: %s=%s: %s", ENV_EXPORTER, os.environ[ENV_EXPORTER], e)
    if _otel_missing:
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        _otel_missing = True
        return None
    provider = trace.get_tracer_provider()
    seen, found = _global
    if provider is seen:
        return found
    found = None
    if type(provider).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider"):
        found = Tracing(provider.get_tracer(INSTRUMENTATION))
    _global = (provider, found)
    return found


def ingest_spans(headers: Mapping[str, str], topic: str, messages: list[Message], *,
                 system: str = "eventml") -> IngestSpans:
    """The ingest route's trace handling (see the module docstring): ``with
    ingest_spans(request.headers, topic, messages) as messages: append(messages)``."""
    return IngestSpans(current(), headers, topic, messages, system)


def process_spans(records: Sequence[Record], out: dict[int, Headers], *, group: str,
                  log: object) -> ProcessSpans | None:
    """A worker batch's process spans, one per traced record of ``records`` (consumer
    group ``group``, read from ``log``); ``out[id(record)]`` gets the trace headers of
    that record's outputs. None when tracing is off (nothing is read per record) or no
    record carries trace context."""
    tracing = current()
    if tracing is None:
        return None
    traced = traced_records(records)
    if not traced:
        return None
    return tracing.process(traced, out, group=group, system=system_of(log))


def system_of(log: object) -> str:
    """``messaging.system`` of a log: ``kafka`` on Kafka, else ``eventml``."""
    return "kafka" if type(log).__name__ == "KafkaLog" else "eventml"
