"""Dead letters over HTTP: a topic's dead letters page by page, and replaying them (admin).

A topic's dead letters are in ``TOPIC.dlq`` (:mod:`eventml.deadletter`); a dead letter's
id is ``PARTITION:OFFSET`` there, as ``eventml dlq list`` prints it.

* ``GET /v1/topics/{topic}/dlq?limit=50&after=P:O``: at most ``limit`` dead letters after
  ``after``, by partition then offset: ``{"topic", "dead_letter_topic", "held",
  "dead_letters": [...], "next"}``; ``next`` is the ``after`` of the next page (``null``
  on the last). Each dead letter has the original key, value and headers (base64), its
  provenance (``source`` fields, ``error`` class, kind and redacted message, ``attempts``,
  ``at_ms``) and whether it was ``replayed``; a record of the topic that is not a dead
  letter (no provenance) is listed with ``problem`` saying so. A topic that never had a
  dead letter (no ``TOPIC.dlq``) has an empty page.
* ``POST /v1/topics/{topic}/dlq/replay`` with ``{"ids": ["P:O", ...]}`` or
  ``{"all": true}``: appends each dead letter's original key, value and headers to its
  source topic (``eventml.dlq.source.topic``, else the topic) with the header
  ``eventml.replay.of``, as ``eventml dlq replay`` does, exactly once.

Exactly once (:mod:`eventml.deadletter.selective`): what ``eventml dlq replay`` replayed (below the
offsets of its consumer group) and what was replayed by id (recorded in the compacted topic
``TOPIC.dlq.replayed`` in the same transaction as the appends) is never appended again:
asked again, it is answered under ``already_replayed``. ``{"all": true}`` replays at most
:data:`MAX_REPLAY_ALL` dead letters per request (``remaining`` says how many are left). Of
two replays of one topic at once, the later fences the earlier (409, nothing appended); in
this process replays of a topic run one at a time. ``eventml dlq replay`` itself does not
read ``TOPIC.dlq.replayed`` yet: after a replay by id, replay the rest over HTTP.

Errors: 404 for an unknown topic or dead letter ids that are not in ``TOPIC.dlq`` (nothing
replayed), 401 for every replay when the app checks no API keys (an open server never
writes to topics), 409 while another replay of the topic runs, 422 for a malformed body or cursor,
or ids of records that are not dead letters, 503 when the log fails.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Generator
from contextlib import closing
from typing import Annotated, Any, cast

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from eventml.api.errors import INVALID_REQUEST, ApiError, ApiRoute, JSONResponse
from eventml.api.ingest import LOG_UNAVAILABLE, TOPIC_NOT_FOUND, UNAUTHENTICATED, read_body
from eventml.api.topics import (
    COMMON_ERRORS,
    check_topic,
    committed_offsets,
    error_responses,
    json_content,
    on_log,
)
from eventml.clock import ClockMs, system_clock_ms
from eventml.deadletter import REPLAY_GROUP, InvalidDeadLetter, parse_dead_letter
from eventml.deadletter.record import dead_letter_topic
from eventml.deadletter.replay import read_records
from eventml.deadletter.selective import (
    ID_PATTERN,
    MAX_REPLAY_ALL,
    Id,
    NotDeadLetters,
    NotFound,
    ReplayBusy,
    format_id,
    ledger_topic,
    read_ledger,
    replay_dead_letters,
)
from eventml.log import Log, Record, TopicPartition, UnknownTopic

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_IDS = 500
MAX_BODY_BYTES = 65_536

REPLAY_BUSY = 40971
NOT_A_DEAD_LETTER = 42271
DEAD_LETTER_NOT_FOUND = 40471

__all__ = ["MAX_REPLAY_ALL", "DeadLettersRouter", "ledger_topic", "list_dead_letters",
           "replay_dead_letters"]


def parse_id(text: str, what: str = "id") -> Id:
    m = ID_PATTERN.fullmatch(text)
    if m is None:
        raise ApiError(422, INVALID_REQUEST, f"{what} {text[:40]!r} is not PARTITION:OFFSET "
                       "(e.g. 0:42)")
    return int(m[1]), int(m[2])


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


def _item(record: Record, replayed: bool) -> dict[str, Any]:
    """One dead letter as the listing shows it."""
    try:
        dead = parse_dead_letter(record)
    except InvalidDeadLetter as e:
        return {"id": format_id(record.partition, record.offset), "partition": record.partition,
                "offset": record.offset, "timestamp_ms": record.timestamp_ms,
                "key": _b64(record.key), "value": _b64(record.value),
                "headers": [{"name": n, "value": _b64(v)} for n, v in record.headers],
                "source": {}, "error": None, "attempts": None, "at_ms": None,
                "replayed": replayed, "problem": str(e)}
    return {"id": format_id(dead.partition, dead.offset), "partition": dead.partition,
            "offset": dead.offset, "timestamp_ms": dead.timestamp_ms,
            "key": _b64(dead.key), "value": _b64(dead.value),
            "headers": [{"name": n, "value": _b64(v)} for n, v in dead.headers],
            "source": dict(dead.source),
            "error": {"class": dead.error_class, "kind": dead.error_kind,
                      "message": dead.error_message},
            "attempts": dead.attempts, "at_ms": dead.at_ms, "replayed": replayed, "problem": None}


def list_dead_letters(log: Log, topic: str, *, limit: int, after: Id | None) -> dict[str, Any]:
    """The body of ``GET /v1/topics/{topic}/dlq``: one bounded page."""
    log.describe_topic(topic)  # UnknownTopic: 404
    dlq = dead_letter_topic(topic)
    page: dict[str, Any] = {"topic": topic, "dead_letter_topic": dlq, "held": 0,
                            "dead_letters": [], "next": None}
    try:
        d = log.describe_topic(dlq)
    except UnknownTopic:
        return page
    page["held"] = d.records
    ranges: dict[int, tuple[int, int]] = {}
    for p in sorted(d.end_offsets):
        start = d.start_offsets[p]
        if after is not None and p < after[0]:
            continue
        if after is not None and p == after[0]:
            start = max(start, after[1] + 1)
        if start < d.end_offsets[p]:
            ranges[p] = (start, d.end_offsets[p])
    if not ranges:
        return page
    watermarks = committed_offsets(log, REPLAY_GROUP, [TopicPartition(dlq, p) for p in ranges])
    ledger = read_ledger(log, dlq)
    items = []
    reader = cast("Generator[Record, None, None]", read_records(log, dlq, ranges))
    with closing(reader) as records:  # closes its consumer when the page is full
        for record in records:
            mark = watermarks.get(TopicPartition(dlq, record.partition))
            done = (mark is not None and record.offset < mark) or (
                (record.partition, record.offset) in ledger)
            items.append(_item(record, done))
            if len(items) == limit:
                break
    page["dead_letters"] = items
    if len(items) == limit:
        last_p, last_o = items[-1]["partition"], items[-1]["offset"]
        more = any(end > (last_o + 1 if p == last_p else start)
                   for p, (start, end) in ranges.items() if p >= last_p)
        page["next"] = format_id(last_p, last_o) if more else None
    return page


# -- the routes --------------------------------------------------------------------------------

_B64 = {"type": ["string", "null"], "contentEncoding": "base64"}
_NULLABLE_INT = {"type": ["integer", "null"]}
_DEAD_LETTER = {"type": "object", "required": [
    "id", "partition", "offset", "timestamp_ms", "key", "value", "headers", "source", "error",
    "attempts", "at_ms", "replayed", "problem"], "properties": {
    "id": {"type": "string", "pattern": "^[0-9]+:[0-9]+$"}, "partition": {"type": "integer"},
    "offset": {"type": "integer"}, "timestamp_ms": {"type": "integer"}, "key": _B64, "value": _B64,
    "headers": {"type": "array", "items": {"type": "object", "required": ["name", "value"],
                                           "properties": {"name": {"type": "string"},
                                                          "value": _B64}}},
    "source": {"type": "object", "additionalProperties": {"type": "string"}},
    "error": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["class", "kind", "message"],
                                           "properties": {"class": {"type": "string"},
                                                          "kind": {"type": ["string", "null"]},
                                                          "message": {"type": "string"}}}]},
    "attempts": _NULLABLE_INT, "at_ms": _NULLABLE_INT, "replayed": {"type": "boolean"},
    "problem": {"type": ["string", "null"]}}}
_PAGE = {"type": "object", "required": ["topic", "dead_letter_topic", "held", "dead_letters", "next"],
         "properties": {"topic": {"type": "string"}, "dead_letter_topic": {"type": "string"},
                        "held": {"type": "integer"},
                        "dead_letters": {"type": "array", "items": _DEAD_LETTER},
                        "next": {"type": ["string", "null"]}}}
_ID_SCHEMA = {"type": "string", "pattern": "^[0-9]{1,9}:[0-9]{1,18}$"}
_REPLAY_BODY = {"oneOf": [
    {"type": "object", "required": ["ids"], "additionalProperties": False,
     "properties": {"ids": {"type": "array", "items": _ID_SCHEMA, "minItems": 1,
                            "maxItems": MAX_IDS}}},
    {"type": "object", "required": ["all"], "additionalProperties": False,
     "properties": {"all": {"const": True}}}]}
_REPLAYED = {"type": "object", "required": [
    "topic", "dead_letter_topic", "replayed", "total", "ids", "already_replayed", "skipped",
    "remaining"], "properties": {
    "topic": {"type": "string"}, "dead_letter_topic": {"type": "string"},
    "replayed": {"type": "object", "additionalProperties": {"type": "integer"}},
    "total": {"type": "integer"}, "ids": {"type": ["array", "null"], "items": {"type": "string"}},
    "already_replayed": {"type": "array", "items": {"type": "string"}},
    "skipped": {"type": "integer"}, "remaining": {"type": "integer"}}}
_ERRORS = (*COMMON_ERRORS, (404, "No such topic"), (422, "Invalid topic name or query"),
           (503, "The log cannot be read"))


def _replay_ids(body: bytes) -> list[Id] | None:
    """The ids a replay request names (None: all), or a 422."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ApiError(422, INVALID_REQUEST, f"the body is not valid JSON: {e}") from None
    usage = 'send {"ids": ["PARTITION:OFFSET", ...]} or {"all": true}'
    if not isinstance(request, dict) or len(request) != 1 or not {"ids", "all"} & set(request):
        raise ApiError(422, INVALID_REQUEST, usage)
    if "all" in request:
        if request["all"] is not True:
            raise ApiError(422, INVALID_REQUEST, usage)
        return None
    ids = request["ids"]
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise ApiError(422, INVALID_REQUEST, f"ids must be a non-empty list of strings: {usage}")
    if len(ids) > MAX_IDS:
        raise ApiError(422, INVALID_REQUEST, f"{len(ids)} ids: replay at most {MAX_IDS} per request")
    return list(dict.fromkeys(parse_id(i) for i in ids))


