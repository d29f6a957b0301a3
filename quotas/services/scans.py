"""What the beat scans find due. Each scan reads ids, then handles each id in its own
transaction through the service that locks the row and re-checks it, so two scans running at
once (or a scan and a person) have one effect. Nothing is scheduled ahead with ETAs: a scan
after downtime catches up with everything that fell due meanwhile."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from quotas import notify
from quotas.models import CapacityPool, CapacityRequest, Reservation
from quotas.workflow import (
    REQUEST_AWAITING_DECISION,
    REQUEST_IN_CHECKS,
    REQUEST_OFFER_STATES,
    REQUEST_UNDECIDED,
    RequestState,
    ReservationState,
)

from ._base import request_lock
from .offers import capacity_request_expire
from .reservations import reservation_activate, reservation_complete
from .waitlist import waitlist_offer_for_pool

BATCH = 500


def reservations_due_scan(*, now: datetime | None = None) -> dict[str, int]:
    """Activate reservations whose start has come and complete those whose end has come."""
    now = now or timezone.now()
    qs = Reservation.objects.unscoped_for_staff()
    to_start = qs.filter(state=ReservationState.SCHEDULED, starts_at__lte=now).order_by(
        "starts_at", "pk"
    )
    activated = sum(
        reservation_activate(reservation_id=pk, now=now)
        for pk in to_start.values_list("pk", flat=True)[:BATCH]
    )
    to_end = qs.filter(state=ReservationState.ACTIVE, ends_at__lte=now).order_by("ends_at", "pk")
    completed = sum(
        reservation_complete(reservation_id=pk, now=now)
        for pk in to_end.values_list("pk", flat=True)[:BATCH]
    )
    return {"activated": activated, "completed": completed}


def requests_expiry_scan(*, now: datetime | None = None) -> int:
    """Expire requests undecided at their start, and offers that lapsed."""
    now = now or timezone.now()
    ids = (
        CapacityRequest.objects.unscoped_for_staff()
        .filter(
            Q(state__in=REQUEST_UNDECIDED, starts_at__lte=now)
            | Q(state__in=REQUEST_OFFER_STATES, offer_expires_at__lte=now)
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:BATCH]
    )
    return sum(capacity_request_expire(request_id=pk, now=now) for pk in list(ids))


def requests_due_scan(*, now: datetime | None = None) -> dict[str, int]:
    """Remind the approver at this step shortly before a decision is due; escalate to the
    capacity planners once it is overdue. Each at most once per due time."""
    now = now or timezone.now()
    lead = timedelta(hours=settings.QUOTAS_REMINDER_LEAD_HOURS)
    qs = CapacityRequest.objects.unscoped_for_staff().filter(
        state__in=REQUEST_AWAITING_DECISION, decision_due_at__isnull=False
    )
    reminded = escalated = 0
    for pk in list(
        qs.filter(reminder_sent_at__isnull=True, decision_due_at__lte=now + lead)
        .filter(decision_due_at__gt=now)
        .values_list("pk", flat=True)[:BATCH]
    ):
        reminded += _due_step(pk, now=now, escalate=False)
    for pk in list(
        qs.filter(escalated_at__isnull=True, decision_due_at__lte=now).values_list("pk", flat=True)[
            :BATCH
        ]
    ):
        escalated += _due_step(pk, now=now, escalate=True)
    return {"reminded": reminded, "escalated": escalated}


@transaction.atomic
def _due_step(request_id: int, *, now: datetime, escalate: bool) -> bool:
    from accounts.services import audit_record

    capacity_request = request_lock(request_id)
    if capacity_request.state not in REQUEST_AWAITING_DECISION:
        return False
    due = capacity_request.decision_due_at
    if due is None:
        return False
    if escalate:
        if capacity_request.escalated_at is not None or due > now:
            return False
        capacity_request.escalated_at = now
        capacity_request.reminder_sent_at = capacity_request.reminder_sent_at or now
    else:
        lead = timedelta(hours=settings.QUOTAS_REMINDER_LEAD_HOURS)
        if capacity_request.reminder_sent_at is not None or due > now + lead:
            return False
        capacity_request.reminder_sent_at = now
    capacity_request.save(update_fields=["escalated_at", "reminder_sent_at"])
    audit_record(
        organization=capacity_request.organization,
        actor=None,
        action="capacity_request.escalated" if escalate else "capacity_request.reminded",
        target=capacity_request,
        changes={"decision_due_at": due.isoformat()},
    )
    notify.request_due(capacity_request, escalate=escalate)
    return True


def requests_stuck_ids(*, now: datetime | None = None) -> list[tuple[int, int]]:
    """(request id, organization id) of requests left in submitted/checking longer than
    ``QUOTAS_STUCK_AFTER_MINUTES``: their checks task was lost (broker outage, killed worker)."""
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.QUOTAS_STUCK_AFTER_MINUTES)
    return list(
        CapacityRequest.objects.unscoped_for_staff()
        .filter(state__in=REQUEST_IN_CHECKS, state_changed_at__lte=cutoff)
        .order_by("state_changed_at", "pk")
        .values_list("pk", "organization_id")[:BATCH]
    )


def waitlist_scan(*, now: datetime | None = None) -> list[int]:
    """Offer freed capacity in every pool some waitlisted request accepts."""
    now = now or timezone.now()
    waiting = CapacityRequest.objects.unscoped_for_staff().filter(
        state=RequestState.WAITLISTED, starts_at__gt=now
    )
    if not waiting.exists():
        return []
    pool_ids = (
        CapacityPool.objects.filter(active=True)
        .filter(Q(sku__in=waiting.values("sku")) | Q(sku__in=waiting.values("alternative_skus")))
        .filter(
            Q(region__in=waiting.values("region"))
            | Q(region__in=waiting.values("alternative_regions"))
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    offered: list[int] = []
    for pool_id in list(pool_ids):
        offered += waitlist_offer_for_pool(pool_id=pool_id, now=now)
    return offered
