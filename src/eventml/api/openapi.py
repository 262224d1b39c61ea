"""The service's OpenAPI spec, completed with the errors every route can answer.

FastAPI documents what a route declares; the errors that come from the app around it are
added here, once, so the spec says what a client can really receive (Schemathesis checks
every response against it, tests/api/test_fuzz.py):

* with API keys, ``401``, ``403`` and ``429`` on every route that needs a key;
* ``404`` on a route with path parameters (an unknown topic, model, subject, id ...);
* ``422`` on a route that takes parameters or a body (it is our error body, not FastAPI's
  ``HTTPValidationError``: :mod:`eventml.api.errors` turns validation failures into it);
* ``413`` and ``415`` on a route that reads a body;
* ``409`` on the schema registry's writes (an incompatible schema, a mode refused).

A ``{topic}`` path parameter is documented with the topic-name rule (the routes check it
themselves and answer 422 for a name no topic can have).

Every error is ``{"error_code": int, "message": str}``, as ``application/json``, or on the
schema registry's paths as its own media type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ERROR_BODY: dict[str, Any] = {
    "type": "object", "required": ["error_code", "message"],
    "properties": {"error_code": {"type": "integer"}, "message": {"type": "string"}},
}
# a topic name (the log's rule, Kafka's): 1-249 of [a-zA-Z0-9._-], but not "." or ".."
TOPIC_PATTERN = (r"^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}"
                 r"|\.\.[a-zA-Z0-9._-]{1,247})$")
_PATH_RULES = {"topic": {"pattern": TOPIC_PATTERN}}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_WHY = {
    401: "No, malformed, unknown, revoked or expired API key",
    403: "The key's scopes do not allow this operation on this resource",
    404: "Not found",
    409: "Conflict with the registry's state (incompatible schema, refused mode change)",
    413: "Body too large",
    415: "Unsupported content type",
    422: "Invalid request: parameters or body (the message says which)",
    429: "Rate limit of the key reached (see Retry-After)",
}


def complete(spec: dict[str, Any], *, secured: bool, public: frozenset[str],
             media_type: Callable[[str], str]) -> dict[str, Any]:
    """``spec`` with the errors above added to each operation (in place; returned).

    ``secured``: keys are required on every path but ``public``; ``media_type(path)``: the
    content type of that path's error bodies.
    """
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            statuses = set()
            if secured and path not in public:
                statuses |= {401, 403, 429}
            params = operation.get("parameters", [])
            for param in params:
                if param.get("in") == "path" and param.get("name") in _PATH_RULES:
                    param.setdefault("schema", {}).update(_PATH_RULES[param["name"]])
            if any(p.get("in") == "path" for p in params):
                statuses.add(404)
            if params or "requestBody" in operation:
                statuses.add(422)
            if "requestBody" in operation:
                statuses |= {413, 415}
                if operation.get("tags") == ["schema registry"]:
                    statuses.add(409)
            content = {media_type(path): {"schema": ERROR_BODY}}
            for status in sorted(statuses):
                documented = responses.get(str(status))
                if documented is None or _is_fastapi_validation(documented):
                    responses[str(status)] = {"description": _WHY[status], "content": content}
            for documented in responses.values():  # declared errors: in the path's media type
                body = documented.get("content", {})
                if list(body) == ["application/json"] and body["application/json"].get(
                        "schema") == ERROR_BODY and media_type(path) != "application/json":
                    documented["content"] = content
    _drop_unused_validation_schemas(spec)
    return spec


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def _drop_unused_validation_schemas(spec: dict[str, Any]) -> None:
    import json

    schemas = spec.get("components", {}).get("schemas", {})
    if "HTTPValidationError" in schemas and "HTTPValidationError" not in json.dumps(spec["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
