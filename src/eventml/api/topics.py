"""Topics over HTTP (read side): names, per-partition offsets and record counts, and how far
a consumer group is behind.

* ``GET /v1/topics``: ``{"topics": [names]}``, as ``eventml topics list``;
* ``GET /v1/topics/{topic}``: as ``eventml topics describe --json``, partitions as a list:
  ``{"topic", "partitions": [{"partition", "start_offset", "end_offset", "records"}],
  "records", "retention_ms", "retention_bytes", "cleanup_policy"}``;
* ``GET /v1/topics/{topic}/lag?group=G``: per partition the group's committed offset (the
  next record it will read; ``null`` if it never committed one there), the end offset and
  the lag ``end - committed`` (``null`` where nothing was committed: whether such a group
  would start at the beginning or the end is its own setting); ``lag`` is the sum of the
  known ones. Offsets are read without joining the group, so asking never moves a
  partition away from a running worker.

404 (40401) for a topic that does not exist, 422 (42203) for a name no topic can have,
503 (50302) when the log cannot be read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query
from starlette.responses import Response

from eventml.api.errors import INVALID_REQUEST, ApiError, ApiRoute, JSONResponse
from eventml.api.ingest import INVALID_TOPIC, LOG_UNAVAILABLE, TOPIC_NOT_FOUND
from eventml.log import InvalidTopic, Log, LogError, TopicPartition, TopicSpec, UnknownTopic

T = TypeVar("T")
MAX_GROUP_LENGTH = 255

ERROR_SCHEMA: dict[str, Any] = {"type": "object", "required": ["error_code", "message"],
                                "properties": {"error_code": {"type": "integer"},
                                               "message": {"type": "string"}}}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def error_responses(*cases: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for error cases ``(status, what)``, each an error body."""
    return {status: {"description": what, **json_content(ERROR_SCHEMA)} for status, what in cases}


COMMON_ERRORS = ((401, "No or bad API key"), (403, "The key's scopes do not allow it"),
                 (429, "Rate limit of the key reached"))
_INT = {"type": "integer"}
_NULLABLE_INT = {"type": ["integer", "null"]}
_TOPICS = {"type": "object", "required": ["topics"],
           "properties": {"topics": {"type": "array", "items": {"type": "string"}}}}
_PARTITION = {"type": "object", "required": ["partition", "start_offset", "end_offset", "records"],
              "properties": {"partition": _INT, "start_offset": _INT, "end_offset": _INT,
                             "records": _INT}}
_TOPIC = {"type": "object", "required": ["topic", "partitions", "records", "retention_ms",
                                         "retention_bytes", "cleanup_policy"],
          "properties": {"topic": {"type": "string"},
                         "partitions": {"type": "array", "items": _PARTITION},
                         "records": _INT, "retention_ms": _NULLABLE_INT,
                         "retention_bytes": _NULLABLE_INT,
                         "cleanup_policy": {"enum": ["delete", "compact"]}}}
_LAG_PARTITION = {"type": "object", "required": ["partition", "committed", "end_offset", "lag"],
                  "properties": {"partition": _INT, "committed": _NULLABLE_INT, "end_offset": _INT,
                                 "lag": _NULLABLE_INT}}
_LAG = {"type": "object", "required": ["topic", "group", "partitions", "lag"],
        "properties": {"topic": {"type": "string"}, "group": {"type": "string"},
                       "partitions": {"type": "array", "items": _LAG_PARTITION}, "lag": _INT}}
_TOPIC_ERRORS = (*COMMON_ERRORS, (404, "No such topic"), (422, "Invalid topic name or query"),
                 (503, "The log cannot be read"))


def check_topic(topic: str) -> None:
    """422 for a name no topic can have (before the log is asked)."""
    try:
        TopicSpec(topic)
    except InvalidTopic:
        raise ApiError(422, INVALID_TOPIC, f"invalid topic name {topic!r}: topics are 1-249 "
                       "characters of [a-zA-Z0-9._-]") from None


