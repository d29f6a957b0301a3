"""Reservations after approval: activation and completion (driven by beat scans), cancel
before start, release early, and extension (a new request that must fit)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from portal.errors import ConflictError, DomainError
from quotas import notify
from quotas.models import CapacityRequest, Reservation
from quotas.workflow import RequestState, ReservationState, reservation_require_action

from ._base import (
    request_lock,
    request_move,
    require_requester_or_manager,
    require_tenant,
    reservation_lock,
    reservation_move,
)

V = ReservationState


@transaction.atomic
def reservation_activate(*, reservation_id: int, now: datetime | None = None) -> bool:
    """Activate a scheduled reservation whose start has come (and complete it at once when its
    end has passed too: catching up after downtime). Idempotent: False when nothing to do."""
    now = now or timezone.now()
    reservation = reservation_lock(reservation_id)
    if reservation.state != V.SCHEDULED or reservation.starts_at > now:
        return False
    reservation.activated_at = reservation.starts_at
    reservation_move(
        reservation,
        to_state=V.ACTIVE,
        actor=None,
        at=reservation.starts_at,
        update_fields=("activated_at",),
    )
    if reservation.ends_at <= now:
        _complete(reservation)
    else:
        notify.reservation_moved(reservation, actor=None)
    return True


def _complete(reservation: Reservation) -> None:
    reservation.ended_at = reservation.ends_at
    reservation_move(
        reservation,
        to_state=V.COMPLETED,
        actor=None,
        at=reservation.ends_at,
        update_fields=("ended_at",),
    )
    notify.reservation_moved(reservation, actor=None)


@transaction.atomic
def reservation_complete(*, reservation_id: int, now: datetime | None = None) -> bool:
    """Complete an active reservation whose end has come. Idempotent. (A scheduled one that
    missed both its start and end is caught up by ``reservation_activate``.)"""
    now = now or timezone.now()
    reservation = reservation_lock(reservation_id)
    if reservation.state != V.ACTIVE or reservation.ends_at > now:
        return False
    _complete(reservation)
    return True


@transaction.atomic
def reservation_cancel(*, reservation: Reservation, actor: User, reason: str = "") -> Reservation:
    """Cancel a reservation before its start: its capacity is released (and may be offered to
    the waitlist) and its request is marked cancelled."""
    from quotas.capacity import hold_release

    reservation = reservation_lock(reservation.pk)
    require_requester_or_manager(actor, reservation.request, "reservations.manage")
    reservation_require_action("cancel", reservation.state)
    if reservation.starts_at <= timezone.now():
        raise ConflictError("The reservation has started; release it early instead.", field="state")
    reason = (reason or "").strip()
    reservation.ended_at = timezone.now()
    reservation.ended_by = actor
    reservation.end_reason = reason
    reservation_move(
        reservation,
        to_state=V.CANCELLED,
        actor=actor,
        reason=reason,
        update_fields=("ended_at", "ended_by", "end_reason"),
    )
    # Locks in the order every service takes them: reservation, request, then the pool.
    capacity_request = request_lock(reservation.request_id)
    request_move(capacity_request, to_state=RequestState.CANCELLED, actor=actor, reason=reason)
    hold_release(hold=reservation.hold, actor=actor)
    notify.reservation_moved(reservation, actor=actor, reason=reason)
    return reservation


@transaction.atomic
def reservation_release_early(
    *, reservation: Reservation, actor: User, reason: str = "", at: datetime | None = None
) -> Reservation:
    """End an active reservation now: its hold is cut at ``at`` (now), keeping the part used on
    record, and the rest of the window is freed."""
    from quotas.capacity import hold_resize

    at = at or timezone.now()
    reservation = reservation_lock(reservation.pk)
    require_requester_or_manager(actor, reservation.request, "reservations.manage")
    reservation_require_action("release_early", reservation.state)
    reason = (reason or "").strip()
    if not reservation.starts_at < at < reservation.ends_at:
        raise DomainError("The release time must fall inside the reservation.", field="at")
    reservation_move(reservation, to_state=V.RELEASED_EARLY, actor=actor, reason=reason, at=at)
    hold_resize(hold=reservation.hold, ends_at=at, actor=actor)
    reservation.ended_at = at
    reservation.ended_by = actor
    reservation.end_reason = reason
    reservation.save(update_fields=["ended_at", "ended_by", "end_reason"])
    notify.reservation_moved(reservation, actor=actor, reason=reason)
    return reservation


@transaction.atomic
def reservation_extend(
    *, reservation: Reservation, actor: User, ends_at: datetime, justification: str = ""
) -> CapacityRequest:
    """Ask to extend a scheduled or active reservation to ``ends_at``: a new request for the
    same GPUs in the same pool over [current end, ends_at), submitted at once. It must fit; the
    waitlist offers capacity to extensions before newcomers."""
    from .requests import capacity_request_create

    reservation = reservation_lock(reservation.pk)
    require_tenant(actor, reservation.organization, "reservations.manage")
    reservation_require_action("extend", reservation.state)
    if ends_at <= reservation.ends_at:
        raise DomainError("The new end must be after the current end.", field="ends_at")
    pending = (
        CapacityRequest.objects.for_organization(reservation.organization)
        .filter(extends_reservation=reservation)
        .exclude(state__in=_CLOSED)
        .exists()
    )
    if pending:
        raise ConflictError("An extension of this reservation is already open.", field="ends_at")
    return capacity_request_create(
        organization=reservation.organization,
        actor=actor,
        kind=CapacityRequest.Kind.RESERVATION,
        sku=reservation.pool.sku,
        region=reservation.pool.region,
        gpu_count=reservation.gpu_count,
        starts_at=reservation.ends_at,
        ends_at=ends_at,
        justification=justification or f"Extension of {reservation.reference}",
        extends_reservation=reservation,
    )


_CLOSED = {
    RequestState.APPROVED,
    RequestState.REJECTED,
    RequestState.WITHDRAWN,
    RequestState.CANCELLED,
    RequestState.EXPIRED,
}
