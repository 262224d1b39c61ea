"""The model registry over HTTP: models, versions and their metadata; moving an alias (admin).

* ``GET /v1/models``: ``{"models": [{"name", "latest_version", "versions", "aliases",
  "created_ms"}]}``, as ``eventml models list --json``;
* ``GET /v1/models/{name}?limit=100&offset=0``: ``{"name", "latest_version",
  "version_count", "aliases": {alias: version}, "versions": [...], "next_offset"}``, the
  versions newest first, each as ``eventml models show --json`` prints it;
* ``GET /v1/models/{name}/versions/{version}``: one version's metadata;
* ``PUT /v1/models/{name}/aliases/{alias}`` with ``{"version": N, "reason": "..."}``: points
  the alias at the version through :func:`eventml.ml.move_alias`, which also appends the
  change to the control topic (``_models``), so running workers scoring ``NAME@ALIAS``
  switch at their next batch; the answer is the change (``model``, ``alias``, ``version``,
  ``previous``, ``reason``, ``at_ms``) and whether it was ``announced`` (no log: registry
  only).

Without API keys (an open server) alias changes are refused (401). Reads never create a
registry: without one, there are no models (404 for a name).
404 (40461) for an unknown model, (40462) an unknown version; 422 (42261) for a name or alias
the registry does not allow; 503 (50361) if the registry moved the alias but the log did not
take the announcement (retry the PUT: it is idempotent).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from eventml.api.errors import INVALID_REQUEST, ApiError, ApiRoute, JSONResponse
from eventml.api.ingest import UNAUTHENTICATED, read_body
from eventml.api.topics import COMMON_ERRORS, error_responses, json_content
from eventml.clock import system_clock_ms
from eventml.log import Log, LogError
from eventml.ml.control import move_alias
from eventml.ml.records import CONTROL_TOPIC
from eventml.ml.registry import (
    ALIAS_PATTERN,
    NAME_PATTERN,
    InvalidModelName,
    ModelNotFound,
    ModelRegistry,
    ModelVersion,
)

T = TypeVar("T")
MODEL_NOT_FOUND = 40461
VERSION_NOT_FOUND = 40462
INVALID_NAME = 42261
NOT_ANNOUNCED = 50361
MAX_VERSION = 2**31 - 1
MAX_REASON = 500
MAX_LIMIT = 1000
MAX_BODY_BYTES = 16_384

_STR = {"type": "string"}
_INT = {"type": "integer"}
_ALIASES = {"type": "object", "additionalProperties": _INT}
_SUMMARY = {"type": "object", "required": ["name", "latest_version", "versions", "aliases",
                                           "created_ms"],
            "properties": {"name": _STR, "latest_version": _INT, "versions": _INT,
                           "aliases": _ALIASES, "created_ms": _INT}}
_VERSION = {"type": "object", "required": [
    "name", "version", "flavor", "created_ms", "features", "metrics", "training", "code_version",
    "description", "files", "sha256", "aliases"], "properties": {
    "name": _STR, "version": _INT, "flavor": _STR, "created_ms": _INT,
    "features": {"type": "array", "items": _STR},
    "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
    "training": {"type": ["object", "null"]}, "code_version": {"type": ["string", "null"]},
    "description": _STR, "files": {"type": "array", "items": _STR}, "sha256": _STR,
    "aliases": {"type": "array", "items": _STR}}}
_MODELS = {"type": "object", "required": ["models"],
           "properties": {"models": {"type": "array", "items": _SUMMARY}}}
_MODEL = {"type": "object", "required": ["name", "latest_version", "version_count", "aliases",
                                         "versions", "next_offset"],
          "properties": {"name": _STR, "latest_version": _INT, "version_count": _INT,
                         "aliases": _ALIASES, "versions": {"type": "array", "items": _VERSION},
                         "next_offset": {"type": ["integer", "null"]}}}
_CHANGE = {"type": "object", "required": ["model", "alias", "version", "previous", "reason",
                                          "at_ms", "announced"],
           "properties": {"model": _STR, "alias": _STR, "version": _INT,
                          "previous": {"type": ["integer", "null"]}, "reason": _STR,
                          "at_ms": _INT, "announced": {"type": "boolean"}}}
_ALIAS_BODY = {"type": "object", "required": ["version"], "additionalProperties": False,
               "properties": {"version": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
                              "reason": {"type": "string", "maxLength": MAX_REASON}}}
_READ_ERRORS = (*COMMON_ERRORS, (404, "No such model or version"),
                (422, "Invalid model name or query"))

_Version = Annotated[int, Path(ge=1, le=MAX_VERSION, description="The version number.")]
# the registry's name rules, documented (the registry checks them: 422 with its message)
_Name = Annotated[str, Path(json_schema_extra={"pattern": f"^{NAME_PATTERN.pattern}$"},
                            description="The model's name.")]
_Alias = Annotated[str, Path(json_schema_extra={"pattern": f"^{ALIAS_PATTERN.pattern}$"},
                             description="The alias (e.g. champion).")]


def _on_registry(read: Callable[[], T]) -> T:
    """``read()``, the registry's refusals said the HTTP way (never its path on disk)."""
    try:
        return read()
    except InvalidModelName as e:
        raise ApiError(422, INVALID_NAME, str(e)) from None