def on_log(topic: str, read: Callable[[], T]) -> T:
    """``read()``, its log errors said the HTTP way (404 for an unknown ``topic``, else 503)."""
    try:
        return read()
    except UnknownTopic:
        raise ApiError(404, TOPIC_NOT_FOUND, f"no topic {topic!r} (GET /v1/topics lists them)") from None
    except InvalidTopic as e:  # a name the backend refuses beyond the common rule (Kafka: "..")
        raise ApiError(422, INVALID_TOPIC, f"invalid topic name {topic!r}: {e}") from None
    except LogError as e:
        raise ApiError(503, LOG_UNAVAILABLE, f"the log could not be read ({type(e).__name__}); "
                       "retry") from None


def committed_offsets(log: Log, group: str, partitions: Sequence[TopicPartition],
                      ) -> dict[TopicPartition, int | None]:
    """``group``'s committed offsets on ``partitions`` (``None``: nothing committed there),
    read without joining the group (:meth:`eventml.log.Log.committed_offsets`)."""
    return log.committed_offsets(group, partitions) if partitions else {}


def describe(log: Log, topic: str) -> dict[str, Any]:
    """The body of ``GET /v1/topics/{topic}``."""
    d = log.describe_topic(topic)
    parts = [{"partition": p, "start_offset": d.start_offsets[p], "end_offset": d.end_offsets[p],
              "records": d.end_offsets[p] - d.start_offsets[p]} for p in sorted(d.end_offsets)]
    s = d.spec
    return {"topic": s.name, "partitions": parts, "records": d.records,
            "retention_ms": s.retention_ms, "retention_bytes": s.retention_bytes,
            "cleanup_policy": s.cleanup_policy}


def group_lag(log: Log, topic: str, group: str) -> dict[str, Any]:
    """The body of ``GET /v1/topics/{topic}/lag?group=G``."""
    ends = log.end_offsets(topic)
    tps = [TopicPartition(topic, p) for p in sorted(ends)]
    committed = committed_offsets(log, group, tps)
    parts = []
    for tp in tps:
        at = committed.get(tp)
        end = ends[tp.partition]
        parts.append({"partition": tp.partition, "committed": at, "end_offset": end,
                      "lag": None if at is None else max(0, end - at)})
    return {"topic": topic, "group": group, "partitions": parts,
            "lag": sum(p["lag"] for p in parts if p["lag"] is not None)}


def topics_router(log: Log) -> APIRouter:
    """The read routes on ``log``'s topics (see the module docstring)."""
    api = APIRouter(prefix="/v1/topics", route_class=ApiRoute, default_response_class=JSONResponse,
                    tags=["topics"])

    @api.get("", responses={200: {"description": "Topic names, sorted", **json_content(_TOPICS)},
                            **error_responses(*COMMON_ERRORS, (503, "The log cannot be read"))})
    def list_topics() -> Response:
        """The topics' names, sorted."""
        return JSONResponse({"topics": on_log("", log.list_topics)})

    @api.get("/{topic}", responses={
        200: {"description": "Partitions, offsets and records held", **json_content(_TOPIC)},
        **error_responses(*_TOPIC_ERRORS)})
    def describe_topic(topic: str) -> Response:
        """A topic's settings and, per partition, start and end offsets and records held."""
        check_topic(topic)
        return JSONResponse(on_log(topic, lambda: describe(log, topic)))

    @api.get("/{topic}/lag", responses={
        200: {"description": "Per partition: committed offset, end offset, lag",
              **json_content(_LAG)},
        **error_responses(*_TOPIC_ERRORS)})
    def consumer_lag(
        topic: str,
        group: Annotated[str, Query(min_length=1, max_length=MAX_GROUP_LENGTH,
                                    description="The consumer group (an app's name, for its workers).")],
    ) -> Response:
        """How far ``group`` is behind on the topic, per partition."""
        check_topic(topic)
        if not group.isprintable():
            raise ApiError(422, INVALID_REQUEST, "the group name must be printable text (no "
                           "control characters)")
        return JSONResponse(on_log(topic, lambda: group_lag(log, topic, group)))

    return api
