"""Every write about webhooks: endpoints, publishing events, sending and redelivering.

Publishing creates one delivery per subscribed, enabled endpoint inside the caller's
transaction and enqueues its sending after commit. Sending claims the delivery under a row
lock (so two copies of the task send once), calls the endpoint outside any transaction, then
records the outcome: success, or a retry due after an exponential backoff that the beat scan
picks up. An endpoint that keeps failing is disabled and its organization's owners and admins
are told.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import urllib3
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Organization, User
from accounts.services import audit_record
from portal.errors import ConflictError, DomainError

from . import signing, transport
from .events import EVENT_TYPES
from .models import WebhookDelivery, WebhookEndpoint
from .selectors import webhook_endpoints_listening, webhook_managers

logger = logging.getLogger(__name__)

Status = WebhookDelivery.Status
MAX_BACKOFF = timedelta(hours=6)
USER_AGENT = "GPU-Capacity-Portal-Webhooks/1"


# --- Endpoints ---------------------------------------------------------------------------------
def _events_validate(events: list[str]) -> list[str]:
    chosen = sorted(set(events or []))
    if not chosen:
        raise DomainError("Choose at least one event.", field="events")
    unknown = [event for event in chosen if event not in EVENT_TYPES]
    if unknown:
        raise DomainError(f"Unknown event {unknown[0]!r}.", field="events")
    return chosen


@transaction.atomic
def webhook_endpoint_create(
    *,
    organization: Organization,
    actor: User,
    url: str,
    events: list[str],
    description: str = "",
    request: HttpRequest | None = None,
) -> WebhookEndpoint:
    """Register an endpoint. Its secret is on the returned object: show it now, only now."""
    url = transport.url_validate(url.strip())
    endpoint = WebhookEndpoint.all_objects.create(
        organization=organization,
        url=url,
        description=description.strip(),
        events=_events_validate(events),
        secret=signing.secret_generate(),
        created_by=actor if actor.is_authenticated else None,
    )
    audit_record(
        organization=organization,
        actor=actor,
        action="webhook.created",
        target=endpoint,
        changes={"url": endpoint.url, "events": endpoint.events},
        request=request,
    )
    return endpoint


def _endpoint_lock(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    return WebhookEndpoint.all_objects.select_for_update().get(pk=endpoint.pk)


@transaction.atomic
def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    actor: User,
    url: str | None = None,
    description: str | None = None,
    events: list[str] | None = None,
    enabled: bool | None = None,
    request: HttpRequest | None = None,
) -> WebhookEndpoint:
    """Change an endpoint. Enabling a disabled one clears its failure streak."""
    endpoint = _endpoint_lock(endpoint)
    changes: dict[str, Any] = {}
    if url is not None and url.strip() != endpoint.url:
        endpoint.url = transport.url_validate(url.strip())
        changes["url"] = endpoint.url
    if description is not None and description.strip() != endpoint.description:
        endpoint.description = description.strip()
        changes["description"] = endpoint.description
    if events is not None:
        chosen = _events_validate(events)
        if chosen != endpoint.events:
            endpoint.events = chosen
            changes["events"] = chosen
    if enabled is not None and enabled != endpoint.enabled:
        endpoint.enabled = enabled
        changes["enabled"] = enabled
        if enabled:
            endpoint.disabled_reason, endpoint.disabled_at = "", None
            endpoint.failure_streak, endpoint.failing_since = 0, None
        else:
            endpoint.disabled_reason = f"Disabled by {actor.email}."
            endpoint.disabled_at = timezone.now()
    if changes:
        endpoint.save()
        audit_record(
            organization=endpoint.organization,
            actor=actor,
            action="webhook.updated",
            target=endpoint,
            changes=changes,
            request=request,
        )
    return endpoint


@transaction.atomic
def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, actor: User, request: HttpRequest | None = None
) -> WebhookEndpoint:
    """A new secret signs every delivery from now on; the old one stops working at once."""
    endpoint = _endpoint_lock(endpoint)
    endpoint.secret = signing.secret_generate()
    endpoint.secret_rotated_at = timezone.now()
    endpoint.save(update_fields=["secret", "secret_rotated_at"])
    audit_record(
        organization=endpoint.organization,
        actor=actor,
        action="webhook.secret_rotated",
        target=endpoint,
        request=request,
    )
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(
    *, endpoint: WebhookEndpoint, actor: User, request: HttpRequest | None = None
) -> None:
    """Delete an endpoint and its delivery log."""
    endpoint = _endpoint_lock(endpoint)
    audit_record(
        organization=endpoint.organization,
        actor=actor,
        action="webhook.deleted",
        target=endpoint,
        changes={"url": endpoint.url},
        request=request,
    )
    endpoint.delete()


# --- Publishing --------------------------------------------------------------------------------
def _enqueue(delivery_id: int) -> None:
    from .tasks import deliver_task

    transaction.on_commit(lambda: deliver_task.delay(delivery_id), robust=True)


def webhook_event_publish(
    *,
    organization: Organization,
    event_type: str,
    data: dict[str, Any] | Callable[[], dict[str, Any]],
    event_id: str,
) -> list[WebhookDelivery]:
    """Queue ``event_type`` for every enabled endpoint of ``organization`` subscribed to it.

    Runs in the caller's transaction: the deliveries commit (or roll back) with the change that
    raised the event, and are sent after commit. Publishing the same ``event_id`` again creates
    nothing more (one delivery per endpoint and event). ``data`` may be a function: it is
    called only when some endpoint listens, so an event nobody wants costs one query.
    Returns the deliveries created.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"Unknown webhook event type {event_type!r}")
    if not event_id:
        raise ValueError("A webhook event needs an id.")
    endpoints = webhook_endpoints_listening(organization=organization, event_type=event_type)
    if not endpoints:
        return []
    now = timezone.now()
    if callable(data):
        data = data()
    payload = {
        "id": event_id,
        "type": event_type,
        "created_at": now.isoformat().replace("+00:00", "Z"),
        "organization": organization.slug,
        "data": json.loads(json.dumps(data, cls=DjangoJSONEncoder)),
    }
    created: list[WebhookDelivery] = []
    with transaction.atomic():
        for endpoint in endpoints:
            delivery, was_created = WebhookDelivery.all_objects.get_or_create(
                endpoint=endpoint,
                event_id=event_id[:200],
                defaults={
                    "organization": organization,
                    "event_type": event_type,
                    "payload": payload,
                    "next_attempt_at": now,
                    "created_at": now,
                },
            )
            if was_created:
                created.append(delivery)
                _enqueue(delivery.pk)
    return created


