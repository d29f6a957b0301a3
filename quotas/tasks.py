"""Celery entry points of the request workflow: thin, idempotent, ids as arguments.

Tasks run with ``acks_late`` and ``reject_on_worker_lost`` (settings), so a message may be
delivered twice, even at the same time: every service they call locks the row, re-checks its
state and does nothing if the work is done. Periodic scans are scheduled by django-celery-beat
(``quotas/migrations/0003_beat_schedules.py``); nothing is scheduled with ETAs or countdowns.
"""

from __future__ import annotations

from celery import shared_task

from . import checks
from .services import scans, waitlist


@shared_task(name="quotas.run_checks_task")
def run_checks_task(request_id: int, organization_id: int | None = None) -> bool:
    """Run the automatic checks of a submitted request (organization id kept for tracing)."""
    return checks.capacity_request_run_checks(request_id=request_id)


@shared_task(name="quotas.waitlist_offer_task")
def waitlist_offer_task(pool_id: int) -> list[int]:
    """Offer capacity freed in one pool to its waitlist."""
    return waitlist.waitlist_offer_for_pool(pool_id=pool_id)


@shared_task(name="quotas.reservations_due_task")
def reservations_due_task() -> dict[str, int]:
    """Every minute: activate reservations at their start, complete them at their end."""
    return scans.reservations_due_scan()


@shared_task(name="quotas.requests_expiry_task")
def requests_expiry_task() -> int:
    """Every minute: expire requests undecided at their start and offers that lapsed."""
    return scans.requests_expiry_scan()


@shared_task(name="quotas.requests_due_task")
def requests_due_task() -> dict[str, int]:
    """Every five minutes: decision reminders and escalations."""
    return scans.requests_due_scan()


@shared_task(name="quotas.waitlist_scan_task")
def waitlist_scan_task() -> list[int]:
    """Every five minutes: offer freed capacity even if a capacity_freed signal was lost."""
    return scans.waitlist_scan()


@shared_task(name="quotas.requests_sweep_task")
def requests_sweep_task() -> int:
    """Every two minutes: re-dispatch the checks of requests stuck in submitted/checking."""
    stuck = scans.requests_stuck_ids()
    for request_id, organization_id in stuck:
        run_checks_task.delay(request_id, organization_id)
    return len(stuck)
