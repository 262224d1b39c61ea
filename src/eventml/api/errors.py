"""Errors over HTTP: ``{"error_code": ..., "message": ...}`` bodies, never tracebacks.

The shape is the schema registry's (Confluent's): ``error_code`` is the HTTP status,
or the status followed by two digits naming the case (``40441``: no such feature
view). Routes of the ``/v1`` API use :class:`ApiRoute`, which turns :class:`ApiError`,
request validation errors and unexpected exceptions into such bodies (the last as a
500 whose details go to the server log only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response

log = logging.getLogger("eventml.api")

FEATURE_VIEW_NOT_FOUND = 40441
VIEW_NOT_FOUND = 40451
ROW_NOT_FOUND = 40452
INVALID_REQUEST = 422
INTERNAL = 50001
VIEW_NOT_READY = 50301
SERVICE_UNAVAILABLE = 50302
_INTERNAL_MESSAGE = "Internal server error: the request failed; see the server log"


class JSONResponse(StarletteJSONResponse):
    """``application/json`` rendered with orjson (non-finite floats become ``null``). A
    subclass of Starlette's, so the OpenAPI spec documents routes' return types as JSON."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class ApiError(Exception):
    """A request the API answers with an error: HTTP ``status``, ``code`` and a message
    saying what to do next."""

    def __init__(self, status: int, code: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers  # e.g. WWW-Authenticate on a 401, Retry-After on a 429


class ApiHTTPError(HTTPException):
    """An :class:`ApiError` for code outside a route's handler (dependencies of routes
    that are not :class:`ApiRoute`s, such as the schema registry's): the app's handler
    answers it with its own ``code`` and message."""

    def __init__(self, status: int, code: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)
        self.code, self.message = code, message


def error_response(status: int, code: int, message: str, response: type[Response] = JSONResponse,
                   headers: Mapping[str, str] | None = None) -> Response:
    return response({"error_code": code, "message": message}, status_code=status, headers=headers)


def validation_message(e: RequestValidationError) -> str:
    parts = []
    for err in e.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg")))
    return "Invalid request parameter(s): " + "; ".join(parts)


class ApiRoute(APIRoute):
    """A route whose every failure is an error body (see the module's docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as e:
                return error_response(e.status, e.code, e.message, headers=e.headers)
            except RequestValidationError as e:
                return error_response(422, INVALID_REQUEST, validation_message(e))
            except ApiHTTPError as e:
                return error_response(e.status_code, e.code, e.message, headers=e.headers)
            except HTTPException as e:
                return error_response(e.status_code, e.status_code, str(e.detail), headers=e.headers)
            except ClientDisconnect:  # nobody to answer, nothing to log
                return Response(status_code=400)
            except Exception:
                log.exception("eventml api: %s %s failed", request.method, request.url.path)
                return error_response(500, INTERNAL, _INTERNAL_MESSAGE)

        return handle


def internal_error(request: Request, exc: Exception, response: type[Response] = JSONResponse) -> Response:
    """The 500 answer to an exception no route caught (its details go to the log)."""
    log.error("eventml api: %s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, INTERNAL, _INTERNAL_MESSAGE, response)