NO_KEYS_MESSAGE = ("replaying dead letters needs an admin API key: create one with `eventml keys "
                   "create NAME --scope admin` and serve with keys (eventml serve --auth)")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="eventml"'}


class DeadLettersRouter:
    """The dead-letter routes on ``log`` (its :attr:`router`). Unless ``writable`` (the app
    checks API keys: the replay route needs an admin's), every replay is refused (401)."""

    def __init__(self, log: Log, *, writable: bool, clock_ms: ClockMs = system_clock_ms,
                 timeout_s: float = 10.0) -> None:
        self.log, self.clock_ms, self.timeout_s = log, clock_ms, timeout_s
        self.writable = writable  # False: the app checks no keys, so nobody may replay
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.router = self._routes()

    def _lock(self, topic: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(topic, threading.Lock())

    def replay(self, topic: str, ids: list[Id] | None) -> dict[str, Any]:
        lock = self._lock(topic)
        if not lock.acquire(blocking=False):
            raise ApiError(409, REPLAY_BUSY, f"a replay of {topic}'s dead letters is running: "
                           "retry when it is done")
        try:
            return replay_dead_letters(self.log, topic, ids=ids, timeout_s=self.timeout_s,
                                       clock_ms=self.clock_ms)
        except ReplayBusy as e:
            raise ApiError(409, REPLAY_BUSY, str(e)) from None
        except NotFound as e:
            raise ApiError(404, TOPIC_NOT_FOUND if e.topic_missing else DEAD_LETTER_NOT_FOUND,
                           str(e)) from None
        except NotDeadLetters as e:
            raise ApiError(422, NOT_A_DEAD_LETTER, str(e)) from None
        finally:
            lock.release()

    def _routes(self) -> APIRouter:
        api = APIRouter(prefix="/v1/topics", route_class=ApiRoute,
                        default_response_class=JSONResponse, tags=["dead letters"])
        log = self.log

        @api.get("/{topic}/dlq", responses={
            200: {"description": "One page of dead letters", **json_content(_PAGE)},
            **error_responses(*_ERRORS)})
        def list_dlq(
            topic: str,
            limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Dead letters per page.")]
            = DEFAULT_LIMIT,
            after: Annotated[str | None, Query(
                max_length=40, json_schema_extra={"pattern": "^[0-9]{1,9}:[0-9]{1,18}$"},
                description="PARTITION:OFFSET: list from after it (the previous "
                "page's next).")] = None,
        ) -> Response:
            """A topic's dead letters (in ``TOPIC.dlq``) by partition and offset, one page."""
            check_topic(topic)
            cursor = None if after is None else parse_id(after, "after")
            return JSONResponse(on_log(topic, lambda: list_dead_letters(
                log, topic, limit=limit, after=cursor)))

        @api.post("/{topic}/dlq/replay", openapi_extra={"requestBody": {
            "required": True, "content": {"application/json": {"schema": _REPLAY_BODY}}}},
            responses={200: {"description": "What was replayed", **json_content(_REPLAYED)},
                       **error_responses(*COMMON_ERRORS, (404, "No such topic or dead letter"),
                                         (409, "Another replay of the topic is running"),
                                         (413, "Body too large"),
                                         (422, "Malformed body, or ids of records that are not "
                                               "dead letters"),
                                         (503, "The log failed"))})
        async def replay_dlq(request: Request, topic: str) -> Response:
            """Append dead letters (by id, or all) back to their source topic, exactly once."""
            if not self.writable:
                raise ApiError(401, UNAUTHENTICATED, NO_KEYS_MESSAGE, _CHALLENGE)
            check_topic(topic)
            ids = _replay_ids(await read_body(request, MAX_BODY_BYTES))
            try:
                body = await run_in_threadpool(on_log, topic, lambda: self.replay(topic, ids))
            except ApiError as e:
                if e.status == 503:
                    raise ApiError(503, LOG_UNAVAILABLE, "the log failed during the replay: "
                                   "what was committed stays replayed; retry for the rest") from None
                raise
            return JSONResponse(body)

        return api
