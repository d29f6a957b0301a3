"""Optimistic concurrency: an ``ETag`` from a row's version, ``If-Match`` checked before a change.

A client reads a resource (``ETag: "..."``), sends the change with ``If-Match: "..."``, and gets
412 when someone changed the resource in between. Without If-Match the change goes through
(last writer wins), so existing scripts keep working.
"""

from __future__ import annotations

import hashlib
from typing import Any

from rest_framework.request import Request

from .problems import PreconditionFailed


def etag_for(*version: Any) -> str:
    """A strong ETag from the values that make a row's version (a version column, updated_at,
    or the mutable fields when the model has neither)."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in version).encode()).hexdigest()
    return f'"{digest[:32]}"'


def check_if_match(request: Request, current_etag: str) -> None:
    header = request.headers.get("If-Match")
    if header is None:
        return
    candidates = [tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()]
    if "*" in candidates or current_etag in candidates:
        return
    raise PreconditionFailed(current_etag=current_etag)
