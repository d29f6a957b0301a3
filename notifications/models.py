"""In-app notifications and each user's choice of how to be told.

Notifications belong to a person, not to a tenant: a provider account manager receives them
about many organizations, so they are always read through ``recipient`` (the notification
centre shows only the signed-in user's rows) rather than through tenant scoping.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from .events import EventGroup


class Notification(models.Model):
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    organization = models.ForeignKey(
        "accounts.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    event = models.CharField(max_length=80)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True)
    dedupe_key = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    # The recipient's choice for this event's group when it was published: what the e-mail
    # task, the sweeper and the digest look at.
    delivery = models.CharField(max_length=16, default="none")
    # Set once the notification went out by e-mail, alone or in a digest.
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["recipient", "dedupe_key"], name="notification_recipient_dedupe_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["recipient", "-created_at"], name="notification_recipient_time"),
            models.Index(
                fields=["recipient"],
                condition=models.Q(read_at__isnull=True),
                name="notification_unread",
            ),
            models.Index(
                fields=["delivery", "created_at"],
                condition=models.Q(emailed_at__isnull=True) & ~models.Q(delivery="none"),
                name="notification_email_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} for {self.recipient_id}: {self.title}"

    @property
    def is_read(self) -> bool:
        return self.read_at is not None


class Delivery(models.TextChoices):
    IMMEDIATE = "immediate", "E-mail at once"
    DIGEST = "digest", "Daily digest e-mail"
    NONE = "none", "In the portal only"


# What a user gets before choosing anything: decisions, reminders and alerts at once, the rest
# once a day, so nobody is flooded but nothing that waits on them is late. Contract and quota
# alerts fire once per threshold crossing, so sending them at once stays quiet.
DEFAULT_DELIVERY: dict[str, str] = {
    EventGroup.REQUESTS: Delivery.IMMEDIATE,
    EventGroup.RESERVATIONS: Delivery.DIGEST,
    EventGroup.APPROVALS: Delivery.IMMEDIATE,
    EventGroup.REMINDERS: Delivery.IMMEDIATE,
    EventGroup.ACCOUNT: Delivery.IMMEDIATE,
    EventGroup.CONTRACTS: Delivery.IMMEDIATE,
    EventGroup.QUOTAS: Delivery.IMMEDIATE,
    EventGroup.OTHER: Delivery.DIGEST,
}


class NotificationPreference(models.Model):
    """A user's delivery for one event group; absent means the group's default."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    group = models.CharField(max_length=32, choices=EventGroup.choices)
    delivery = models.CharField(max_length=16, choices=Delivery.choices)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "group"], name="notification_pref_unique"),
            models.CheckConstraint(
                condition=models.Q(delivery__in=[d.value for d in Delivery]),
                name="notification_pref_delivery_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.group}: {self.delivery}"