# --- Sending -----------------------------------------------------------------------------------
def webhook_body(delivery: WebhookDelivery) -> bytes:
    """The exact bytes sent (and signed) for a delivery."""
    return json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()


def retry_delay(attempts_in_run: int) -> timedelta:
    """Wait before the next attempt after ``attempts_in_run`` failed ones: base, 2x, 4x..."""
    base = timedelta(seconds=settings.WEBHOOK_RETRY_BASE_SECONDS)
    return min(base * 2 ** max(attempts_in_run - 1, 0), MAX_BACKOFF)


def _delivery_lock(delivery_id: int) -> WebhookDelivery | None:
    return (
        WebhookDelivery.all_objects.select_for_update(of=("self",))
        .select_related("endpoint", "organization")
        .filter(pk=delivery_id)
        .first()
    )


def webhook_delivery_attempt(*, delivery_id: int) -> str:
    """Send one due delivery once. Returns what happened: ``succeeded``, ``retrying``,
    ``failed``, or why nothing was sent (``gone``, ``done``, ``not_due``, ``disabled``)."""
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    with transaction.atomic():
        delivery = _delivery_lock(delivery_id)
        if delivery is None:
            return "gone"
        if not delivery.is_open:
            return "done"
        now = timezone.now()
        if delivery.next_attempt_at is None or delivery.next_attempt_at > now:
            return "not_due"
        endpoint = delivery.endpoint
        if not endpoint.enabled:
            delivery.status, delivery.next_attempt_at = Status.FAILED, None
            delivery.last_error = "Not sent: the endpoint is disabled."
            delivery.save(update_fields=["status", "next_attempt_at", "last_error"])
            return "disabled"
        # The claim: a second copy of this task finds the attempt not due until the lease ends;
        # if this worker dies mid-send, the beat scan tries again after it.
        delivery.attempt_count += 1
        delivery.last_attempt_at = now
        delivery.next_attempt_at = now + timedelta(seconds=timeout + 60)
        delivery.save(update_fields=["attempt_count", "last_attempt_at", "next_attempt_at"])
        attempt, url, secret = delivery.attempt_count, endpoint.url, endpoint.secret
        body = webhook_body(delivery)

    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.SIGNATURE_HEADER: signing.signature_header(
            secret=secret, timestamp=timestamp, body=body
        ),
        signing.EVENT_ID_HEADER: delivery.event_id,
        signing.EVENT_TYPE_HEADER: delivery.event_type,
    }
    sent: transport.Sent | None = None
    error = ""
    try:
        sent = transport.post(url, body=body, headers=headers, timeout=timeout)
    except transport.UnsafeDestination as exc:
        error = f"Refused: {exc}"
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        error = f"Connection failed: {type(exc).__name__}: {exc}"
    if sent is not None and not 200 <= sent.status < 300:
        error = f"HTTP {sent.status}"
    return _attempt_record(delivery_id=delivery_id, attempt=attempt, sent=sent, error=error)


