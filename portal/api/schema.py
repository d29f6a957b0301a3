"""OpenAPI additions: the Bearer API key scheme and the parts every operation shares.

``postprocess_schema`` (a drf-spectacular POSTPROCESSING_HOOK) documents, for every operation,
the problem-details error responses, the ``Idempotency-Key`` header on POST and 412 where
``If-Match`` is accepted, so no view has to repeat them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter

from .problems import PROBLEM_CONTENT_TYPE

IF_MATCH_PARAMETER = OpenApiParameter(
    name="If-Match",
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "The ETag you read. When it no longer matches the resource, nothing changes and the "
        "answer is 412 with the current ETag."
    ),
)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.authentication.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "gpc_<8 characters>_<secret>",
            "description": (
                "An organization key (scopes read, write) or a provider key (scopes "
                "usage:ingest, approvals), sent as `Authorization: Bearer <key>`."
            ),
        }


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string", "description": "urn:gpc:problem:<code>"},
        "title": {"type": "string", "description": "The HTTP status phrase."},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What went wrong, for a person to read."},
        "instance": {"type": "string", "nullable": True, "description": "The request path."},
        "code": {"type": "string", "description": "A short stable code, e.g. not_found."},
        "errors": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/ProblemFieldError"},
            "description": "Present for validation errors: one entry per failing field.",
        },
        "current_state": {"type": "string", "description": "On illegal_transition (409)."},
        "target_state": {"type": "string", "description": "On illegal_transition (409)."},
        "current_etag": {"type": "string", "description": "On precondition_failed (412)."},
        "retry_after": {"type": "integer", "description": "On throttled (429), seconds."},
    },
    "required": ["type", "title", "status", "detail", "code"],
    "additionalProperties": True,
}
PROBLEM_FIELD_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "field": {
            "type": "string",
            "nullable": True,
            "description": "Dotted path of the input at fault (null: the request as a whole).",
        },
        "message": {"type": "string"},
        "code": {"type": "string", "nullable": True},
    },
    "required": ["field", "message"],
}

_DESCRIPTIONS = {
    "400": "Invalid input; `errors` names each field.",
    "401": "No credential, or a bad, revoked or expired API key.",
    "403": "The credential's role or scope does not allow this.",
    "404": "Not found, or not visible to this credential (another organization's objects).",
    "409": "Conflicts with the current state (illegal transition: `current_state`), or the "
    "same Idempotency-Key is still being processed.",
    "412": "If-Match did not match: the resource changed since it was read.",
    "422": "The Idempotency-Key was already used with a different request.",
    "429": "Throttled; retry after the `Retry-After` header's seconds.",
}


def _problem_response(code: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[code],
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if code == "429":
        response["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
        }
    if code == "401":
        response["headers"] = {
            "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer challenge."}
        }
    return response


IDEMPOTENCY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": (
        "A unique value per intended operation (e.g. a UUID). A retry with the same key and "
        "body returns the first response (with `Idempotent-Replayed: true`); the same key with "
        "another body gets 422; while the first is still running, 409. Kept 24 hours."
    ),
}


def postprocess_schema(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["ProblemFieldError"] = PROBLEM_FIELD_ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            codes = ["401", "403", "429"]
            if method != "get" or "{" in path:
                codes.append("404")
            if method in {"post", "put", "patch"}:
                codes.append("400")
            if method in {"post", "put", "patch", "delete"}:
                codes.append("409")
            if method == "post":
                codes.append("422")
                parameters = operation.setdefault("parameters", [])
                if not any(p.get("name") == "Idempotency-Key" for p in parameters):
                    parameters.append(dict(IDEMPOTENCY_PARAMETER))
            if any(p.get("name") == "If-Match" for p in operation.get("parameters", [])):
                codes.append("412")
            if path.startswith("/api/v1/orgs/{org_slug}") or "/orgs/{org_slug}" in path:
                codes.append("404")
            responses = operation.setdefault("responses", {})
            for code in sorted(set(codes)):
                responses.setdefault(code, _problem_response(code))
    return result
