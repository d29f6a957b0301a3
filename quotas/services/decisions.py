"""Provider decisions on a request: approve (with the second approval above the thresholds),
reject, counter-offer, and the grant itself.

Capacity is held only through ``quotas.capacity`` (which locks the pool row), inside the same
transaction as the decision that needs it: approval and hold commit together or not at all."""

from __future__ import annotations

from copy import copy
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import User
from portal.errors import DomainError
from quotas import notify
from quotas.models import (
    CapacityHold,
    CapacityPool,
    CapacityRequest,
    GpuSku,
    OnDemandQuota,
    OnDemandQuotaChange,
    Region,
    RequestCheck,
    Reservation,
)
from quotas.workflow import (
    ReservationState,
    request_require_action,
)

from ._base import (
    candidate_pools,
    hours,
    request_lock,
    request_move,
    require_decider,
    require_second_approver,
    reservation_record_created,
)
from .requests import (
    Kind,
    S,
    capacity_request_validate,
    needs_second_approval,
    reason_required,
    request_value,
    window_quote,
)


# --- Provider decisions --------------------------------------------------------------------
def request_needs_decision(capacity_request: CapacityRequest) -> bool:
    """Whether a person on the provider side still owes this request a decision before it may
    be booked: it is above the second-approval thresholds (a capacity planner approves too), or
    the automatic checks flagged it with a warning about something other than capacity (contract
    cover, a soft policy limit), which is the account manager's to weigh. Not having capacity
    is no such warning: a waitlist offer answers it."""
    if needs_second_approval(capacity_request, value=request_value(capacity_request)):
        return True
    if not capacity_request.flagged:
        return False
    checks = RequestCheck.objects.for_organization(capacity_request.organization_id).filter(
        request=capacity_request
    )
    last_run = checks.aggregate(last=Max("run"))["last"]
    return (
        last_run is not None
        and checks.filter(run=last_run)
        .exclude(name="capacity")
        .exclude(outcome=RequestCheck.Outcome.PASS)
        .exists()
    )


def offer_needs_second_approval(capacity_request: CapacityRequest, *, pool: CapacityPool) -> bool:
    """Whether the offer on this request, on its own terms (GPU count, window, pool, and their
    value at the quote), is above the second-approval thresholds."""
    terms = copy(capacity_request)
    terms.gpu_count = capacity_request.offer_gpu_count
    value = window_quote(
        organization=capacity_request.organization,
        pool=pool,
        gpu_count=capacity_request.offer_gpu_count,
        starts_at=capacity_request.offer_starts_at,
        ends_at=capacity_request.offer_ends_at,
    ).total
    return needs_second_approval(terms, value=value)


def held_offer(capacity_request: CapacityRequest) -> CapacityHold | None:
    """The hold a request awaiting a decision keeps from an offer its tenant accepted (a
    waitlist offer, see ``offer_to_approvers``, or a counter-offer above the thresholds, see
    ``offer_to_planners``), if it still holds."""
    if not capacity_request.offer_hold_id or capacity_request.state not in (
        S.PENDING_APPROVAL,
        S.PENDING_SECOND_APPROVAL,
    ):
        return None
    hold = CapacityHold.all_objects.select_related("pool").get(pk=capacity_request.offer_hold_id)
    return hold if hold.released_at is None else None


def held_offer_release(capacity_request: CapacityRequest, *, actor: User | None) -> None:
    """Give back what a request awaiting a decision holds (rejected, withdrawn, expired or
    counter-offered): ``capacity_freed`` then offers it to the next waitlisted request."""
    from quotas.capacity import hold_release

    hold = held_offer(capacity_request)
    if hold is not None:
        hold_release(hold=hold, actor=actor)


def pending_approval_enter(
    capacity_request: CapacityRequest,
    *,
    actor: User | None,
    reason: str = "",
    update_fields: tuple[str, ...] = (),
) -> None:
    """Move a locked request to the account manager's queue with a decision due time."""
    now = timezone.now()
    due = now + hours("QUOTAS_DECISION_SLA_HOURS")
    if capacity_request.starts_at is not None:
        due = max(now, min(due, capacity_request.starts_at))
    capacity_request.decision_due_at = due
    capacity_request.reminder_sent_at = None
    capacity_request.escalated_at = None
    request_move(
        capacity_request,
        to_state=S.PENDING_APPROVAL,
        actor=actor,
        reason=reason,
        at=now,
        update_fields=(
            "decision_due_at",
            "reminder_sent_at",
            "escalated_at",
            *update_fields,
        ),
    )


