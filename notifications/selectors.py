"""Reads about notifications: always the signed-in user's own."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Organization, User

from .events import EventGroup
from .models import DEFAULT_DELIVERY, Notification, NotificationPreference


def notification_list(
    *, user: User, organization: Organization | None = None, unread_only: bool = False
) -> QuerySet[Notification]:
    """The user's notifications, newest first; only those about ``organization`` if given."""
    qs = Notification.objects.filter(recipient=user).select_related("organization")
    if organization is not None:
        qs = qs.filter(organization=organization)
    if unread_only:
        qs = qs.filter(read_at__isnull=True)
    return qs.order_by("-created_at", "-id")


def notification_unread_count(*, user: User) -> int:
    if not user.is_authenticated:
        return 0
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def notification_preferences_get(*, user: User) -> dict[str, str]:
    """Delivery per event group for one user, defaults filled in."""
    chosen = dict(NotificationPreference.objects.filter(user=user).values_list("group", "delivery"))
    return {group: chosen.get(group, DEFAULT_DELIVERY[group]) for group in EventGroup.values}
