"""Webhook endpoints an organization registers, and every delivery of an event to one.

Both are tenant-owned. A delivery is the unit of work: one event for one endpoint, created in
the transaction of the change that raised the event, sent (and retried) by Celery, its last
attempt logged on the row.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import TenantManager


class WebhookEndpoint(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=500)  # checked by webhooks.transport.url_validate
    description = models.CharField(max_length=200, blank=True)
    events = ArrayField(models.CharField(max_length=64), default=list)
    # Signs every delivery; shown to people only when it is created or rotated.
    secret = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Consecutive failed attempts, and when the first of them failed (both reset by a success).
    failure_streak = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()
    all_objects = models.Manager()  # noqa: DJ012 (a manager, not a field)

    class Meta:
        default_manager_name = "all_objects"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "enabled"], name="webhook_endpoint_org")]

    def __str__(self) -> str:
        return f"Webhook {self.pk} to {self.url}"


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=64)
    # The JSON body sent, exactly: {"id", "type", "created_at", "organization", "data"}.
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    # attempt_count when a person last asked for a redelivery: retries count from there.
    attempts_before_redelivery = models.PositiveIntegerField(default=0)
    last_response_status = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # When the next attempt is due (the beat scan sends it); empty once it succeeded or gave up.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()
    all_objects = models.Manager()  # noqa: DJ012 (a manager, not a field)

    class Meta:
        default_manager_name = "all_objects"
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event_id"], name="webhook_delivery_event_once"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "retrying", "succeeded", "failed"]),
                name="webhook_delivery_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_log"),
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["pending", "retrying"]),
                name="webhook_delivery_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} to endpoint {self.endpoint_id}"

    @property
    def is_open(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.RETRYING)
