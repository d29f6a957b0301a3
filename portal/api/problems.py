"""RFC 9457 problem details: the one error format of every 4xx/5xx under /api/.

``exception_handler`` is DRF's EXCEPTION_HANDLER; ``ApiProblemMiddleware`` (middleware.py)
catches what never reaches DRF (Django's own 404 for an unknown URL, 500s).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from portal.errors import DomainError

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:gpc:problem:"

# Codes for DRF's own exceptions, so every problem carries a short stable ``code``.
_DRF_CODES = {
    exceptions.ValidationError: "validation_error",
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def status_title(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


def problem_body(
    *,
    status_code: int,
    code: str,
    detail: str,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"{PROBLEM_TYPE_PREFIX}{code}",
        "title": status_title(status_code),
        "status": status_code,
        "detail": detail,
        "instance": instance,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    body.update({key: value for key, value in extensions.items() if key not in body})
    return body


def _field_errors(detail: Any, path: str = "") -> list[dict[str, Any]]:
    """Flatten DRF's nested error detail into ``[{"field": "a.0.b", "message": ...}]``."""
    if isinstance(detail, dict):
        errors = []
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            errors.extend(_field_errors(value, f"{path}.{name}" if path and name else path or name))
        return errors
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [
                {"field": path or None, "message": str(item), "code": getattr(item, "code", None)}
                for item in detail
            ]
        errors = []
        for index, item in enumerate(detail):
            errors.extend(_field_errors(item, f"{path}.{index}" if path else str(index)))
        return errors
    return [{"field": path or None, "message": str(detail), "code": getattr(detail, "code", None)}]


def _summary(errors: list[dict[str, Any]]) -> str:
    first = errors[0]
    where = f"{first['field']}: " if first["field"] else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}{first['message']}{more}"


def _code_for(exc: exceptions.APIException) -> str:
    for klass, code in _DRF_CODES.items():
        if isinstance(exc, klass):
            return code
    default = exc.default_code if isinstance(exc.default_code, str) else "error"
    return default


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every handled error becomes a problem document."""
    request = context.get("request")
    instance = request.path if request is not None else None
    if isinstance(exc, DomainError):
        errors = (
            [{"field": exc.field, "message": exc.message, "code": exc.code}] if exc.field else []
        )
        body = problem_body(
            status_code=exc.status_code,
            code=exc.code,
            detail=exc.message,
            instance=instance,
            errors=errors,
            **exc.extra,
        )
        return Response(body, status=exc.status_code, content_type=PROBLEM_CONTENT_TYPE)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return None
    extensions = getattr(exc, "extensions", {})
    if isinstance(exc, exceptions.ValidationError):
        errors = _field_errors(exc.detail)
        detail = _summary(errors) if errors else "The request is not valid."
    else:
        errors = []
        detail = str(exc.detail) if not isinstance(exc.detail, dict | list) else str(exc)
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        extensions = {**extensions, "retry_after": int(exc.wait + 0.999)}
    response.data = problem_body(
        status_code=response.status_code,
        code=_code_for(exc),
        detail=detail,
        instance=instance,
        errors=errors,
        **extensions,
    )
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The resource changed since you read it: fetch it again and retry."
    default_code = "precondition_failed"

    def __init__(self, *, current_etag: str) -> None:
        super().__init__()
        self.extensions = {"current_etag": current_etag}


class IdempotencyConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = (
        "A request with this Idempotency-Key is still being processed; retry in a moment."
    )
    default_code = "idempotency_in_progress"


class IdempotencyKeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was already used for a different request; use a new key."
    default_code = "idempotency_key_reused"


class InvalidIdempotencyKey(exceptions.ValidationError):
    def __init__(self, message: str) -> None:
        super().__init__({"Idempotency-Key": [message]})