def _versions(registry: ModelRegistry, name: str) -> list[ModelVersion]:
    """Every version of ``name``, oldest first, or a 404."""
    try:
        return _on_registry(lambda: registry.list_versions(name))
    except ModelNotFound:  # RegistryNotFound too: its message names a server path
        raise ApiError(404, MODEL_NOT_FOUND, f"no model named {name!r} (GET /v1/models lists "
                       "them)") from None


def _alias_request(body: bytes) -> tuple[int, str]:
    usage = 'send {"version": N, "reason": "..."}'
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ApiError(422, INVALID_REQUEST, f"the body is not valid JSON ({e}): {usage}") from None
    if not isinstance(request, dict) or "version" not in request or set(request) - {"version",
                                                                                   "reason"}:
        raise ApiError(422, INVALID_REQUEST, usage)
    version, reason = request["version"], request.get("reason", "")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise ApiError(422, INVALID_REQUEST, f"version must be a version number (from 1): {usage}")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise ApiError(422, INVALID_REQUEST, f"reason must be text of at most {MAX_REASON} "
                       "characters")
    return version, reason


NO_KEYS_MESSAGE = ("moving an alias needs an admin API key: create one with `eventml keys create "
                   "NAME --scope admin` and serve with keys (eventml serve --auth)")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="eventml"'}


def models_router(registry: ModelRegistry, log: Log | None, *, writable: bool) -> APIRouter:
    """The model registry routes over ``registry``; alias changes are announced on ``log``.
    Unless ``writable`` (the app checks API keys: the alias route needs an admin's), every
    alias change is refused (401)."""
    api = APIRouter(prefix="/v1/models", route_class=ApiRoute, default_response_class=JSONResponse,
                    tags=["models"])

    @api.get("", responses={200: {"description": "The models", **json_content(_MODELS)},
                            **error_responses(*COMMON_ERRORS)})
    def list_models() -> Response:
        """Every model: latest version, number of versions, aliases."""
        return JSONResponse({"models": [m.to_dict() for m in registry.list_models()]})

    @api.get("/{name}", responses={
        200: {"description": "The model's versions (newest first) and aliases",
              **json_content(_MODEL)}, **error_responses(*_READ_ERRORS)})
    def get_model(
        name: _Name,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Versions per page.")] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_VERSION, description="Versions to skip.")] = 0,
    ) -> Response:
        """A model: its aliases and its versions' metadata, newest first."""
        versions = _versions(registry, name)
        newest = versions[::-1][offset:offset + limit]
        return JSONResponse({
            "name": name, "latest_version": versions[-1].version, "version_count": len(versions),
            "aliases": {a: v.version for v in versions for a in v.aliases},
            "versions": [v.to_dict() for v in newest],
            "next_offset": offset + limit if offset + limit < len(versions) else None,
        })

    @api.get("/{name}/versions/{version}", responses={
        200: {"description": "One version's metadata", **json_content(_VERSION)},
        **error_responses(*_READ_ERRORS)})
    def get_version(name: _Name, version: _Version) -> Response:
        """One version: flavor, features, metrics, training data, aliases, artifact digest."""
        try:
            found = _on_registry(lambda: registry.get(name, version))
        except ModelNotFound:
            latest = _versions(registry, name)[-1].version  # 404 if there is no such model
            raise ApiError(404, VERSION_NOT_FOUND, f"model {name!r} has no version {version} "
                           f"(latest is {latest})") from None
        return JSONResponse(found.to_dict())

    def move(name: str, alias: str, version: int, reason: str) -> dict[str, Any]:
        _versions(registry, name)  # 404 for an unknown model before anything changes
        try:
            if log is None:
                previous = _on_registry(lambda: registry.set_alias(name, alias, version))
                return {"model": name, "alias": alias, "version": version, "previous": previous,
                        "reason": reason, "at_ms": system_clock_ms(), "announced": False}
            change = _on_registry(lambda: move_alias(registry, log, name, alias, version,
                                                     reason=reason))
        except ModelNotFound as e:
            raise ApiError(404, VERSION_NOT_FOUND, str(e)) from None
        except LogError as e:
            raise ApiError(503, NOT_ANNOUNCED, f"{name}@{alias} now names version {version} in "
                           f"the registry, but the log did not take the announcement "
                           f"({type(e).__name__}): running workers keep their version; retry "
                           "the PUT") from None
        return {**change.to_dict(), "announced": True}

    @api.put("/{name}/aliases/{alias}", openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": _ALIAS_BODY}}}},
        responses={200: {"description": f"The alias moved (and was announced on {CONTROL_TOPIC})",
                         **json_content(_CHANGE)},
                   **error_responses(*COMMON_ERRORS, (404, "No such model or version"),
                                     (413, "Body too large"),
                                     (422, "Invalid name, alias or body"),
                                     (503, "Moved in the registry, not announced: retry"))})
    async def set_alias(request: Request, name: _Name, alias: _Alias) -> Response:
        """Point NAME@ALIAS at a version; running workers switch at their next batch."""
        if not writable:
            raise ApiError(401, UNAUTHENTICATED, NO_KEYS_MESSAGE, _CHALLENGE)
        version, reason = _alias_request(await read_body(request, MAX_BODY_BYTES))
        return JSONResponse(await run_in_threadpool(move, name, alias, version, reason))

    return api