def _pool_choice(capacity_request: CapacityRequest, pool: CapacityPool | None) -> CapacityPool:
    pools = candidate_pools(capacity_request)
    if pool is None:
        if capacity_request.pool_id and any(p.pk == capacity_request.pool_id for p in pools):
            return next(p for p in pools if p.pk == capacity_request.pool_id)
        if not pools:
            raise DomainError("No open pool matches this request any more.", field="pool")
        return pools[0]
    for candidate in pools:
        if candidate.pk == pool.pk:
            return candidate
    raise DomainError(
        "Choose the requested pool or one of the request's alternatives.", field="pool"
    )


def reservation_grant(
    capacity_request: CapacityRequest,
    *,
    actor: User | None,
    pool: CapacityPool,
    gpu_count: int,
    starts_at: datetime,
    ends_at: datetime,
    hold: CapacityHold | None = None,
    reason: str = "",
) -> Reservation:
    """Approve a locked reservation request: hold the capacity (under the pool lock, unless an
    offer's hold is being confirmed), freeze the quote, create the scheduled reservation.
    Runs inside the caller's transaction, so the approval and the hold commit together."""
    from quotas.capacity import hold_confirm_offer, hold_place

    if hold is None:
        hold = hold_place(
            pool=pool,
            organization=capacity_request.organization,
            gpu_count=gpu_count,
            starts_at=starts_at,
            ends_at=ends_at,
            kind=CapacityHold.Kind.RESERVATION,
            actor=actor,
        )
    else:
        hold = hold_confirm_offer(hold=hold, actor=actor)
    quote = window_quote(
        organization=capacity_request.organization,
        pool=pool,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
    )
    now = timezone.now()
    capacity_request.pool = pool
    capacity_request.decided_by = actor
    capacity_request.decided_at = now
    capacity_request.decision_reason = reason
    capacity_request.decision_due_at = None
    capacity_request.quote_currency = quote.currency
    capacity_request.quote_rate_per_gpu_hour = quote.rate_per_gpu_hour
    capacity_request.quote_gpu_hours = quote.gpu_hours
    capacity_request.quote_total = quote.total
    capacity_request.quote_source = quote.source
    request_move(
        capacity_request,
        to_state=S.APPROVED,
        actor=actor,
        reason=reason,
        at=now,
        changes={"pool": pool.pk, "gpu_count": gpu_count, "total": str(quote.total)},
        update_fields=(
            "pool",
            "decided_by",
            "decided_at",
            "decision_reason",
            "decision_due_at",
            "quote_currency",
            "quote_rate_per_gpu_hour",
            "quote_gpu_hours",
            "quote_total",
            "quote_source",
        ),
    )
    reservation = Reservation.all_objects.create(
        organization=capacity_request.organization,
        request=capacity_request,
        pool=pool,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
        hold=hold,
        state=ReservationState.SCHEDULED,
        currency=quote.currency,
        rate_per_gpu_hour=quote.rate_per_gpu_hour,
        gpu_hours=quote.gpu_hours,
        total=quote.total,
        price_source=quote.source,
        contract_id=getattr(quote, "contract_id", None),
        created_at=now,
    )
    reservation_record_created(reservation, actor=actor)
    return reservation


def quota_grant(
    capacity_request: CapacityRequest, *, actor: User | None, reason: str = ""
) -> OnDemandQuota:
    """Approve a locked on-demand quota request: raise (or set) the organization's limit."""
    organization = capacity_request.organization
    quota, _ = OnDemandQuota.all_objects.select_for_update().get_or_create(
        organization=organization,
        sku=capacity_request.sku,
        region=capacity_request.region,
    )
    old = quota.gpu_limit
    now = timezone.now()
    quota.gpu_limit = capacity_request.on_demand_limit
    quota.updated_at = now
    quota.save(update_fields=["gpu_limit", "updated_at"])
    OnDemandQuotaChange.all_objects.create(
        organization=organization,
        sku=capacity_request.sku,
        region=capacity_request.region,
        old_limit=old,
        new_limit=quota.gpu_limit,
        effective_at=now,
        request=capacity_request,
        actor=actor if actor is not None and actor.is_authenticated else None,
    )
    capacity_request.decided_by = actor
    capacity_request.decided_at = now
    capacity_request.decision_reason = reason
    capacity_request.decision_due_at = None
    request_move(
        capacity_request,
        to_state=S.APPROVED,
        actor=actor,
        reason=reason,
        at=now,
        changes={"on_demand_limit": {"from": old, "to": quota.gpu_limit}},
        update_fields=("decided_by", "decided_at", "decision_reason", "decision_due_at"),
    )
    return quota


