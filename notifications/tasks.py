"""Celery entry points for notifications: thin, idempotent, ids as arguments."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from . import services


@shared_task(name="notifications.send_email_task")
def send_email_task(notification_id: int) -> bool:
    # A failure leaves emailed_at empty; the sweeper re-dispatches it, so no retry countdown.
    return services.notification_email_send(notification_id=notification_id)


@shared_task(name="notifications.email_sweep_task")
def email_sweep_task() -> int:
    """Re-dispatch immediate e-mails whose task was lost (broker down) or failed."""
    ids = services.notification_email_pending_ids(
        older_than=timedelta(minutes=settings.NOTIFICATIONS_EMAIL_RETRY_AFTER_MINUTES)
    )
    for notification_id in ids:
        send_email_task.delay(notification_id)
    return len(ids)


@shared_task(name="notifications.send_digest_task")
def send_digest_task(user_id: int) -> int:
    return services.notification_digest_send(user_id=user_id)


@shared_task(name="notifications.daily_digest_task")
def daily_digest_task() -> int:
    """Fan out one digest task per user with digest notifications waiting (run daily by beat)."""
    user_ids = services.notification_digest_recipient_ids()
    for user_id in user_ids:
        send_digest_task.delay(user_id)
    return len(user_ids)
