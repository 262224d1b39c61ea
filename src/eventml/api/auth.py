"""Who may call what: API keys checked on every request, against the route's resource.

With a :class:`~eventml.security.KeyStore`, :func:`eventml.api.create_app` installs
:meth:`Authorizer.guard` as a dependency of every route. It reads the key from the
``Authorization`` header only (``Bearer <key>`` or ``ApiKey <key>``; a key in the query
string is refused, as it would land in access logs), authenticates it, then asks the
route's policy which operation on which resource the request is: the resource is the
path parameter after the router decoded it, checked against the name rule before any
scope sees it, so ``produce:orders`` never grants ``orders-internal``, ``ORDERS`` or
``orders/..``. A route with no policy needs an ``admin`` key. Every refusal is one JSON
line saying what to fix; which check failed for a known key goes to the server log, never
to the client (a 401 does not say whether a key exists, was revoked or expired).

Per key, a token bucket limits the request rate (``429`` with ``Retry-After``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

from eventml.api.errors import ApiHTTPError
from eventml.security import ApiKey, AuthError, KeyStore, is_resource_name
from eventml.security.keys import looks_like_jwt

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventml.security.jwt import JwtVerifier

log = logging.getLogger("eventml.api.auth")

UNAUTHENTICATED = 40101
KEY_IN_URL = 40102
FORBIDDEN = 40301
RATE_LIMITED = 42901
_QUERY_KEY_NAMES = frozenset({"api_key", "apikey", "key", "token", "access_token", "authorization"})
_SCHEMES = ("bearer", "apikey")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="eventml"'}
PUBLIC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/healthz",
                          "/readyz"})

SCHEMAS_PREFIX = "/v1/schemas"
"""Where the schema registry's routes are mounted as well as at Confluent's root paths."""

# (method, route template) -> (operation, path parameter naming the resource; None: "*")
# "any": any valid key. Writes to the schema registry's global settings and deletes are admin.
Policy = tuple[str, str | None]
REGISTRY_POLICY: dict[tuple[str, str], Policy] = {
    ("GET", "/"): ("any", None),
    ("GET", "/subjects"): ("read", None),
    ("POST", "/subjects/{subject}"): ("read", "subject"),
    ("GET", "/subjects/{subject}/versions"): ("read", "subject"),
    ("POST", "/subjects/{subject}/versions"): ("schema-write", "subject"),
    ("GET", "/subjects/{subject}/versions/{version}"): ("read", "subject"),
    ("GET", "/subjects/{subject}/versions/{version}/schema"): ("read", "subject"),
    ("GET", "/subjects/{subject}/versions/{version}/referencedby"): ("read", "subject"),
    ("POST", "/compatibility/subjects/{subject}/versions/{version}"): ("read", "subject"),
    ("POST", "/compatibility/subjects/{subject}/versions"): ("read", "subject"),
    # ids are opaque and what a deserializer needs: any valid key may resolve them
    ("GET", "/schemas/types"): ("any", None),
    ("GET", "/schemas/ids/{sid}"): ("any", None),
    ("GET", "/schemas/ids/{sid}/schema"): ("any", None),
    ("GET", "/schemas/ids/{sid}/versions"): ("any", None),
    ("GET", "/schemas/ids/{sid}/subjects"): ("any", None),
    ("GET", "/config"): ("any", None),
    ("GET", "/config/{subject}"): ("read", "subject"),
    ("GET", "/mode"): ("any", None),
    ("GET", "/mode/{subject}"): ("read", "subject"),
}
ROUTE_POLICY: dict[tuple[str, str], Policy] = {
    ("POST", "/v1/topics/{topic}/events"): ("produce", "topic"),
    ("GET", "/metrics"): ("read", None),  # names topics and views: read:* (a scraper's key)
    ("GET", "/v1/features"): ("read", None),
    ("GET", "/v1/features/{view}"): ("read", "view"),
    ("GET", "/v1/views"): ("read", None),
    ("GET", "/v1/views/{view}"): ("read", "view"),
    ("GET", "/v1/views/{view}/rows/{key}"): ("read", "view"),
    ("GET", "/v1/views/{view}/status"): ("read", "view"),
    ("GET", "/v1/topics"): ("read", None),
    ("GET", "/v1/topics/{topic}"): ("read", "topic"),
    ("GET", "/v1/topics/{topic}/lag"): ("read", "topic"),
    ("GET", "/v1/topics/{topic}/dlq"): ("dlq", "topic"),
    # replaying dead letters, like moving a model's alias, is an admin's: no policy
    ("GET", "/v1/models"): ("read", None),
    ("GET", "/v1/models/{name}"): ("read", "name"),
    ("GET", "/v1/models/{name}/versions/{version}"): ("read", "name"),
    # NAME@ALIAS and NAME/VERSION are not resource names: the handlers check read on NAME
    ("POST", "/v1/predict/{model}"): ("any", None),
    ("POST", "/v1/predict/{model}/async"): ("any", None),
    ("GET", "/v1/predict/{model}/stats"): ("any", None),
    ("GET", "/v1/results/{request_id}"): ("any", None),  # read on the request's model, in the handler
    ("GET", "/v1/results/stream"): ("read", None),  # every model's results
    # the dashboard's data names topics, groups and models: read:* (its HTML page and assets at
    # / and /dashboard/static hold no data and are public: see eventml.api.dashboard)
    ("GET", "/v1/dashboard/snapshot"): ("read", None),
    ("GET", "/v1/dashboard/stream"): ("read", None),
    **REGISTRY_POLICY,
    # the root "/" is the registry's "is it up?": under the prefix it is "/v1/schemas/"
    **{(method, SCHEMAS_PREFIX + path): policy for (method, path), policy in REGISTRY_POLICY.items()},
}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``per_s`` requests a second per key on average, ``burst`` at once."""

    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_s <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs per_s > 0 and burst >= 1")