def _held_pool(capacity_request: CapacityRequest, hold: CapacityHold, pool: CapacityPool | None):
    if pool is not None and pool.pk != hold.pool_id:
        raise DomainError(
            f"This request holds its capacity in {hold.pool}; approve it there or reject it.",
            field="pool",
        )
    return CapacityPool.objects.select_related("sku", "region").get(pk=hold.pool_id)


def request_grant(capacity_request, *, actor, pool=None, reason=""):
    hold = held_offer(capacity_request)
    if hold is not None:
        # The accepted offer's capacity has been held for this decision: book exactly
        # that hold (no new capacity check, which would count the hold against itself).
        return reservation_grant(
            capacity_request,
            actor=actor,
            pool=_held_pool(capacity_request, hold, pool),
            gpu_count=capacity_request.offer_gpu_count,
            starts_at=capacity_request.offer_starts_at,
            ends_at=capacity_request.offer_ends_at,
            hold=hold,
            reason=reason,
        )
    if capacity_request.is_reservation:
        chosen = _pool_choice(capacity_request, pool)
        return reservation_grant(
            capacity_request,
            actor=actor,
            pool=chosen,
            gpu_count=capacity_request.gpu_count,
            starts_at=capacity_request.starts_at,
            ends_at=capacity_request.ends_at,
            reason=reason,
        )
    return quota_grant(capacity_request, actor=actor, reason=reason)


@transaction.atomic
def capacity_request_approve(
    *,
    capacity_request: CapacityRequest,
    actor: User,
    pool: CapacityPool | None = None,
    reason: str = "",
) -> CapacityRequest:
    """Approve. From the account manager's queue a request above the second-approval threshold
    (GPUs or value) moves on to the capacity planners; otherwise, and at the second approval,
    the capacity is held and the reservation created in this same transaction (raising
    ``InsufficientCapacity`` and changing nothing when it no longer fits)."""
    capacity_request = request_lock(capacity_request.pk)
    organization = capacity_request.organization
    state = capacity_request.state
    reason = (reason or "").strip()
    request_require_action("approve", state)
    if state == S.PENDING_SECOND_APPROVAL:
        require_second_approver(actor, capacity_request)
        request_grant(capacity_request, actor=actor, pool=pool, reason=reason)
    else:
        require_decider(actor, organization)
        hold = held_offer(capacity_request)
        if hold is not None:
            chosen = _held_pool(capacity_request, hold, pool)
        elif capacity_request.is_reservation:
            chosen = _pool_choice(capacity_request, pool)
        else:
            chosen = None
        if chosen is not None:
            capacity_request.pool = chosen
        if needs_second_approval(capacity_request, value=request_value(capacity_request)):
            capacity_request.first_approved_by = actor
            capacity_request.first_approved_at = timezone.now()
            capacity_request.decision_due_at = timezone.now() + hours("QUOTAS_DECISION_SLA_HOURS")
            if capacity_request.starts_at is not None:
                capacity_request.decision_due_at = max(
                    timezone.now(),
                    min(capacity_request.decision_due_at, capacity_request.starts_at),
                )
            capacity_request.reminder_sent_at = None
            capacity_request.escalated_at = None
            request_move(
                capacity_request,
                to_state=S.PENDING_SECOND_APPROVAL,
                actor=actor,
                reason=reason,
                update_fields=(
                    "pool",
                    "first_approved_by",
                    "first_approved_at",
                    "decision_due_at",
                    "reminder_sent_at",
                    "escalated_at",
                ),
            )
        else:
            capacity_request.first_approved_by = actor
            capacity_request.first_approved_at = timezone.now()
            capacity_request.save(update_fields=["first_approved_by", "first_approved_at"])
            request_grant(capacity_request, actor=actor, pool=chosen, reason=reason)
    notify.request_moved(capacity_request, actor=actor, reason=reason)
    return capacity_request


@transaction.atomic
def capacity_request_reject(
    *, capacity_request: CapacityRequest, actor: User, reason: str
) -> CapacityRequest:
    """Reject with a reason (required: the requester reads it)."""
    capacity_request = request_lock(capacity_request.pk)
    if capacity_request.state == S.PENDING_SECOND_APPROVAL:
        require_second_approver(actor, capacity_request)
    else:
        require_decider(actor, capacity_request.organization)
    request_require_action("reject", capacity_request.state)
    reason = reason_required(reason)
    held_offer_release(capacity_request, actor=actor)
    capacity_request.decided_by = actor
    capacity_request.decided_at = timezone.now()
    capacity_request.decision_reason = reason
    capacity_request.decision_due_at = None
    request_move(
        capacity_request,
        to_state=S.REJECTED,
        actor=actor,
        reason=reason,
        update_fields=("decided_by", "decided_at", "decision_reason", "decision_due_at"),
    )
    notify.request_moved(capacity_request, actor=actor, reason=reason)
    return capacity_request


