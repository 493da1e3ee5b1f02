"""OpenAPI documentation shared by every app: the error responses and the page envelope.

Every operation under /api/ documents each status it can answer with, body included (issue 9:
"no bare defaults"); tests/test_fuzz_api.py holds the server to it. Which statuses apply follows
from the operation itself, so a new view is covered without a table to keep up to date:

- 401, 403 and 503 anywhere: a bad or missing credential, a scope or role that may not, the
  database gone (rollout_control.core.errors);
- 400 where input is read: a request body, a query parameter, or any write;
- 404 where a path names a resource, and on paginated lists (a page past the end);
- 409 on every write (the change conflicts with the current state);
- 412 where an `If-Match` header is accepted;
- 413 where a body is accepted (BodySizeLimitMiddleware), and 415 there for a body that is not
  JSON (the API parses JSON only).

A view adds any other status itself (a rate limit's 429, say) with `OpenApiResponse` and no body;
this hook gives every error response without a body the `Error` shape.
"""

import functools
from typing import Any

from drf_spectacular import openapi
from rest_framework import serializers

WRITES = {"post", "put", "patch", "delete"}
METHODS = WRITES | {"get", "head", "options", "trace"}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every API error has this shape.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable, e.g. not_found."},
                "message": {"type": "string", "description": "For people: what is wrong."},
                "fields": {
                    "type": "object",
                    "description": "Per field (dotted path), what is wrong with it.",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        }
    },
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "string"},
    }
}
_HEADERS: dict[str, dict[str, Any]] = {
    "401": {
        "WWW-Authenticate": {"description": "The scheme to use.", "schema": {"type": "string"}}
    },
    "429": _RETRY_AFTER,
    "503": _RETRY_AFTER,
}
DESCRIPTIONS = {
    "400": "Bad input; nothing was written. `fields` says what is wrong where.",
    "401": "No credentials, or an unknown, expired or revoked token.",
    "403": "The token's scope or the user's role does not allow this.",
    "404": "No such resource (or page).",
    "409": "Conflicts with the current state (e.g. a plan in the wrong status).",
    "412": "The `If-Match` version is stale.",
    "413": "The body is larger than MAX_REQUEST_BYTES.",
    "415": "The body is not JSON (`Content-Type: application/json`).",
    "429": "Rate limit reached; see Retry-After.",
    "503": "The database is unreachable; try again after Retry-After.",
}


def _error_response(code: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": DESCRIPTIONS.get(code, "Error"),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if code in _HEADERS:
        response["headers"] = dict(_HEADERS[code])
    return response


def _statuses(method: str, operation: dict[str, Any]) -> set[str]:
    parameters = operation.get("parameters", [])
    located = {(p.get("in"), p.get("name", "").lower()) for p in parameters}
    locations = {location for location, _ in located}
    codes = {"401", "403", "503"}
    if method in WRITES or "requestBody" in operation or "query" in locations:
        codes.add("400")
    if "path" in locations or ("query", "page") in located:
        codes.add("404")
    if method in WRITES:
        codes.add("409")
    if ("header", "if-match") in located:
        codes.add("412")
    if "requestBody" in operation:
        codes |= {"413", "415"}
    return codes


def add_error_responses(
    result: dict[str, Any], generator: object, request: object, public: bool
) -> dict[str, Any]:
    """drf-spectacular post-processing hook: see the module docstring."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, item in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue  # OFREP documents its own errors, in its own shape (flags/schema.py)
        for method, operation in item.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code in sorted(_statuses(method, operation)):
                responses.setdefault(code, _error_response(code))
            for code, response in responses.items():
                if code[0] in "45" and "content" not in response:
                    responses[code] = {**_error_response(code), **response}
    return result


@functools.cache
def paginated(serializer_class: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The page envelope `rollout_control.core.pagination.Pagination` wraps a list in, for
    `extend_schema(responses=...)` on views that paginate by hand (drf-spectacular only sees
    pagination on generic views)."""
    name = serializer_class.__name__.removesuffix("Serializer")
    return type(
        f"Paginated{name}List",
        (serializers.Serializer,),
        {
            "__module__": serializer_class.__module__,
            "__doc__": f"A page of {name}.",
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's, plus the body of a DELETE that declares one (`extend_schema(request=)`):
    removing cohort members or an opt-in takes a body, and the schema must say it is required."""

    def _get_request_body(self, direction: str = "request") -> dict[str, Any] | None:
        if self.method != "DELETE":
            return super()._get_request_body(direction)
        serializer = self.get_request_serializer()
        if serializer is None:
            return None
        schema, required = self._get_request_for_media_type(serializer, direction)
        if schema is None:
            return None
        body: dict[str, Any] = {"content": {"application/json": {"schema": schema}}}
        return {**body, "required": True} if required else body
