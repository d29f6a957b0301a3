"""Offering freed capacity to the waitlist.

When capacity frees up in a pool (a cancellation, an early release, a lapsed offer, new
capacity), the waitlisted requests that accept that pool are considered in order: extensions
of running reservations first, then by submission time. Each one that fits now gets an offer
holding its capacity for the offer hold time; an organization that opted in has it booked at
once. Called by a task on ``capacity_freed`` and by a periodic scan, so a lost signal delays an
offer and loses none.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import BooleanField, Case, Q, Value, When
from django.utils import timezone

from accounts.models import Organization
from portal.errors import ConflictError
from quotas import notify
from quotas.models import CapacityPool, CapacityRequest
from quotas.workflow import RequestState

from ._base import request_lock, request_move

S = RequestState


def waitlist_candidates(*, pool: CapacityPool, now: datetime) -> list[int]:
    """Ids of waitlisted requests that accept this pool and have not started, in offer order.
    A suspended organization's requests stay waitlisted but are passed over: it may book
    nothing (and could not even answer an offer), so its place in the queue holds no GPUs."""
    return list(
        CapacityRequest.objects.unscoped_for_staff()
        .filter(state=S.WAITLISTED, starts_at__gt=now)
        .exclude(organization__status=Organization.Status.SUSPENDED)
        .filter(Q(sku=pool.sku_id) | Q(alternative_skus=pool.sku_id))
        .filter(Q(region=pool.region_id) | Q(alternative_regions=pool.region_id))
        .filter(Q(extends_reservation__isnull=True) | Q(extends_reservation__pool=pool.pk))
        .annotate(
            is_extension=Case(
                When(extends_reservation__isnull=False, then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            )
        )
        .order_by("-is_extension", "submitted_at", "pk")
        .values_list("pk", flat=True)
        .distinct()
    )


def waitlist_offer_for_pool(*, pool_id: int, now: datetime | None = None) -> list[int]:
    """Offer the pool's free capacity to fitting waitlisted requests; returns the ids offered.
    Each offer is its own transaction (request lock, then the pool lock in ``hold_place``)."""
    from quotas.selectors.availability import pool_fits

    now = now or timezone.now()
    pool = CapacityPool.objects.select_related("sku", "region").filter(pk=pool_id).first()
    if pool is None or not (pool.active and pool.sku.active and pool.region.active):
        return []
    offered = []
    for request_id in waitlist_candidates(pool=pool, now=now):
        capacity_request = CapacityRequest.all_objects.get(pk=request_id)
        if not pool_fits(
            pool=pool,
            gpu_count=capacity_request.gpu_count,
            starts_at=capacity_request.starts_at,
            ends_at=capacity_request.ends_at,
        ):
            continue
        if waitlist_offer(request_id=request_id, pool=pool, now=now):
            offered.append(request_id)
    return offered


@transaction.atomic
def waitlist_offer(*, request_id: int, pool: CapacityPool, now: datetime | None = None) -> bool:
    """Offer one waitlisted request its capacity in ``pool`` (booked at once when its
    organization auto-accepts). False when it is no longer waitlisted or no longer fits."""
    from .decisions import OFFER_FIELDS, offer_place
    from .offers import offer_accept_locked
    from .requests import approval_policy_for

    now = now or timezone.now()
    capacity_request = request_lock(request_id)
    if capacity_request.state != S.WAITLISTED or capacity_request.starts_at <= now:
        return False
    if capacity_request.organization.is_suspended:
        return False  # suspended since the candidates were listed
    try:
        with transaction.atomic():
            offer_place(
                capacity_request,
                kind=CapacityRequest.OfferKind.WAITLIST,
                pool=pool,
                gpu_count=capacity_request.gpu_count,
                starts_at=capacity_request.starts_at,
                ends_at=capacity_request.ends_at,
                note=f"Capacity freed up in {pool}.",
                now=now,
            )
    except ConflictError:
        capacity_request.refresh_from_db()
        return False
    request_move(
        capacity_request,
        to_state=S.OFFERED,
        actor=None,
        reason=f"Capacity freed up in {pool}.",
        update_fields=OFFER_FIELDS,
    )
    if approval_policy_for(capacity_request.organization).auto_accept_waitlist_offers:
        offer_accept_locked(capacity_request, actor=None)
    notify.request_moved(capacity_request, actor=None)
    return True
