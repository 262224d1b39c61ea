"""HTTP ingest: ``POST /v1/topics/{topic}/events`` appends events to an existing topic.

The body is one event or a batch, by ``Content-Type``:

* ``application/json``: an object (one event's data) or an array of objects; the server
  wraps each in a CloudEvent as ``eventml produce`` wraps a plain JSON line: a new id
  (or, for one event, the ``Idempotency-Key`` header; for a batch, ``KEY:INDEX``), source
  ``/eventml/http``, type ``?type=`` (default: the topic), key ``?key_field=``, time
  ``?time_field=`` (default: now);
* ``application/cloudevents+json``: one CloudEvent in structured mode;
* ``application/cloudevents-batch+json``: an array of them;
* CloudEvents binary mode: ``ce-id``, ``ce-source``, ``ce-type``, ``ce-specversion``
  (and optional ``ce-*``) headers, the body being the data (parsed when JSON).

A CloudEvent's ``partitionkey`` is its key. Records are written as ``eventml produce``
writes them (:func:`eventml.events.to_message`, the CloudEvents Kafka binary binding), so
consumers read the same records whichever way an event came in, the server-owned headers
below aside. With a schema registry, a topic whose subject ``TOPIC-value`` has a schema gets each
event's data validated and written framed, as ``eventml produce --validate`` does; one
invalid event refuses the whole request (422 listing the errors per event index) and
nothing of it is appended.

Server-owned headers, set on every record, whatever the client sent:
``eventml.ingest.at_ms`` (when the server accepted it, epoch milliseconds) and
``eventml.ingest.producer`` (the id of the API key that sent it).

Trace context: a request's W3C ``traceparent`` / ``tracestate`` headers (or an event's own
CloudEvents ``traceparent`` attribute, which wins) go into the event's ``ce_traceparent`` /
``ce_tracestate`` headers; with tracing on, as the context of an ``ingest TOPIC`` span
(:mod:`eventml.observe.tracing`).

An event whose id was appended to the topic recently (the last
:attr:`IngestLimits.dedup_window` ids per topic, remembered by this router in this process:
not across restarts nor between server processes) is not appended again: its entry in the answer has the first append's partition and offset and
``"duplicate": true``. The answer (202): ``{"topic", "events": [{"id", "partition",
"offset", "duplicate"}]}``, in the request's order.

Refusals are one JSON line (``{"error_code", "message"}``; ``errors`` per event index
when events are invalid): 401 without an authorizer or key, 404 for a topic that does
not exist (HTTP never creates topics), 413 for a body over the limit (counted while it
streams in) or too many events, 415 for another content type, 422 for malformed JSON or
events, too deep nesting or data breaking the schema, 503 when the log refuses the append.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from eventml.api._batch_thread import BatchThread
from eventml.api._direct_route import DirectRoute
from eventml.api.errors import ApiError, ApiRoute, JSONResponse
from eventml.clock import system_clock_ms
from eventml.events.binding import EventDecodeError, from_structured, to_message
from eventml.events.envelope import Event
from eventml.events.jsonlines import LineOptions, plain_event
from eventml.log import (
    InvalidTopic,
    Log,
    LogError,
    Message,
    TopicSpec,
    UnknownTopic,
)
from eventml.observe.tracing import ingest_spans, system_of
from eventml.schema.contract import BoundContract, Contract, ContractViolation
from eventml.schema.errors import SubjectNotFound, VersionNotFound
from eventml.schema.registry import SchemaRegistry

INGEST_TIME_HEADER = "eventml.ingest.at_ms"
PRODUCER_HEADER = "eventml.ingest.producer"
SERVER_OWNED_HEADERS = frozenset({INGEST_TIME_HEADER, PRODUCER_HEADER})
SOURCE = "/eventml/http"
NO_KEYS_MESSAGE = ("ingest needs an API key: create one with `eventml keys create NAME --scope "
                   "produce:TOPIC` and serve with keys")

UNAUTHENTICATED = 40101  # as eventml.api.auth
TOPIC_NOT_FOUND = 40401
BODY_TOO_LARGE = 41301
TOO_MANY_EVENTS = 41302
UNSUPPORTED_MEDIA_TYPE = 41501
INVALID_EVENTS = 42201
SCHEMA_VIOLATION = 42202
INVALID_TOPIC = 42203
LOG_UNAVAILABLE = 50302

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="eventml"'}
_SHOWN_ERRORS = 3
_LOOKUP_FRESH_S = 0.5  # how long a topic's look-up (exists, its schema) is reused
_MAX_ID = 200


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """What one request may hold; ``dedup_window`` ids are remembered per topic (0: none)."""

    max_body_bytes: int = 1_048_576
    max_events: int = 1_000
    max_depth: int = 32
    dedup_window: int = 100_000


class Principal(Protocol):
    """Who sent the request: an API key, as the authorizer found it."""

    @property
    def key_id(self) -> str: ...


Authorize = Callable[[Request, str, str], Awaitable[Principal]]
"""``await authorize(request, operation, resource)``: the principal, or raises an
HTTPException (401/403/429) itself."""


class InvalidEvents(ApiError):
    """A 422 listing, per event index, what is wrong."""

    def __init__(self, code: int, what: str, errors: Sequence[tuple[int, Sequence[str]]]) -> None:
        listed = [(i, [_clip(e) for e in errs]) for i, errs in errors]
        shown = "; ".join(f"event {i}: {'; '.join(errs)}" for i, errs in listed[:_SHOWN_ERRORS])
        more = f" (and {len(errors) - _SHOWN_ERRORS} more)" if len(errors) > _SHOWN_ERRORS else ""
        super().__init__(422, code, f"{what}, nothing appended: {shown}{more}")
        self.errors = [{"index": i, "errors": errs} for i, errs in listed]


def _clip(error: str) -> str:
    """One line of at most 300 characters (errors may quote what the client sent)."""
    line = " ".join(error.split())
    return line if len(line) <= 300 else line[:297] + "..."


# -- reading and parsing the body (pure but for the stream) --------------------------


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused (413) once more than ``max_bytes`` have arrived or are announced."""
    announced = request.headers.get("content-length", "")
    if announced.isdigit() and (len(announced) > 18 or int(announced) > max_bytes):
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, BODY_TOO_LARGE, f"the request body exceeds {max_bytes} bytes: send fewer or "
                    "smaller events per request")


