"""The schema registry over HTTP, speaking Confluent Schema Registry's REST API.

confluent-kafka's ``SchemaRegistryClient``, its Avro/JSON serializers and other
tools pointed at this API work unchanged. Mount :func:`router` in a bigger service,
or serve :func:`create_app` (``eventml serve``)::

    from eventml.log import open_log
    from eventml.schema import SchemaRegistry
    from eventml.schema.api import create_app

    app = create_app(SchemaRegistry(open_log("embedded://./.eventml")))

What it speaks, as Confluent's server does:

* responses are ``application/vnd.schemaregistry.v1+json``; request bodies are read
  as JSON whether sent as that type, ``application/vnd.schemaregistry+json``,
  ``application/json`` or ``application/octet-stream`` (others get a 415, which also
  keeps browsers' cross-site form posts out);
* every registry error is ``{"error_code": ..., "message": ...}`` with Confluent's
  HTTP status and code (see :mod:`eventml.schema.errors`); a body that is not JSON is
  a 422 with error code 422; anything unexpected a 500 with error code 50001 and a
  generic message (the details go to the server log, never to the client); in
  :func:`create_app`, an unknown path is a 404 with error code 404 as well;
* registering answers ``{"id": ...}`` plus the subject, version and schema as stored
  (newer clients read them; older ones read only ``id``);
* reads come from the registry's memory, refreshed every ``stale_after_s``; a read
  that finds nothing catches up with the log and tries once more, so a schema another
  process registered a moment ago is found;
* a subject may hold any character: send it percent-encoded (``/`` as ``%2F``), as
  confluent-kafka's client does; paths are matched on the encoded form, like
  Confluent's server.

Accepted and ignored: ``normalize`` (lookups and registrations always compare schemas
in canonical form), ``format``, ``fetchMaxId``, and the ``metadata`` and ``ruleSet``
fields of a schema (data-contract rules are not supported). ``PROTOBUF`` schemas are
refused with error code 42201.

Endpoints are plain functions: FastAPI runs them in its thread pool, and the
registry's lock keeps them consistent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import unquote

import orjson

try:
    from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.routing import APIRoute
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect
    from starlette.responses import JSONResponse as StarletteJSONResponse
    from starlette.responses import Response
    from starlette.routing import Match
    from starlette.types import Scope
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"the schema registry REST API needs FastAPI ({e}): pip install 'eventml[serve]'"
    ) from e

from eventml.schema.compat import LEVELS
from eventml.schema.core import MODES
from eventml.schema.errors import (
    CompatibilityNotConfigured,
    InvalidCompatibilityLevel,
    InvalidMode,
    InvalidSchema,
    InvalidVersion,
    ModeNotConfigured,
    SchemaError,
    SchemaNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from eventml.schema.registry import SchemaRegistry, schema_types

log = logging.getLogger(__name__)
T = TypeVar("T")

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPTED_CONTENT_TYPES = frozenset(
    {CONTENT_TYPE, "application/vnd.schemaregistry+json", "application/json", "application/octet-stream"}
)
MAX_BODY_BYTES = 16 * 1024 * 1024
_LATEST = ("latest", "-1")
_INTERNAL = "Internal server error: the registry failed to handle the request; see the server log"


class RegistryJSONResponse(StarletteJSONResponse):
    """JSON in Confluent's media type (a JSON response to FastAPI: the OpenAPI spec
    documents the routes' return types)."""

    media_type = CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class _RequestError(SchemaError):
    """A request the API cannot read: not JSON, the wrong shape, type or size."""

    def __init__(self, message: str, status: int = 422, code: int = 422) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def _error_response(status: int, code: int, message: str) -> Response:
    """Confluent's error body: ``{"error_code": code, "message": message}``."""
    return RegistryJSONResponse({"error_code": code, "message": message}, status_code=status)


def _schema_error(e: SchemaError) -> Response:
    if e.status >= 500:  # a log failure: its detail (paths, hosts) stays in the server log
        log.error("schema registry: %s: %s", type(e).__name__, e)
        return _error_response(e.status, e.code, "Error in the backend data store: see the server log")
    return _error_response(e.status, e.code, str(e))