def offer_expiry(*, starts_at: datetime, now: datetime | None = None) -> datetime:
    """An offer holds its capacity for the offer hold time, and never past its own start."""
    now = now or timezone.now()
    return max(now + timedelta(minutes=1), min(now + hours("QUOTAS_OFFER_HOLD_HOURS"), starts_at))


def offer_place(
    capacity_request: CapacityRequest,
    *,
    kind: str,
    pool: CapacityPool,
    gpu_count: int,
    starts_at: datetime,
    ends_at: datetime,
    note: str = "",
    now: datetime | None = None,
    actor: User | None = None,
) -> CapacityHold:
    """Hold an offer's capacity (under the pool lock) and record the offer on the request."""
    from quotas.capacity import hold_place

    expires_at = offer_expiry(starts_at=starts_at, now=now)
    hold = hold_place(
        pool=pool,
        organization=capacity_request.organization,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
        kind=CapacityHold.Kind.OFFER,
        expires_at=expires_at,
        actor=actor,
    )
    capacity_request.offer_kind = kind
    capacity_request.offer_pool = pool
    capacity_request.offer_gpu_count = gpu_count
    capacity_request.offer_starts_at = starts_at
    capacity_request.offer_ends_at = ends_at
    capacity_request.offer_expires_at = expires_at
    capacity_request.offer_note = note
    capacity_request.offer_hold = hold
    return hold


OFFER_FIELDS = (
    "offer_kind",
    "offer_pool",
    "offer_gpu_count",
    "offer_starts_at",
    "offer_ends_at",
    "offer_expires_at",
    "offer_note",
    "offer_hold",
)


@transaction.atomic
def capacity_request_counter_offer(
    *,
    capacity_request: CapacityRequest,
    actor: User,
    gpu_count: int | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    region: Region | None = None,
    sku: GpuSku | None = None,
    note: str = "",
) -> CapacityRequest:
    """Offer something else (fewer GPUs, another window, region or SKU). The offer must fit:
    its capacity is held until the tenant answers or the offer lapses."""
    capacity_request = request_lock(capacity_request.pk)
    if capacity_request.state == S.PENDING_SECOND_APPROVAL:
        require_second_approver(actor, capacity_request)
    else:
        require_decider(actor, capacity_request.organization)
    request_require_action("counter_offer", capacity_request.state)
    if not capacity_request.is_reservation:
        raise DomainError(
            "On-demand quota requests are approved or rejected, not counter-offered.",
            field="kind",
        )
    sku = sku or capacity_request.sku
    region = region or capacity_request.region
    gpu_count = gpu_count if gpu_count is not None else capacity_request.gpu_count
    starts_at = starts_at or capacity_request.starts_at
    ends_at = ends_at or capacity_request.ends_at
    pool = capacity_request_validate(
        kind=Kind.RESERVATION,
        sku=sku,
        region=region,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
        lead_time=False,
    )
    if (pool.pk, gpu_count, starts_at, ends_at) == (
        _pool_choice(capacity_request, None).pk,
        capacity_request.gpu_count,
        capacity_request.starts_at,
        capacity_request.ends_at,
    ):
        raise DomainError("A counter-offer must change something; to accept, approve.")
    # What an accepted waitlist offer held for this decision goes back first, so the
    # counter-offer may use the same GPUs.
    held_offer_release(capacity_request, actor=actor)
    offer_place(
        capacity_request,
        kind=CapacityRequest.OfferKind.COUNTER,
        pool=pool,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
        note=note.strip(),
        actor=actor,
    )
    request_move(
        capacity_request,
        to_state=S.COUNTER_OFFERED,
        actor=actor,
        reason=note.strip(),
        changes={
            "offer_pool": pool.pk,
            "offer_gpu_count": gpu_count,
            "offer_starts_at": starts_at.isoformat(),
            "offer_ends_at": ends_at.isoformat(),
        },
        update_fields=OFFER_FIELDS,
    )
    notify.request_moved(capacity_request, actor=actor, reason=note)
    return capacity_request
