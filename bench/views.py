"""R0, the reference of the API list benchmark: the same JSON body as the API's page of 50
requests, through the same WSGI server and middleware, with no ORM, no authentication and no
throttling. The harness saves the API's body to BENCH_R0_BODY_FILE before the run."""

from __future__ import annotations

import os
from functools import cache

from django.http import HttpRequest, HttpResponse


@cache
def _body() -> bytes:
    path = os.environ.get("BENCH_R0_BODY_FILE", "")
    if not path:
        return b'{"count": 0, "next": null, "previous": null, "results": []}'
    with open(path, "rb") as handle:
        return handle.read()


def reference_list_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_body(), content_type="application/json")
