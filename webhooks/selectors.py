"""Reads about webhooks: an organization's endpoints, their delivery log, what is due."""

from __future__ import annotations

import functools
from datetime import datetime

from django.db import connection
from django.db.models import Max, QuerySet
from django.utils import timezone

from accounts.models import Membership, Organization, Role, User
from portal.prepared import prepared_cursor
from portal.rows import Columns

from .models import WebhookDelivery, WebhookEndpoint


def webhook_endpoint_list(*, organization: Organization) -> QuerySet[WebhookEndpoint]:
    return (
        WebhookEndpoint.objects.for_organization(organization)
        .annotate(last_delivery_at=Max("deliveries__created_at"))
        .order_by("-created_at", "-id")
    )


def webhook_endpoint_get(*, organization: Organization, pk: int) -> WebhookEndpoint | None:
    return WebhookEndpoint.objects.for_organization(organization).filter(pk=pk).first()


def webhook_delivery_list(
    *, organization: Organization, endpoint: WebhookEndpoint | None = None
) -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.for_organization(organization).select_related("endpoint")
    if endpoint is not None:
        deliveries = deliveries.filter(endpoint=endpoint)
    return deliveries.order_by("-created_at", "-id")


def webhook_delivery_get(*, organization: Organization, pk: int) -> WebhookDelivery | None:
    return webhook_delivery_list(organization=organization).filter(pk=pk).first()


def webhook_delivery_due_ids(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Deliveries whose next attempt is due, oldest first (the beat scan sends these)."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.unscoped_for_staff()
        .filter(
            status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.RETRYING],
            next_attempt_at__lte=now,
            endpoint__enabled=True,
        )
        .order_by("next_attempt_at", "id")
        .values_list("id", flat=True)[:limit]
    )


def webhook_managers(*, organization: Organization) -> list[User]:
    """Who looks after an organization's webhooks: its active owners and admins."""
    return [
        membership.user
        for membership in Membership.objects.for_organization(organization)
        .filter(role__in=[Role.OWNER, Role.ADMIN], user__is_active=True)
        .select_related("user")
        .order_by("user_id")
    ]


@functools.cache
def _listening_statement() -> tuple[str, Columns]:
    columns = Columns(WebhookEndpoint, "e")
    quote = connection.ops.quote_name
    sql = (
        f"SELECT {columns.sql} FROM {quote(WebhookEndpoint._meta.db_table)} e "  # noqa: S608 (names from the models)
        "WHERE e.organization_id = %s AND e.enabled AND e.events @> ARRAY[%s]::varchar[] "
        "ORDER BY e.id"
    )
    return sql, columns


def webhook_endpoints_listening(
    *, organization: Organization, event_type: str
) -> list[WebhookEndpoint]:
    """The organization's enabled endpoints subscribed to ``event_type``, by id. Every request
    and reservation move asks, most often to learn there are none: the statement is written
    once per process rather than compiled by the ORM each time, and prepared once per
    connection rather than planned by PostgreSQL each time."""
    sql, columns = _listening_statement()
    with prepared_cursor() as cursor:
        cursor.execute(sql, [organization.pk, event_type])
        return [columns.load(row) for row in cursor.fetchall()]
