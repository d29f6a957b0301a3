"""Celery entry points of the accounts app (thin: one service call each)."""

from celery import shared_task

from portal.api.idempotency import idempotency_records_purge


@shared_task(name="accounts.idempotency_records_purge_task")
def idempotency_records_purge_task() -> int:
    """Forget Idempotency-Key records older than IDEMPOTENCY_TTL_HOURS (hourly, from beat)."""
    return idempotency_records_purge()
