"""A route for a hot path: its endpoint gets the request, without FastAPI's dependency solving.

FastAPI solves a route's dependencies and parameters on every request (for a single-event
ingest, ~30 of the ~195 µs the event loop spent on it in process). :class:`DirectRoute` calls its
endpoint, ``async def endpoint(request) -> Response``, directly, keeping everything else of
:class:`~eventml.api.errors.ApiRoute` (every failure an error body) and the route's
OpenAPI description (declare its parameters in ``openapi_extra``).

Only when the route's dependencies are none or the app's key check alone
(:meth:`eventml.api.auth.Authorizer.guard`): the endpoint must then authorize the request
itself, with the operation and resource of the route's ``ROUTE_POLICY`` row. With any other
dependency the route is solved as any other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import fastapi.routing
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from eventml.api.auth import Authorizer
from eventml.api.errors import ApiRoute


def only_the_key_check(route: APIRoute) -> bool:
    """Whether ``route``'s dependencies, with those of the routers and app including it,
    are none or :meth:`Authorizer.guard` alone."""
    return all(getattr(d.dependency, "__name__", None) == "guard"
               and isinstance(getattr(d.dependency, "__self__", None), Authorizer)
               for d in [*route.dependencies, *_including_dependencies()])


def _including_dependencies() -> list[Any]:
    """The dependencies of the inclusion FastAPI is building the route's handler for.

    FastAPI >= 0.16x no longer copies an included route with its includers' dependencies
    merged in: it builds the handler once per inclusion, the inclusion in a context
    variable. Older ones copy the route: its own ``dependencies`` hold them all."""
    context_var = getattr(fastapi.routing, "_effective_route_context_var", None)
    context = None if context_var is None else context_var.get(None)
    return list(getattr(context, "dependencies", None) or [])


class _Direct(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        if not only_the_key_check(self):
            return super().get_route_handler()
        endpoint = cast(Callable[[Request], Awaitable[Response]], self.endpoint)

        async def handle(request: Request) -> Response:
            return await endpoint(request)

        return handle


class DirectRoute(ApiRoute, _Direct):
    """:class:`ApiRoute` (error bodies) around a direct call of the endpoint (see the module)."""