class _Buckets:
    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self.limit, self.clock = limit, clock
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, key_id: str) -> float:
        """0 if a request of ``key_id`` may go now (and counts it), else seconds to wait."""
        now = self.clock()
        rate, burst = self.limit.per_s, float(self.limit.burst)
        with self._lock:
            tokens, at = self._state.get(key_id, (burst, now))
            tokens = min(burst, tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._state[key_id] = (tokens - 1.0, now)
                return 0.0
            self._state[key_id] = (tokens, now)
            return (1.0 - tokens) / rate


class Authorizer:
    """Checks requests against ``keys`` (see the module docstring)."""

    def __init__(self, keys: KeyStore | None, *, rate_limit: RateLimit | None = None,
                 clock: Callable[[], float] = time.monotonic, jwt: JwtVerifier | None = None) -> None:
        if keys is None and jwt is None:
            raise ValueError("an Authorizer needs a key store, a JWT verifier or both")
        self.keys = keys
        self.jwt = jwt
        self._buckets = None if rate_limit is None else _Buckets(rate_limit, clock)

    def authenticate(self, request: Request) -> ApiKey:
        if _QUERY_KEY_NAMES & {k.lower() for k in request.query_params}:
            raise ApiHTTPError(401, KEY_IN_URL, "send the API key in the Authorization header "
                               "(Authorization: Bearer eml_...), never in the URL", _CHALLENGE)
        header = request.headers.get("authorization")
        if not header:
            raise ApiHTTPError(401, UNAUTHENTICATED, "this endpoint needs an API key: "
                               "Authorization: Bearer eml_... (eventml keys create)", _CHALLENGE)
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() not in _SCHEMES or not token.strip():
            raise ApiHTTPError(401, UNAUTHENTICATED, "the Authorization header must be "
                               "'Bearer <key or JWT>' or 'ApiKey <key>'", _CHALLENGE)
        try:
            key = self._verify(token.strip())
        except AuthError as e:
            log.info("eventml api: key refused (%s%s) for %s %s", e.reason,
                     f", id {e.key_id}" if e.key_id else "", request.method, request.url.path)
            raise ApiHTTPError(401, UNAUTHENTICATED, "invalid, revoked or expired API key",
                               _CHALLENGE) from None
        if self._buckets is not None:
            wait = self._buckets.wait_s(key.key_id)
            if wait > 0:
                raise ApiHTTPError(429, RATE_LIMITED, f"rate limit of key {key.key_id} reached: "
                                   f"retry in {wait:.2f} s",
                                   {"Retry-After": str(max(1, math.ceil(wait)))})
        return key

    def _verify(self, token: str) -> ApiKey:
        if self.jwt is not None and looks_like_jwt(token):
            return self.jwt.verify(token)
        if self.keys is None:
            raise AuthError("malformed")
        return self.keys.authenticate(token)

    def authorize(self, request: Request, operation: str, resource: str | None) -> ApiKey:
        """The request's key, if it may do ``operation`` on ``resource`` (None: every one)."""
        cached = getattr(request.state, "api_key", None)
        key = cached if isinstance(cached, ApiKey) else self.authenticate(request)
        request.state.api_key = key
        if operation == "any":
            return key
        if operation == "admin" or resource is None:
            allowed = key.allows(operation, "*") if operation != "admin" else key.is_admin
        else:
            allowed = is_resource_name(resource) and key.allows(operation, resource)
        if not allowed:
            what = operation if resource is None else f"{operation} on {resource!r}"
            raise ApiHTTPError(403, FORBIDDEN, f"key {key.key_id} may not {what}: its scopes are "
                               f"{', '.join(str(s) for s in key.scopes)}")
        return key

    async def guard(self, request: Request) -> None:
        """The app-wide dependency: the route's policy, else admin."""
        route = request.scope.get("route")
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if template in PUBLIC_PATHS:
            return
        operation, param = ROUTE_POLICY.get((request.method.upper(), str(template)), ("admin", None))
        if request.method.upper() == "HEAD":
            operation, param = ROUTE_POLICY.get(("GET", str(template)), ("admin", None))
        resource = None if param is None else str(request.path_params.get(param, ""))
        self.authorize(request, operation, resource)

    async def check(self, request: Request, operation: str, resource: str) -> ApiKey:
        """:meth:`authorize` as the routers call it (awaited), for checks a route's policy
        cannot make (the resource is known only once the body or reference is parsed)."""
        return self.authorize(request, operation, resource)