def too_deep(value: Any, max_depth: int) -> bool:
    """Whether arrays and objects nest deeper than ``max_depth`` in ``value``."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


@dataclass(frozen=True, slots=True)
class _Plain:
    """How ``application/json`` objects become events (the query's options)."""

    options: LineOptions
    idempotency_key: str | None


def parse_events(body: bytes, headers: Mapping[str, str], plain: _Plain, limits: IngestLimits,
                 ) -> list[Event]:
    """The events in a request (see the module docstring); :class:`ApiError` if none can be."""
    content_type = headers.get("content-type")
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in (STRUCTURED, BATCH) and "ce-specversion" in headers:
        return [_binary_event(body, headers, content_type, media, limits)]
    if media not in (STRUCTURED, BATCH, "application/json"):
        given = _clip(media) or "none"
        raise ApiError(415, UNSUPPORTED_MEDIA_TYPE, f"unsupported Content-Type {given!r}: send "
                       f"application/json, {STRUCTURED}, {BATCH} or a CloudEvent in binary mode "
                       "(ce-* headers)")
    document = _loads(body)
    if media == STRUCTURED and not isinstance(document, dict):
        raise ApiError(422, INVALID_EVENTS, f"{STRUCTURED} holds one event object: send a batch "
                       f"as {BATCH}")
    if media == BATCH and not isinstance(document, list):
        raise ApiError(422, INVALID_EVENTS, f"{BATCH} holds an array of event objects")
    items = document if isinstance(document, list) else [document]
    if not items:
        raise ApiError(422, INVALID_EVENTS, "the batch is empty: send at least one event")
    if len(items) > limits.max_events:
        raise ApiError(413, TOO_MANY_EVENTS, f"{len(items)} events in one request: send at most "
                       f"{limits.max_events} per request")
    events: list[Event] = []
    errors: list[tuple[int, list[str]]] = []
    for i, item in enumerate(items):
        try:
            if too_deep(item, limits.max_depth):
                raise EventDecodeError(f"nested deeper than {limits.max_depth} levels")
            if media == "application/json":
                events.append(_plain_event(item, i, len(items), plain))
            else:
                events.append(from_structured(item))
        except EventDecodeError as e:
            errors.append((i, [str(e)]))
    if errors:
        raise InvalidEvents(INVALID_EVENTS, "invalid events", errors)
    return events


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ApiError(422, INVALID_EVENTS, f"the body is not valid JSON: {e}") from None


def _plain_event(item: Any, index: int, count: int, plain: _Plain) -> Event:
    if not isinstance(item, dict):
        raise EventDecodeError(f"expected a JSON object, got {type(item).__name__}")
    key = plain.idempotency_key
    event_id = None if key is None else key if count == 1 else f"{key}:{index}"
    try:
        return plain_event(item, plain.options, event_id)
    except EventDecodeError as e:  # the CLI's option names, said the HTTP way
        raise EventDecodeError(str(e).replace("--key-field", "?key_field=")
                               .replace("--time-field", "?time_field=")) from None


def _binary_event(body: bytes, headers: Mapping[str, str], content_type: str | None, media: str,
                  limits: IngestLimits) -> Event:
    """A CloudEvent in HTTP binary mode: ``ce-*`` headers (percent-encoded), the body as data."""
    attributes: dict[str, Any] = {k[3:]: unquote(v) for k, v in headers.items()
                                  if k.startswith("ce-")}
    attributes.pop("data", None)
    attributes.pop("data_base64", None)
    data: Any = None
    if body and (not media or media == "application/json" or media.endswith("+json")):
        data = _loads(body)
        if too_deep(data, limits.max_depth):
            deep = f"nested deeper than {limits.max_depth} levels"
            raise InvalidEvents(INVALID_EVENTS, "invalid event", [(0, [deep])])
    elif body:
        data = body
    try:
        event = from_structured(attributes)
    except EventDecodeError as e:
        raise InvalidEvents(INVALID_EVENTS, "invalid event", [(0, [str(e)])]) from None
    return dataclasses.replace(event, data=data, datacontenttype=content_type)


# -- the route -----------------------------------------------------------------------

_ERROR = {"type": "object", "required": ["error_code", "message"], "properties": {
    "error_code": {"type": "integer"}, "message": {"type": "string"},
    "errors": {"type": "array", "items": {"type": "object", "properties": {
        "index": {"type": "integer"}, "errors": {"type": "array", "items": {"type": "string"}}}}}}}
_CLOUDEVENT = {"type": "object", "required": ["specversion", "id", "source", "type"],
               "properties": {"specversion": {"const": "1.0"}, "id": {"type": "string"},
                              "source": {"type": "string"}, "type": {"type": "string"},
                              "time": {"type": "string", "format": "date-time"},
                              "partitionkey": {"type": "string"}, "data": {}}}
_PLAIN = {"type": "object", "additionalProperties": True}
# the route is a DirectRoute (the hot path of single-event ingest): it reads its
# parameters from the request, FastAPI declares none; they are described here
_PARAMETERS = [
    {"name": "topic", "in": "path", "required": True, "schema": {"type": "string"},
     "description": "An existing topic (HTTP ingest never creates topics)."},
    *({"name": name, "in": "query", "required": False, "schema": {"type": "string"},
       "description": what} for name, what in [
        ("key_field", "Field of each JSON object holding its key."),
        ("time_field", "Field holding the event time (epoch s/ms or RFC 3339)."),
        ("type", "CloudEvents type of JSON objects (default: the topic)."),
    ]),
]
_OPENAPI: dict[str, Any] = {"parameters": _PARAMETERS, "requestBody": {"required": True, "content": {
    "application/json": {"schema": {"oneOf": [_PLAIN, {"type": "array", "items": _PLAIN}]}},
    STRUCTURED: {"schema": _CLOUDEVENT},
    BATCH: {"schema": {"type": "array", "items": _CLOUDEVENT}},
}}}
_ACCEPTED = {"type": "object", "required": ["topic", "events"], "properties": {
    "topic": {"type": "string"},
    "events": {"type": "array", "items": {"type": "object", "required": [
        "id", "partition", "offset", "duplicate"], "properties": {
        "id": {"type": "string"}, "partition": {"type": "integer"}, "offset": {"type": "integer"},
        "duplicate": {"type": "boolean"}}}}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "Appended (or already appended: duplicate)",
          "content": {"application/json": {"schema": _ACCEPTED}}},
    **{status: {"description": what, "content": {"application/json": {"schema": _ERROR}}}
       for status, what in [(401, "No or bad API key"), (403, "The key may not produce to the topic"),
                            (404, "No such topic"), (413, "Body or batch too large"),
                            (415, "Unsupported content type"),
                            (422, "Malformed or invalid events (errors per index)"),
                            (429, "Rate limit of the key reached"), (503, "The log refused the append")]},
}


_Placed = list[tuple[tuple[int, int], bool]]
"""Per event of a request: ``((partition, offset), duplicate)``."""


@dataclass(slots=True)
class _Waiting:
    """One request's events, waiting for the topic's appender; then where they landed."""

    ids: Sequence[str]
    messages: Sequence[Message]
    placed: list[tuple[tuple[int, int], bool]] | None = None
    error: BaseException | None = None


class _RecentIds:
    """The last ``size`` event ids appended to one topic and where they landed (LRU).

    :meth:`append_new` holds the topic's lock from look-up to remembering, in the
    thread that appends: a request cancelled meanwhile cannot let a duplicate through.
    Requests that arrive while an append is under way wait, then the first of them to
    get the lock appends them all in one ``log.append`` (group commit: one transaction,
    one fsync on the embedded log, for every request that queued meanwhile). The router
    groups requests itself, in its appender thread, and calls :meth:`append_waiting`."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._lock = threading.Lock()  # one appender at a time
        self._waiting: list[_Waiting] = []
        self._waiting_lock = threading.Lock()

    def append_new(self, log: Log, topic: str, ids: Sequence[str], messages: Sequence[Message],
                   ) -> list[tuple[tuple[int, int], bool]]:
        """Append the messages whose ids are new; per message ``((partition, offset), duplicate)``.

        Blocks until they are appended, by this thread or by one that took them along."""
        mine = _Waiting(ids, messages)
        with self._waiting_lock:
            self._waiting.append(mine)
        with self._lock:
            if mine.placed is None and mine.error is None:  # no appender took them along
                with self._waiting_lock:
                    group, self._waiting = self._waiting, []
                self._append_group(log, topic, group)
        if mine.error is not None:
            raise mine.error
        assert mine.placed is not None
        return mine.placed

    def append_waiting(self, log: Log, topic: str, group: list[_Waiting]) -> None:
        """Append ``group`` (requests, in arrival order) in one ``log.append``; each one's
        ``placed`` or ``error`` is set. What the router's appender thread calls."""
        with self._lock:
            self._append_group(log, topic, group)

    def _append_group(self, log: Log, topic: str, group: list[_Waiting]) -> None:
        """Append the group's events in one ``log.append`` (the lock held), in arrival order."""
        ids = [i for w in group for i in w.ids]
        try:
            placed = self._append(log, topic, ids, [m for w in group for m in w.messages])
        except BaseException as e:  # every request of the group is refused, none acknowledged
            for w in group:
                w.error = e
            return
        at = 0
        for w in group:
            w.placed, at = placed[at:at + len(w.ids)], at + len(w.ids)

    def _append(self, log: Log, topic: str, ids: Sequence[str], messages: Sequence[Message],
                ) -> list[tuple[tuple[int, int], bool]]:
        known = [self._ids.get(i) for i in ids]
        first: dict[str, int] = {}  # an id repeated within the group: its first index
        new = [n for n, i in enumerate(ids) if known[n] is None and first.setdefault(i, n) == n]
        appended = log.append(topic, [messages[n] for n in new]) if new else []
        placed = {n: (m.partition, m.offset) for n, m in zip(new, appended, strict=True)}
        out = []
        for n, event_id in enumerate(ids):
            place = known[n] or placed[first[event_id]]
            self._remember(event_id, place)
            out.append((place, n not in placed))
        return out

    def _remember(self, event_id: str, place: tuple[int, int]) -> None:
        if self.size <= 0:
            return
        self._ids[event_id] = place
        self._ids.move_to_end(event_id)
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)