@transaction.atomic
def _attempt_record(
    *, delivery_id: int, attempt: int, sent: transport.Sent | None, error: str
) -> str:
    # Endpoint first, then delivery: disabling an endpoint fails its other open deliveries
    # while holding the endpoint's lock, so every recorder must queue on the endpoint first.
    endpoint_id = (
        WebhookDelivery.all_objects.filter(pk=delivery_id).values_list("endpoint_id", flat=True)
    ).first()
    if endpoint_id is None:
        return "gone"
    endpoint = WebhookEndpoint.all_objects.select_for_update().filter(pk=endpoint_id).first()
    delivery = _delivery_lock(delivery_id) if endpoint is not None else None
    if delivery is None:
        return "gone"
    if delivery.attempt_count != attempt or not delivery.is_open:
        return "superseded"
    delivery.endpoint = endpoint
    now = timezone.now()
    delivery.last_response_status = sent.status if sent is not None else None
    delivery.latency_ms = sent.latency_ms if sent is not None else None
    delivery.last_error = error[:500]
    if not error:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
            Status.SUCCEEDED,
            now,
            None,
        )
        endpoint.failure_streak, endpoint.failing_since = 0, None
    else:
        attempts_in_run = delivery.attempt_count - delivery.attempts_before_redelivery
        if attempts_in_run >= settings.WEBHOOK_MAX_ATTEMPTS:
            delivery.status, delivery.next_attempt_at = Status.FAILED, None
        else:
            delivery.status = Status.RETRYING
            delivery.next_attempt_at = now + retry_delay(attempts_in_run)
        endpoint.failure_streak += 1
        endpoint.failing_since = endpoint.failing_since or delivery.last_attempt_at or now
    delivery.save()
    endpoint.save(update_fields=["failure_streak", "failing_since"])
    logger.info(
        "webhook delivery %s (%s to endpoint %s): attempt %s, %s, status %s, %s ms%s",
        delivery.pk,
        delivery.event_type,
        endpoint.pk,
        delivery.attempt_count,
        delivery.status,
        delivery.last_response_status,
        delivery.latency_ms,
        f", {error}" if error else "",
    )
    if error and _keeps_failing(endpoint, now):
        _endpoint_disable(endpoint, now=now, last_error=error)
    return delivery.status


def _keeps_failing(endpoint: WebhookEndpoint, now: datetime) -> bool:
    return (
        endpoint.enabled
        and endpoint.failure_streak >= settings.WEBHOOK_DISABLE_AFTER_FAILURES
        and endpoint.failing_since is not None
        and now - endpoint.failing_since >= timedelta(hours=settings.WEBHOOK_DISABLE_AFTER_HOURS)
    )


def _endpoint_disable(endpoint: WebhookEndpoint, *, now: datetime, last_error: str) -> None:
    from notifications.services import notification_publish

    organization = endpoint.organization
    endpoint.enabled = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = (
        f"Disabled after {endpoint.failure_streak} failed deliveries in a row since "
        f"{endpoint.failing_since:%Y-%m-%d %H:%M} UTC (last: {last_error})"
    )[:300]
    endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason"])
    WebhookDelivery.objects.for_organization(organization).filter(
        endpoint=endpoint, status__in=[Status.PENDING, Status.RETRYING]
    ).update(
        status=Status.FAILED,
        next_attempt_at=None,
        last_error="Not sent: the endpoint was disabled.",
    )
    audit_record(
        organization=organization,
        actor=None,
        action="webhook.disabled",
        target=endpoint,
        changes={"reason": endpoint.disabled_reason, "failure_streak": endpoint.failure_streak},
    )
    notification_publish(
        event="webhook.disabled",
        organization=organization,
        recipients=webhook_managers(organization=organization),
        title=f"Webhook to {endpoint.url} was disabled"[:200],
        body=(
            f"{endpoint.disabled_reason}. No events are sent to it until you enable it again; "
            "you can redeliver the events it missed from its delivery log."
        ),
        url=f"/o/{organization.slug}/webhooks/{endpoint.pk}/",
        dedupe_key=f"webhook:{endpoint.pk}:disabled:{now:%Y%m%d%H%M%S%f}",
    )
    logger.warning("webhook endpoint %s disabled: %s", endpoint.pk, endpoint.disabled_reason)


@transaction.atomic
def webhook_delivery_redeliver(
    *, delivery: WebhookDelivery, actor: User, request: HttpRequest | None = None
) -> WebhookDelivery:
    """Send a delivery again now (same event id and body, freshly signed), with a full
    schedule of retries of its own."""
    delivery = _delivery_lock(delivery.pk)
    if not delivery.endpoint.enabled:
        raise ConflictError(
            "The endpoint is disabled: enable it before redelivering.", field="endpoint"
        )
    delivery.status = Status.PENDING
    delivery.next_attempt_at = timezone.now()
    delivery.attempts_before_redelivery = delivery.attempt_count
    delivery.save(update_fields=["status", "next_attempt_at", "attempts_before_redelivery"])
    audit_record(
        organization=delivery.organization,
        actor=actor,
        action="webhook.redelivered",
        target=delivery.endpoint,
        changes={"delivery": delivery.pk, "event_id": delivery.event_id},
        request=request,
    )
    _enqueue(delivery.pk)
    return delivery
