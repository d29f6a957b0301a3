"""Celery entry points for webhooks: thin, idempotent, ids as arguments.

- ``webhooks.deliver_task``: one attempt of one delivery (enqueued after the publishing
  transaction commits, and by the scan). A copy that finds the delivery done or not due does
  nothing.
- ``webhooks.deliveries_due_scan_task`` (every minute, django-celery-beat): sends every
  delivery whose next attempt is due, which is how retries happen (no ETA tasks).
"""

from __future__ import annotations

from celery import shared_task

from . import selectors, services


@shared_task(name="webhooks.deliver_task")
def deliver_task(delivery_id: int) -> str:
    return services.webhook_delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.deliveries_due_scan_task")
def deliveries_due_scan_task() -> int:
    ids = selectors.webhook_delivery_due_ids()
    for delivery_id in ids:
        deliver_task.delay(delivery_id)
    return len(ids)
