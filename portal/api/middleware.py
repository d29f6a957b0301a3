"""Problem details for what happens under /api/ before or outside DRF.

Django answers an unknown URL with handler404, a crash with handler500, and a plain view's
wrong method with 405, all as HTML. Under /api/ this middleware turns any such error response
into a problem document, keeping headers such as Allow and WWW-Authenticate.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .problems import PROBLEM_CONTENT_TYPE, problem_body

API_PREFIX = "/api/"
_DETAILS = {
    404: "There is nothing at this address.",
    405: "This address does not accept this method.",
    500: "An unexpected error occurred on the server; it has been logged.",
}
_CODES = {400: "bad_request", 403: "permission_denied", 404: "not_found",
          405: "method_not_allowed", 500: "server_error"}  # fmt: skip


class ApiProblemMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path.startswith(API_PREFIX)
            or response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE)
        ):
            return response
        status_code = response.status_code
        body = problem_body(
            status_code=status_code,
            code=_CODES.get(status_code, "server_error" if status_code >= 500 else "error"),
            detail=_DETAILS.get(status_code, "The request could not be completed."),
            instance=request.path,
        )
        problem = HttpResponse(
            json.dumps(body), status=status_code, content_type=PROBLEM_CONTENT_TYPE
        )
        for header in ("Allow", "WWW-Authenticate", "Retry-After", "Vary"):
            if header in response:
                problem[header] = response[header]
        return problem
