"""The tenant's answers and the request's ends: accept or decline an offer, join the waitlist,
withdraw, and expiry (undecided at the start, or a lapsed offer)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from portal.errors import ConflictError, DomainError, NotAllowed
from quotas import notify
from quotas.models import (
    CapacityHold,
    CapacityPool,
    CapacityRequest,
    RequestEvent,
    Reservation,
)
from quotas.workflow import (
    REQUEST_OFFER_STATES,
    REQUEST_UNDECIDED,
    request_require_action,
)

from ._base import (
    hours,
    request_lock,
    request_move,
    require_requester_or_manager,
)
from .decisions import (
    held_offer,
    held_offer_release,
    offer_needs_second_approval,
    pending_approval_enter,
    request_needs_decision,
    reservation_grant,
)
from .requests import S, needs_second_approval, request_value


@transaction.atomic
def capacity_request_accept_offer(
    *, capacity_request: CapacityRequest, actor: User | None
) -> CapacityRequest:
    """The tenant accepts a counter-offer or a waitlist offer: the offer's hold becomes the
    reservation's hold (no new capacity check: it was held). A waitlist offer on a request that
    still needs a provider decision goes to the account manager instead, its hold kept."""
    capacity_request = request_lock(capacity_request.pk)
    if actor is not None:
        require_requester_or_manager(actor, capacity_request, "requests.create")
    request_require_action("accept_offer", capacity_request.state)
    if capacity_request.offer_expires_at and capacity_request.offer_expires_at <= timezone.now():
        raise ConflictError("This offer has lapsed.", field="offer_expires_at")
    offer_accept_locked(capacity_request, actor=actor)
    notify.request_moved(capacity_request, actor=actor)
    return capacity_request


def offer_accept_locked(
    capacity_request: CapacityRequest, *, actor: User | None
) -> Reservation | None:
    """Book an accepted offer, or hand it to the approvers when a decision is still owed
    (returns None then). The caller holds the request lock and notifies."""
    hold = CapacityHold.all_objects.select_related("pool").get(pk=capacity_request.offer_hold_id)
    pool = CapacityPool.objects.select_related("sku", "region").get(pk=hold.pool_id)
    if capacity_request.offer_kind == CapacityRequest.OfferKind.WAITLIST and (
        request_needs_decision(capacity_request)
    ):
        offer_to_approvers(capacity_request, actor=actor, hold=hold, pool=pool)
        return None
    if capacity_request.offer_kind == CapacityRequest.OfferKind.COUNTER and (
        offer_needs_second_approval(capacity_request, pool=pool)
    ):
        offer_to_planners(capacity_request, actor=actor, hold=hold, pool=pool)
        return None
    return reservation_grant(
        capacity_request,
        actor=actor,
        pool=pool,
        gpu_count=capacity_request.offer_gpu_count,
        starts_at=capacity_request.offer_starts_at,
        ends_at=capacity_request.offer_ends_at,
        hold=hold,
        reason="Offer accepted" if actor is not None else "Offer accepted automatically",
    )


def offer_to_approvers(
    capacity_request: CapacityRequest,
    *,
    actor: User | None,
    hold: CapacityHold,
    pool: CapacityPool,
) -> None:
    """An accepted waitlist offer that no one on the provider side has decided: the request
    goes to the account manager (who passes it on to the capacity planners above the
    thresholds, as usual) with the usual decision due time, reminders and escalation. The
    offer's hold is kept, made firm, for as long as the decision takes: approval books it as it
    is; rejection, withdrawal, a counter-offer or expiry at the start release it, and the freed
    capacity goes to the next waitlisted request."""
    from quotas.capacity import hold_confirm_offer

    hold_confirm_offer(hold=hold, actor=actor)
    capacity_request.pool = pool
    capacity_request.offer_expires_at = None
    who = "Offer accepted" if actor is not None else "Offer accepted automatically"
    pending_approval_enter(
        capacity_request,
        actor=actor,
        reason=(
            f"{who}; this request still needs its approvers' decision, so its capacity is held "
            "until they decide."
        ),
        update_fields=("pool", "offer_expires_at"),
    )
    notify.request_offer_held(capacity_request, actor=actor)


def offer_to_planners(
    capacity_request: CapacityRequest,
    *,
    actor: User | None,
    hold: CapacityHold,
    pool: CapacityPool,
) -> None:
    """An accepted counter-offer whose own terms are above the second-approval thresholds: the
    account manager's counter-offer stands as the first approval, and a capacity planner must
    approve too, as for any request that large. The offer's hold is kept, made firm, until the
    planner decides: approval books exactly that hold; rejection, withdrawal, another
    counter-offer or expiry at the start release it to the next waitlisted request."""
    from quotas.capacity import hold_confirm_offer

    hold_confirm_offer(hold=hold, actor=actor)
    offered_by = (
        RequestEvent.all_objects.filter(request=capacity_request, to_state=S.COUNTER_OFFERED)
        .order_by("-at", "-id")
        .values_list("actor_id", flat=True)
        .first()
    )
    now = timezone.now()
    due = now + hours("QUOTAS_DECISION_SLA_HOURS")
    if capacity_request.starts_at is not None:
        due = max(now, min(due, capacity_request.starts_at))
    capacity_request.pool = pool
    capacity_request.offer_expires_at = None
    if offered_by is not None:
        # The planner approving must be someone else than whoever made the counter-offer.
        capacity_request.first_approved_by_id = offered_by
        capacity_request.first_approved_at = now
    capacity_request.decision_due_at = due
    capacity_request.reminder_sent_at = None
    capacity_request.escalated_at = None
    who = "Counter-offer accepted" if actor is not None else "Counter-offer accepted automatically"
    request_move(
        capacity_request,
        to_state=S.PENDING_SECOND_APPROVAL,
        actor=actor,
        reason=(
            f"{who}; its terms are above the second-approval threshold, so a capacity planner "
            "decides, its capacity held until then."
        ),
        at=now,
        update_fields=(
            "pool",
            "offer_expires_at",
            "first_approved_by",
            "first_approved_at",
            "decision_due_at",
            "reminder_sent_at",
            "escalated_at",
        ),
    )
    notify.request_offer_held(capacity_request, actor=actor)


def _release_offer(capacity_request: CapacityRequest, *, actor: User | None = None) -> None:
    from quotas.capacity import hold_release

    if capacity_request.offer_hold_id:
        hold = CapacityHold.all_objects.get(pk=capacity_request.offer_hold_id)
        hold_release(hold=hold, actor=actor)


@transaction.atomic
def capacity_request_decline_offer(
    *, capacity_request: CapacityRequest, actor: User, reason: str = ""
) -> CapacityRequest:
    """The tenant declines an offer: its capacity is released and the request withdrawn."""
    capacity_request = request_lock(capacity_request.pk)
    require_requester_or_manager(actor, capacity_request, "requests.create")
    request_require_action("decline_offer", capacity_request.state)
    _release_offer(capacity_request, actor=actor)
    request_move(
        capacity_request,
        to_state=S.WITHDRAWN,
        actor=actor,
        reason=(reason or "Offer declined").strip(),
    )
    notify.request_moved(capacity_request, actor=actor, reason=reason)
    return capacity_request


@transaction.atomic
def capacity_request_withdraw(
    *, capacity_request: CapacityRequest, actor: User, reason: str = ""
) -> CapacityRequest:
    """The requester (or an owner/admin) withdraws an undecided request; an offer's hold goes."""
    capacity_request = request_lock(capacity_request.pk)
    require_requester_or_manager(actor, capacity_request, "requests.create")
    from_state = capacity_request.state
    request_require_action("withdraw", from_state)
    held_offer_release(capacity_request, actor=actor)
    request_move(capacity_request, to_state=S.WITHDRAWN, actor=actor, reason=reason.strip())
    if from_state in REQUEST_OFFER_STATES:
        _release_offer(capacity_request, actor=actor)
    notify.request_moved(capacity_request, actor=actor, reason=reason)
    return capacity_request