def _with_server_headers(message: Message, producer: str, now_ms: int) -> Message:
    kept = [h for h in message.headers if h[0] not in SERVER_OWNED_HEADERS]
    owned = [(INGEST_TIME_HEADER, str(now_ms).encode()), (PRODUCER_HEADER, producer.encode())]
    return message._replace(headers=(*kept, *owned))


def _framed(message: Message, data: Any, contract: BoundContract) -> Message:
    """As ``eventml produce --validate`` writes it: the value in a frame, its content type."""
    kind = "avro" if contract.contract.schema_type == "AVRO" else "json"
    headers = [h for h in message.headers if h[0] != "content-type"]
    content = f"application/vnd.schemaregistry.v1+{kind}".encode()
    return message._replace(value=contract.encode(data), headers=(*headers, ("content-type", content)))


def ingest_router(
    log: Log,
    *,
    authorize: Authorize | None,
    limits: IngestLimits = IngestLimits(),
    registry: SchemaRegistry | None = None,
    clock_ms: Callable[[], int] = system_clock_ms,
) -> APIRouter:
    """The ``/v1/topics/{topic}/events`` route appending to ``log`` (see the module docstring).

    ``authorize`` checks each request's key for ``produce`` on the topic; without one
    every request is refused (401). ``registry`` holds the topics' schemas, if any."""
    api = APIRouter(prefix="/v1/topics", route_class=ApiRoute, default_response_class=JSONResponse,
                    tags=["ingest"])
    recent: dict[str, _RecentIds] = {}
    contracts: dict[str, BoundContract] = {}

    def contract_of(topic: str) -> BoundContract | None:
        """The topic's contract (:class:`UnknownTopic` if there is no such topic)."""
        log.describe_topic(topic)
        if registry is None:
            return None
        subject = f"{topic}-value"
        try:
            latest = registry.version(subject)
        except (SubjectNotFound, VersionNotFound):
            return None
        bound = contracts.get(topic)
        if bound is None or bound.schema_id != latest.id:
            contract = Contract(latest.schema.schema_type, latest.schema.schema, subject,
                                auto_register=False)
            bound = contracts[topic] = contract.bind(registry, topic)
        return bound

    def look_up(topics: Sequence[str]) -> list[BoundContract | BaseException | None]:
        out: list[BoundContract | BaseException | None] = []
        for topic in topics:
            try:
                out.append(contract_of(topic))
            except Exception as e:
                out.append(e)
        return out

    def append(jobs: Sequence[tuple[str, _Waiting]]) -> list[_Placed | BaseException]:
        """Every request queued meanwhile, one ``log.append`` per topic (group commit)."""
        by_topic: dict[str, list[_Waiting]] = {}
        for topic, waiting in jobs:
            by_topic.setdefault(topic, []).append(waiting)
        for topic, group in by_topic.items():
            seen = recent.get(topic) or recent.setdefault(topic, _RecentIds(limits.dedup_window))
            seen.append_waiting(log, topic, group)
        return [w.error or w.placed or [] for _, w in jobs]

    # one thread each: a look-up never waits behind an fsync
    lookups: BatchThread[str, BoundContract | None] = BatchThread(look_up, name="eventml-ingest-lookup")
    appender: BatchThread[tuple[str, _Waiting], _Placed] = BatchThread(append, name="eventml-ingest-append")
    looked_up: dict[str, tuple[BoundContract | None, float, int]] = {}  # topic: (contract, at, mark)
    fresh_s = _LOOKUP_FRESH_S if registry is None else registry.stale_after_s

    def registry_mark() -> int:
        """Moves whenever this process's registry changed (its position in the schema topic)."""
        return -1 if registry is None else registry.store.position

    async def contract_for(topic: str) -> BoundContract | None:
        """:func:`contract_of`, looked up (off the event loop) at most every ``fresh_s``
        per topic and again as soon as the registry changed: a schema registered here
        applies to the next request, one registered by another process within
        ``stale_after_s``, as the registry itself sees it. A topic deleted meanwhile
        is refused by the append (404)."""
        hit = looked_up.get(topic)
        now = time.monotonic()
        if hit is not None and now - hit[1] < fresh_s and hit[2] == registry_mark():
            return hit[0]
        mark = registry_mark()  # before: a change during the look-up makes the next one look again
        contract = await lookups.submit(topic)
        looked_up[topic] = (contract, now, mark)
        return contract

    async def append_once(topic: str, events: list[Event], messages: list[Message],
                          ) -> list[dict[str, Any]]:
        """Append the events whose ids the topic has not seen lately; where each one is."""
        try:
            placed = await appender.submit((topic, _Waiting([e.id for e in events], messages)))
        except UnknownTopic:
            looked_up.pop(topic, None)
            raise ApiError(404, TOPIC_NOT_FOUND, f"no topic {topic!r}: it was deleted") from None
        except LogError as e:
            raise ApiError(503, LOG_UNAVAILABLE, f"the log did not take the events "
                           f"({type(e).__name__}): nothing was acknowledged; retry") from None
        return [{"id": e.id, "partition": p, "offset": o, "duplicate": dup}
                for e, ((p, o), dup) in zip(events, placed, strict=True)]

    async def ingest_events(request: Request) -> Response:
        """Append one event or a batch to an existing topic (202: ids, partitions, offsets)."""
        topic: str = request.path_params["topic"]  # a DirectRoute: no parameters solved
        if authorize is None:
            raise ApiError(401, UNAUTHENTICATED, NO_KEYS_MESSAGE, _CHALLENGE)
        principal = await authorize(request, "produce", topic)
        try:
            TopicSpec(topic)
        except InvalidTopic:
            raise ApiError(422, INVALID_TOPIC, f"invalid topic name {topic!r}: topics are 1-249 "
                           "characters of [a-zA-Z0-9._-]") from None
        try:
            contract = await contract_for(topic)
        except UnknownTopic:
            raise ApiError(404, TOPIC_NOT_FOUND, f"no topic {topic!r}: create it first (eventml topics "
                           "create); HTTP ingest never creates topics") from None
        body = await read_body(request, limits.max_body_bytes)
        query = request.query_params  # see _PARAMETERS
        key_field, time_field, event_type = query.get("key_field"), query.get("time_field"), \
            query.get("type")
        options = LineOptions(type=event_type or topic, source=SOURCE, key_field=key_field,
                              time_field=time_field)
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None and not 0 < len(idempotency_key) <= _MAX_ID:
            raise ApiError(422, INVALID_EVENTS, f"the Idempotency-Key header must be 1-{_MAX_ID} "
                           "characters")
        try:
            events = parse_events(body, request.headers, _Plain(options, idempotency_key), limits)
            messages = _messages(events, contract, principal.key_id, clock_ms(), topic)
        except InvalidEvents as e:
            return JSONResponse({"error_code": e.code, "message": e.message, "errors": e.errors},
                                status_code=e.status)
        # trace context: the request's traceparent / the events' own, spans if tracing is on
        with ingest_spans(request.headers, topic, messages, system=system_of(log)) as traced:
            out = await append_once(topic, events, traced)
        return JSONResponse({"topic": topic, "events": out}, status_code=202)

    # the hot path: FastAPI solves no dependency; the app's key check is the authorize() above
    api.add_api_route("/{topic}/events", ingest_events, methods=["POST"], status_code=202,
                      responses=_RESPONSES, openapi_extra=_OPENAPI, route_class_override=DirectRoute)
    return api


def _messages(events: list[Event], contract: BoundContract | None, producer: str, now_ms: int,
              topic: str) -> list[Message]:
    """The records to append, or :class:`InvalidEvents` if any event's data breaks the schema."""
    messages: list[Message] = []
    violations: list[tuple[int, list[str]]] = []
    for i, event in enumerate(events):
        message = to_message(event)
        if contract is not None:
            try:
                message = _framed(message, event.data, contract)
            except ContractViolation as e:
                violations.append((i, e.errors or [str(e)]))
                continue
        messages.append(_with_server_headers(message, producer, now_ms))
    if violations:
        raise InvalidEvents(SCHEMA_VIOLATION, f"events break the schema of {topic}-value", violations)
    return messages
