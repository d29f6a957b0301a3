"""``Idempotency-Key`` on POST: the first response is kept and replayed.

Scoped to the credential (an API key, or a user's session). The record is inserted, and
committed, before the handler runs: the unique (credential, key) constraint makes a concurrent
duplicate fail at once (409 while the first runs). The handler's writes and the stored response
commit in ONE transaction, so a stored response always matches what happened, and a crash
before that commit leaves nothing done and the record in progress (retry after
IDEMPOTENCY_STALE_SECONDS). The same key with another body answers 422. Records are kept
IDEMPOTENCY_TTL_HOURS (24 h at least); an older record no longer counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.request import Request

from accounts.models import IdempotencyRecord

from .authentication import credential_of
from .problems import IdempotencyConflict, IdempotencyKeyReused, InvalidIdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
REPLAYED_RESPONSE_HEADERS = ("Content-Type", "Location", "ETag")
MAX_KEY_LENGTH = 255


def _ttl() -> timedelta:
    return timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS)


def _stale_after() -> timedelta:
    return timedelta(seconds=settings.IDEMPOTENCY_STALE_SECONDS)


def request_fingerprint(request: Request) -> str:
    try:
        body = request._request.body
    except Exception:  # the stream was consumed by a multipart parser
        body = repr(sorted(request.data.items())).encode()
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.get_full_path().encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _validate_key(key: str) -> str:
    key = key.strip()
    if not key:
        raise InvalidIdempotencyKey("The Idempotency-Key header is empty.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(f"Use at most {MAX_KEY_LENGTH} characters.")
    if not key.isprintable() or not key.isascii():
        raise InvalidIdempotencyKey("Use printable ASCII characters only.")
    return key


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(bytes(record.response_body or b""), status=record.response_status)
    for name, value in record.response_headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _claim(*, credential: str, key: str, fingerprint: str) -> IdempotencyRecord | HttpResponse:
    """Insert the in-progress record, or answer from the one that exists."""
    now = timezone.now()
    for _attempt in range(2):
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    credential=credential, key=key, fingerprint=fingerprint, created_at=now
                )
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(credential=credential, key=key).first()
        if existing is None:
            continue  # deleted meanwhile (expired or failed): claim it again
        expired = existing.created_at <= now - _ttl()
        abandoned = (
            existing.state == IdempotencyRecord.State.IN_PROGRESS
            and existing.created_at <= now - _stale_after()
        )
        if expired or abandoned:
            # Remove exactly the row we looked at; a concurrent claimer races on the insert.
            IdempotencyRecord.objects.filter(
                pk=existing.pk, created_at=existing.created_at
            ).delete()
            continue
        if existing.fingerprint != fingerprint:
            raise IdempotencyKeyReused()
        if existing.state == IdempotencyRecord.State.IN_PROGRESS:
            raise IdempotencyConflict()
        return _replay(existing)
    raise IdempotencyConflict()


def run_idempotent(
    view: Any,
    handler: Callable[..., HttpResponse],
    raw_key: str,
    request: Request,
    *args: Any,
    **kwargs: Any,
) -> HttpResponse:
    """Run ``handler`` once per (credential, key); used by the API base classes for POST."""
    key = _validate_key(raw_key)
    claimed = _claim(
        credential=credential_of(request), key=key, fingerprint=request_fingerprint(request)
    )
    if isinstance(claimed, HttpResponse):
        return claimed
    record = claimed
    try:
        with transaction.atomic():
            try:
                response = handler(request, *args, **kwargs)
            except Exception as exc:
                response = view.handle_exception(exc)  # re-raises what is not an API error
            response = view.finalize_response(request, response, *args, **kwargs)
            if hasattr(response, "render"):
                response.render()
            if response.status_code >= 500:
                raise _NotKept(response)
            IdempotencyRecord.objects.filter(pk=record.pk).update(
                state=IdempotencyRecord.State.COMPLETED,
                response_status=response.status_code,
                response_headers={
                    name: response[name] for name in REPLAYED_RESPONSE_HEADERS if name in response
                },
                response_body=bytes(response.content),
                completed_at=timezone.now(),
            )
            return response
    except _NotKept as not_kept:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return not_kept.response
    except BaseException:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        raise


def idempotency_records_purge(*, now=None) -> int:
    """Delete the records past their time to live; returns how many went."""
    now = now or timezone.now()
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lte=now - _ttl()).delete()
    return deleted


class _NotKept(Exception):
    """A server error: roll the handler back and forget the key, so a retry runs again."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__()
        self.response = response