@transaction.atomic
def capacity_request_waitlist(*, capacity_request: CapacityRequest, actor: User) -> CapacityRequest:
    """Join the waitlist: when capacity frees, the first fitting waitlisted request is offered
    it. Only reservation requests wait; nothing is held while waiting."""
    capacity_request = request_lock(capacity_request.pk)
    require_requester_or_manager(actor, capacity_request, "requests.create")
    request_require_action("waitlist", capacity_request.state)
    if not capacity_request.is_reservation:
        raise DomainError("Only reservation requests can wait for capacity.", field="kind")
    if needs_second_approval(capacity_request, value=request_value(capacity_request)):
        # A waitlist offer is booked without a decision; above the threshold a capacity
        # planner must approve, so this request stays with its approvers.
        raise NotAllowed(
            "A request above the second-approval threshold waits for its approvers, not on "
            "the waitlist.",
            field="state",
        )
    if held_offer(capacity_request) is not None:
        raise DomainError(
            "This request already holds capacity from an accepted offer while its approvers "
            "decide; it cannot wait for more.",
            field="state",
        )
    capacity_request.decision_due_at = None
    request_move(
        capacity_request,
        to_state=S.WAITLISTED,
        actor=actor,
        update_fields=("decision_due_at",),
    )
    notify.request_moved(capacity_request, actor=actor)
    return capacity_request


@transaction.atomic
def capacity_request_expire(*, request_id: int, now: datetime | None = None) -> bool:
    """Expire a request still undecided at its start, or an offer that lapsed. Idempotent:
    returns False (and does nothing) when the request no longer qualifies."""
    now = now or timezone.now()
    capacity_request = request_lock(request_id)
    state = capacity_request.state
    started = capacity_request.starts_at is not None and capacity_request.starts_at <= now
    lapsed = (
        state in REQUEST_OFFER_STATES
        and capacity_request.offer_expires_at is not None
        and capacity_request.offer_expires_at <= now
    )
    if state not in REQUEST_UNDECIDED or not (started or lapsed):
        return False
    if state in REQUEST_OFFER_STATES:
        _release_offer(capacity_request)
    held_offer_release(capacity_request, actor=None)
    reason = "The offer lapsed." if lapsed and not started else "Undecided at its start."
    capacity_request.decision_due_at = None
    request_move(
        capacity_request,
        to_state=S.EXPIRED,
        actor=None,
        reason=reason,
        update_fields=("decision_due_at",),
    )
    notify.request_moved(capacity_request, actor=None, reason=reason)
    return True