def _validation_message(e: RequestValidationError) -> str:
    parts = []
    for err in e.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg")))
    return "Invalid request parameter(s): " + "; ".join(parts)


class _RegistryRoute(APIRoute):
    """A route matched on the percent-encoded path, answering errors in Confluent's shape.

    Starlette matches on the decoded path, where a subject ``a/b`` sent as ``a%2Fb``
    would split into two segments. Like Confluent's server, match on the path as sent
    (only ``%2F`` and ``%25`` stay encoded) and decode each parameter afterwards.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raw = scope.get("raw_path")
        if scope.get("type") != "http" or not raw or not (b"%2f" in raw.lower() or b"%25" in raw):
            return super().matches(scope)
        segments = raw.decode("latin-1").split("/")
        encoded = "/".join(unquote(s).replace("%", "%25").replace("/", "%2F") for s in segments)
        match, child = super().matches({**scope, "path": encoded})
        if match is not Match.NONE:
            params = dict(child.get("path_params", {}))
            for name in self.param_convertors:
                if isinstance(params.get(name), str):
                    params[name] = unquote(params[name])
            child["path_params"] = params
        return match, child

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SchemaError as e:
                return _schema_error(e)
            except RequestValidationError as e:
                return _error_response(422, 422, _validation_message(e))
            except HTTPException as e:  # an ApiHTTPError (auth) carries its own code
                response = _error_response(e.status_code, getattr(e, "code", e.status_code),
                                           str(e.detail))
                response.headers.update(e.headers or {})
                return response
            except ClientDisconnect:  # nobody to answer, nothing to log
                return Response(status_code=400)
            except Exception:
                log.exception("schema registry: %s %s failed", request.method, request.url.path)
                return _error_response(500, 50001, _INTERNAL)

        return handle


# -- reading requests ------------------------------------------------------------------


async def _json_body(request: Request) -> Any:
    """The request body parsed as JSON, whatever JSON-ish content type it was sent with."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media and media not in ACCEPTED_CONTENT_TYPES:
        raise _RequestError(
            f"Unsupported content type {media!r}: send the body as {CONTENT_TYPE} or application/json",
            415,
            415,
        )
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _RequestError(f"Request body too large: at most {MAX_BODY_BYTES} bytes", 413, 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _RequestError(f"Request body too large: at most {MAX_BODY_BYTES} bytes", 413, 413)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise _RequestError('Request body is empty: send a JSON object, e.g. {"schema": "..."}')
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise _RequestError(
            f"Request body is not valid JSON ({e}): send a JSON object, e.g. {{\"schema\": \"...\"}}"
        ) from None


_JsonBody = Annotated[Any, Depends(_json_body)]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _RequestError(f"Request body must be a JSON object, got {type(body).__name__}")
    return body


@dataclass(frozen=True, slots=True)
class _SchemaRequest:
    """The schema fields of a register, lookup or compatibility request."""

    schema: str
    schema_type: str
    references: list[Any]
    sid: int | None = None
    version: int | None = None

    @classmethod
    def from_body(cls, body: Any) -> _SchemaRequest:
        obj = _object(body)
        schema = obj.get("schema")
        if not isinstance(schema, str) or not schema.strip():
            raise InvalidSchema(
                "Invalid schema: the field 'schema' must hold the schema as a non-empty string, "
                'e.g. {"schema": "{\\"type\\": \\"string\\"}"}'
            )
        schema_type = obj.get("schemaType") or "AVRO"
        if not isinstance(schema_type, str):
            raise InvalidSchema(f"Invalid schema: 'schemaType' must be AVRO or JSON, got {schema_type!r}")
        references = obj.get("references") or []
        if not isinstance(references, list):
            raise InvalidSchema("Invalid schema: 'references' must be a list of {name, subject, version}")
        sid = obj.get("id")
        if sid is not None and (isinstance(sid, bool) or not isinstance(sid, int)):
            raise _RequestError(f"The field 'id' must be an integer schema id, got {sid!r}")
        version = obj.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise InvalidVersion(f"The field 'version' must be an integer version, got {version!r}")
        # Confluent's defaults for "not given": id -1, version 0 (or -1)
        return cls(
            schema,
            schema_type,
            references,
            sid if sid is not None and sid >= 0 else None,
            version if version is not None and version > 0 else None,
        )


def _string_field(body: Any, names: Sequence[str], error: type[SchemaError], example: str) -> str:
    obj = _object(body)
    for name in names:
        value = obj.get(name)
        if isinstance(value, str):
            return value
    raise error(f"Expected a JSON object with a string field {names[0]!r}, e.g. {example}")


def _schema_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise SchemaNotFound(f"Schema {text} not found: schema ids are positive integers")
    return int(text)


def _page(items: list[Any], offset: int, limit: int) -> list[Any]:
    start = max(offset, 0)
    return items[start:] if limit < 0 else items[start : start + limit]


def _body_doc(example: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """OpenAPI for a JSON body the endpoint reads itself (so /docs can send it)."""
    content = {"schema": schema or {"type": "object"}, "example": example}
    return {
        "requestBody": {
            "required": True,
            "content": {CONTENT_TYPE: content, "application/json": content},
        }
    }


_SCHEMA_DOC = _body_doc(
    {"schema": '{"type": "string"}', "schemaType": "AVRO", "references": []},
    {"type": "object", "required": ["schema"], "properties": {
        "schema": {"type": "string", "description": "The schema's text (it must parse)"},
        "schemaType": {"enum": ["AVRO", "JSON"]},
        "references": {"type": "array", "items": {"type": "object", "required": ["name", "subject", "version"],
                                                  "properties": {"name": {"type": "string"},
                                                                 "subject": {"type": "string"},
                                                                 "version": {"type": "integer"}}}}}})
# the documented forms; compatibilityLevel is accepted for compatibility too
_LEVEL_DOC = _body_doc({"compatibility": "BACKWARD"}, {
    "type": "object", "required": ["compatibility"], "additionalProperties": False,
    "properties": {"compatibility": {"enum": list(LEVELS)}}})
_MODE_DOC = _body_doc({"mode": "READWRITE"}, {
    "type": "object", "required": ["mode"], "additionalProperties": False,
    "properties": {"mode": {"enum": list(MODES)}}})


# -- the endpoints ---------------------------------------------------------------------

_Deleted = Annotated[bool, Query(description="Include soft-deleted subjects or versions.")]
_Permanent = Annotated[bool, Query(description="Hard delete (after a soft delete).")]
_Normalize = Annotated[bool, Query(description="Accepted; schemas are always compared normalized.")]
_Offset = Annotated[int, Query(ge=0)]
# documented, checked by the registry itself (Confluent's 42202 for a bad version)
_Version = Annotated[str, Path(json_schema_extra={"pattern": "^(latest|-1|[1-9][0-9]{0,8})$"},
                               description="A version number, -1 or latest (the newest live one)")]
_Limit = Annotated[int, Query(description="Page size; -1 for all.")]
_DeletedOnly = Annotated[bool, Query(alias="deletedOnly")]
_DeletedOnlySnake = Annotated[bool, Query(alias="deleted_only", include_in_schema=False)]
_DefaultToGlobal = Annotated[bool, Query(alias="defaultToGlobal")]


def router(registry: SchemaRegistry, prefix: str = "") -> APIRouter:
    """The registry's REST endpoints (Confluent's paths) for ``registry``, under ``prefix``."""
    api = APIRouter(
        prefix=prefix,
        route_class=_RegistryRoute,
        default_response_class=RegistryJSONResponse,
        tags=["schema registry"],
    )

    @api.get("/")
    def root() -> dict[str, Any]:
        """An empty object: the registry is up."""
        return {}

    # -- subjects ----------------------------------------------------------------------

    @api.get("/subjects")
    def list_subjects(
        subject_prefix: Annotated[str, Query(alias="subjectPrefix")] = "",
        deleted: _Deleted = False,
        deleted_only: _DeletedOnly = False,
        deleted_only_: _DeletedOnlySnake = False,
        offset: _Offset = 0,
        limit: _Limit = -1,
    ) -> list[str]:
        """Subject names, sorted."""
        if deleted_only or deleted_only_:
            found = [
                s for s in registry.subjects(deleted=True, prefix=subject_prefix)
                if any(v.deleted for v in _versions_or_none(registry, s))
            ]
        else:
            found = registry.subjects(deleted=deleted, prefix=subject_prefix)
        return _page(found, offset, limit)

    @api.post("/subjects/{subject}", openapi_extra=_SCHEMA_DOC)
    def lookup_schema(
        subject: str, body: _JsonBody, deleted: _Deleted = False, normalize: _Normalize = False
    ) -> dict[str, Any]:
        """Is this schema registered under the subject? Its subject, version, id and schema."""
        req = _SchemaRequest.from_body(body)
        found = _fresh(registry, lambda: registry.lookup(
            subject, req.schema, req.schema_type, req.references, deleted=deleted))
        return found.to_json()

    @api.delete("/subjects/{subject}")
    def delete_subject(subject: str, permanent: _Permanent = False) -> list[int]:
        """Soft-delete every version (``permanent=true`` after that: remove them)."""
        return registry.delete_subject(subject, permanent=permanent)

    @api.post("/subjects/{subject}/versions", openapi_extra=_SCHEMA_DOC)
    def register_schema(subject: str, body: _JsonBody, normalize: _Normalize = False) -> dict[str, Any]:
        """Register a schema (idempotent): its id, plus subject, version and schema as stored."""
        req = _SchemaRequest.from_body(body)
        registered = registry.register(
            subject, req.schema, req.schema_type, req.references, sid=req.sid, version=req.version
        )
        return registered.to_json()

    @api.get("/subjects/{subject}/versions")
    def list_versions(
        subject: str,
        deleted: _Deleted = False,
        deleted_only: _DeletedOnly = False,
        deleted_only_: _DeletedOnlySnake = False,
        offset: _Offset = 0,
        limit: _Limit = -1,
    ) -> list[int]:
        """The subject's version numbers, oldest first."""
        if deleted_only or deleted_only_:
            every = _fresh(registry, lambda: registry.versions(subject, deleted=True))
            found = [v.version for v in every if v.deleted]
        else:
            found = [v.version for v in _fresh(registry, lambda: registry.versions(subject, deleted=deleted))]
        return _page(found, offset, limit)

    @api.get("/subjects/{subject}/versions/{version}")
    def get_version(subject: str, version: _Version, deleted: _Deleted = False) -> dict[str, Any]:
        """One version (a number or ``latest``): subject, version, id, schema(, schemaType)."""
        return _fresh(registry, lambda: registry.version(subject, version, deleted=deleted)).to_json()

    @api.get("/subjects/{subject}/versions/{version}/schema")
    def get_version_schema(subject: str, version: _Version, deleted: _Deleted = False) -> Response:
        """The schema text of one version, as registered."""
        text = _fresh(registry, lambda: registry.version(subject, version, deleted=deleted)).schema.schema
        return Response(text.encode(), media_type=CONTENT_TYPE)

    @api.get("/subjects/{subject}/versions/{version}/referencedby")
    def referenced_by(subject: str, version: _Version, offset: _Offset = 0, limit: _Limit = -1) -> list[int]:
        """Ids of the live schemas whose references name this version."""
        target = _fresh(registry, lambda: registry.version(subject, version))
        ids = {
            v.id
            for s in registry.subjects()
            for v in _versions_or_none(registry, s)
            if any(r.subject == target.subject and r.version == target.version for r in v.schema.references)
        }
        return _page(sorted(ids), offset, limit)

    @api.delete("/subjects/{subject}/versions/{version}")
    def delete_version(subject: str, version: _Version, permanent: _Permanent = False) -> int:
        """Soft-delete one version (``permanent=true`` after that: remove it)."""
        return registry.delete_version(subject, version, permanent=permanent)

    # -- schemas by id -----------------------------------------------------------------

    @api.get("/schemas/types")
    def list_schema_types() -> list[str]:
        """The schema types this registry accepts."""
        return list(schema_types())

    @api.get("/schemas/ids/{sid}")
    def get_schema(sid: str, subject: str | None = None) -> dict[str, Any]:
        """The schema with this id: schema(, schemaType, references).

        ``subject`` is accepted and does not filter: ids are global, as in Confluent's
        default context (deserializers send their own subject here).
        """
        return registry.schema_by_id(_schema_id(sid)).to_json()

    @api.get("/schemas/ids/{sid}/schema")
    def get_schema_text(sid: str, subject: str | None = None) -> Response:
        """The schema text with this id, as registered."""
        text = registry.schema_by_id(_schema_id(sid)).schema
        return Response(text.encode(), media_type=CONTENT_TYPE)

    @api.get("/schemas/ids/{sid}/versions")
    def get_schema_versions(
        sid: str, subject: str | None = None, deleted: _Deleted = False, offset: _Offset = 0, limit: _Limit = -1
    ) -> list[dict[str, Any]]:
        """Every subject and version registered with this id (``subject`` filters)."""
        found = [
            {"subject": v.subject, "version": v.version}
            for v in registry.usages(_schema_id(sid), deleted=deleted)
            if subject is None or v.subject == subject
        ]
        return _page(found, offset, limit)

    @api.get("/schemas/ids/{sid}/subjects")
    def get_schema_subjects(
        sid: str, subject: str | None = None, deleted: _Deleted = False, offset: _Offset = 0, limit: _Limit = -1
    ) -> list[str]:
        """Every subject registered with this id (``subject`` filters)."""
        usages = registry.usages(_schema_id(sid), deleted=deleted)
        found = sorted({v.subject for v in usages if subject is None or v.subject == subject})
        return _page(found, offset, limit)

    # -- compatibility -----------------------------------------------------------------

    @api.post("/compatibility/subjects/{subject}/versions/{version}", openapi_extra=_SCHEMA_DOC)
    def test_compatibility(
        subject: str, version: _Version, body: _JsonBody, verbose: bool = False, normalize: _Normalize = False
    ) -> dict[str, Any]:
        """Could this schema follow that version (``latest``: the newest live one)?"""
        req = _SchemaRequest.from_body(body)
        against: str | int = version
        if version in _LATEST:
            try:
                against = _fresh(registry, lambda: registry.version(subject, "latest")).version
            except SubjectNotFound:
                against = "latest"  # nothing to be compatible with
        reasons = _fresh(registry, lambda: registry.check(
            subject, req.schema, req.schema_type, req.references, version=against))
        return _compatibility_result(reasons, verbose)

    @api.post("/compatibility/subjects/{subject}/versions", openapi_extra=_SCHEMA_DOC)
    def test_compatibility_all(
        subject: str, body: _JsonBody, verbose: bool = False, normalize: _Normalize = False
    ) -> dict[str, Any]:
        """Could this schema be registered? Checked against the versions the level names
        (the latest, or all of them for a ``_TRANSITIVE`` level)."""
        req = _SchemaRequest.from_body(body)
        reasons = registry.check(subject, req.schema, req.schema_type, req.references, version="latest")
        return _compatibility_result(reasons, verbose)

    # -- configuration: compatibility levels and modes ---------------------------------

    @api.get("/config")
    def get_global_config() -> dict[str, Any]:
        """The global compatibility level."""
        return {"compatibilityLevel": registry.compatibility()}

    @api.put("/config", openapi_extra=_LEVEL_DOC)
    def set_global_config(body: _JsonBody) -> dict[str, Any]:
        """Set the global compatibility level."""
        level = _string_field(body, _LEVEL_FIELDS, InvalidCompatibilityLevel, _LEVEL_EXAMPLE)
        return {"compatibility": registry.set_compatibility(level)}

    @api.get("/config/{subject}")
    def get_subject_config(subject: str, default_to_global: _DefaultToGlobal = False) -> dict[str, Any]:
        """The subject's compatibility level (40408 if it has none, unless defaultToGlobal)."""
        level = _fresh(registry, lambda: registry.compatibility(subject, default_to_global=default_to_global))
        return {"compatibilityLevel": level}

    @api.put("/config/{subject}", openapi_extra=_LEVEL_DOC)
    def set_subject_config(subject: str, body: _JsonBody) -> dict[str, Any]:
        """Set the subject's compatibility level."""
        level = _string_field(body, _LEVEL_FIELDS, InvalidCompatibilityLevel, _LEVEL_EXAMPLE)
        return {"compatibility": registry.set_compatibility(level, subject)}

    @api.delete("/config/{subject}")
    def delete_subject_config(subject: str) -> dict[str, Any]:
        """Drop the subject's level (it follows the global one again); returns the old one."""
        return {"compatibilityLevel": registry.delete_compatibility(subject)}

    @api.get("/mode")
    def get_global_mode() -> dict[str, Any]:
        """The global mode: READWRITE, READONLY, READONLY_OVERRIDE or IMPORT."""
        return {"mode": registry.mode()}

    @api.put("/mode", openapi_extra=_MODE_DOC)
    def set_global_mode(body: _JsonBody, force: bool = False) -> dict[str, Any]:
        """Set the global mode (IMPORT over existing subjects needs ``force=true``)."""
        mode = _string_field(body, ("mode",), InvalidMode, _MODE_EXAMPLE)
        return {"mode": registry.set_mode(mode, force=force)}

    @api.get("/mode/{subject}")
    def get_subject_mode(subject: str, default_to_global: _DefaultToGlobal = False) -> dict[str, Any]:
        """The subject's mode (40409 if it has none, unless defaultToGlobal)."""
        return {"mode": _fresh(registry, lambda: registry.mode(subject, default_to_global=default_to_global))}

    @api.put("/mode/{subject}", openapi_extra=_MODE_DOC)
    def set_subject_mode(subject: str, body: _JsonBody, force: bool = False) -> dict[str, Any]:
        """Set the subject's mode."""
        mode = _string_field(body, ("mode",), InvalidMode, _MODE_EXAMPLE)
        return {"mode": registry.set_mode(mode, subject, force=force)}

    @api.delete("/mode/{subject}")
    def delete_subject_mode(subject: str) -> dict[str, Any]:
        """Drop the subject's mode (it follows the global one again); returns the old one."""
        return {"mode": registry.delete_mode(subject)}

    return api


_LEVEL_FIELDS = ("compatibility", "compatibilityLevel")
_LEVEL_EXAMPLE = '{"compatibility": "BACKWARD"}'
_MODE_EXAMPLE = '{"mode": "READWRITE"}'


def _fresh(registry: SchemaRegistry, read: Callable[[], T]) -> T:
    """``read()``, retried once after catching up with the log if it found nothing.

    Reads are served from memory refreshed every ``stale_after_s``; a subject, version
    or setting another process registered a moment ago would otherwise be "not found".
    """
    try:
        return read()
    except (SubjectNotFound, VersionNotFound, SchemaNotFound, CompatibilityNotConfigured,
            ModeNotConfigured):
        registry.refresh()
        return read()


def _versions_or_none(registry: SchemaRegistry, subject: str) -> list[Any]:
    """The subject's versions including soft-deleted ones; none if it vanished meanwhile."""
    try:
        return registry.versions(subject, deleted=True)
    except SubjectNotFound:
        return []


def _compatibility_result(reasons: list[str], verbose: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"is_compatible": not reasons}
    if verbose:
        out["messages"] = reasons
    return out


# -- the application -------------------------------------------------------------------


async def _http_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        hint = "; see /docs for the endpoints" if exc.status_code in (404, 405) else ""
        return _error_response(exc.status_code, exc.status_code, f"HTTP {exc.status_code} {exc.detail}{hint}")
    return await _internal_error(request, exc)


async def _request_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, RequestValidationError):
        return _error_response(422, 422, _validation_message(exc))
    return await _internal_error(request, exc)


async def _internal_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, SchemaError):
        return _schema_error(exc)
    log.error("schema registry: %s %s failed", request.method, request.url.path, exc_info=exc)
    return _error_response(500, 50001, _INTERNAL)


def create_app(registry: SchemaRegistry, *, title: str = "eventml schema registry") -> FastAPI:
    """A FastAPI app serving :func:`router` at the root, docs at ``/docs``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        app_version = version("eventml")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        app_version = "0"
    app = FastAPI(
        title=title,
        version=app_version,
        description="Confluent Schema Registry compatible API over an eventml log.",
        default_response_class=RegistryJSONResponse,
    )
    app.include_router(router(registry))
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_error)
    app.add_exception_handler(Exception, _internal_error)
    return app


__all__ = [
    "ACCEPTED_CONTENT_TYPES",
    "CONTENT_TYPE",
    "MAX_BODY_BYTES",
    "RegistryJSONResponse",
    "create_app",
    "router",
]
