"""Shared machinery of the workflow services: row locks, recorded moves and who may act.

Every transition goes through ``request_move`` / ``reservation_move``: they consult the tables in
``quotas.workflow``, refuse an illegal move with ``IllegalTransition`` naming the current state,
bump the row's version, write the timeline event and the audit event in the caller's
transaction. The caller holds the row lock (``request_lock`` / ``reservation_lock``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, Organization, Role, StaffRole, User
from accounts.permissions import role_has
from accounts.selectors import staff_can_see_organization, staff_role_for
from accounts.services import audit_record
from portal.errors import NotAllowed
from quotas.models import CapacityPool, CapacityRequest, RequestEvent, Reservation
from quotas.workflow import request_require_move, reservation_require_move


def setting_decimal(name: str) -> Decimal:
    return Decimal(str(getattr(settings, name)))


def hours(name: str) -> timedelta:
    return timedelta(hours=getattr(settings, name))


# --- Locks ---------------------------------------------------------------------------------
def request_lock(pk: int) -> CapacityRequest:
    """Lock one request row for the rest of the transaction and return it fresh."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("request_lock() must run inside transaction.atomic().")
    return (
        CapacityRequest.objects.unscoped_for_staff()
        .select_for_update(of=("self",))
        .select_related("organization", "sku", "region", "requested_by")
        .get(pk=pk)
    )


def reservation_lock(pk: int) -> Reservation:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("reservation_lock() must run inside transaction.atomic().")
    return (
        Reservation.objects.unscoped_for_staff()
        .select_for_update(of=("self",))
        .select_related("organization", "pool__sku", "pool__region", "hold", "request")
        .get(pk=pk)
    )


# --- Recorded moves ------------------------------------------------------------------------
def _state_save(
    obj: CapacityRequest | Reservation,
    *,
    to_state: str,
    at: datetime,
    update_fields: tuple[str, ...],
) -> None:
    """Store a checked move of a locked request or reservation; the version bump is its ETag."""
    obj.state = to_state
    obj.state_changed_at = at
    obj.version += 1
    obj.updated_at = timezone.now()
    obj.save(update_fields=["state", "state_changed_at", "version", "updated_at", *update_fields])


def request_move(
    capacity_request: CapacityRequest,
    *,
    to_state: str,
    actor: User | None,
    reason: str = "",
    at: datetime | None = None,
    changes: dict | None = None,
    update_fields: tuple[str, ...] = (),
) -> str:
    """Move a locked request to ``to_state``; returns the state it left."""
    from_state = capacity_request.state
    request_require_move(from_state, to_state)
    at = at or timezone.now()
    _state_save(capacity_request, to_state=to_state, at=at, update_fields=update_fields)
    _event_and_audit(
        organization=capacity_request.organization,
        capacity_request=capacity_request,
        reservation=None,
        target=capacity_request,
        action=f"capacity_request.{to_state}",
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        reason=reason,
        at=at,
        changes=changes,
    )
    return from_state


def request_record_created(
    capacity_request: CapacityRequest, *, actor: User | None, changes: dict
) -> None:
    _event_and_audit(
        organization=capacity_request.organization,
        capacity_request=capacity_request,
        reservation=None,
        target=capacity_request,
        action="capacity_request.created",
        from_state="",
        to_state=capacity_request.state,
        actor=actor,
        reason="",
        at=capacity_request.created_at,
        changes=changes,
    )


def reservation_move(
    reservation: Reservation,
    *,
    to_state: str,
    actor: User | None,
    reason: str = "",
    at: datetime | None = None,
    changes: dict | None = None,
    update_fields: tuple[str, ...] = (),
) -> str:
    from_state = reservation.state
    reservation_require_move(from_state, to_state)
    at = at or timezone.now()
    _state_save(reservation, to_state=to_state, at=at, update_fields=update_fields)
    _event_and_audit(
        organization=reservation.organization,
        capacity_request=reservation.request,
        reservation=reservation,
        target=reservation,
        action=f"reservation.{to_state}",
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        reason=reason,
        at=at,
        changes=changes,
    )
    return from_state


def reservation_record_created(reservation: Reservation, *, actor: User | None) -> None:
    _event_and_audit(
        organization=reservation.organization,
        capacity_request=reservation.request,
        reservation=reservation,
        target=reservation,
        action="reservation.created",
        from_state="",
        to_state=reservation.state,
        actor=actor,
        reason="",
        at=reservation.created_at,
        changes={
            "pool": reservation.pool_id,
            "gpu_count": reservation.gpu_count,
            "starts_at": reservation.starts_at.isoformat(),
            "ends_at": reservation.ends_at.isoformat(),
            "total": str(reservation.total),
            "currency": reservation.currency,
        },
    )


def _event_and_audit(
    *,
    organization: Organization,
    capacity_request: CapacityRequest,
    reservation: Reservation | None,
    target,
    action: str,
    from_state: str,
    to_state: str,
    actor: User | None,
    reason: str,
    at: datetime,
    changes: dict | None,
) -> None:
    RequestEvent.all_objects.create(
        organization=organization,
        request=capacity_request,
        reservation=reservation,
        from_state=from_state,
        to_state=to_state,
        actor=actor if actor is not None and actor.is_authenticated else None,
        reason=reason,
        at=at,
    )
    payload = {"from": from_state, "to": to_state}
    if reason:
        payload["reason"] = reason
    if changes:
        payload.update(changes)
    audit_record(
        organization=organization, actor=actor, action=action, target=target, changes=payload
    )


# --- Who may act ---------------------------------------------------------------------------
def tenant_role(user: User | None, organization: Organization) -> str | None:
    if user is None or not user.is_authenticated:
        return None
    membership = (
        Membership.objects.for_organization(organization).filter(user=user).only("role").first()
    )
    return membership.role if membership else None


def require_tenant(user: User, organization: Organization, capability: str) -> str:
    """The user's role, if it holds ``capability`` in the organization; else NotAllowed."""
    role = tenant_role(user, organization)
    if not role_has(role, capability):
        raise NotAllowed("Your role in this organization does not allow this.")
    return role


def require_requester_or_manager(
    user: User, capacity_request: CapacityRequest, capability: str
) -> None:
    """The requester (while still a member who may create requests) or an owner/admin."""
    role = tenant_role(user, capacity_request.organization)
    if role in (Role.OWNER, Role.ADMIN):
        return
    if capacity_request.requested_by_id == user.pk and role_has(role, capability):
        return
    raise NotAllowed("Only the requester or an owner or admin of the organization may do this.")


def require_decider(user: User, organization: Organization) -> None:
    """Provider staff who may decide this organization's requests (its account manager, a
    capacity planner or a superuser)."""
    role = staff_role_for(user)
    if role is None or not staff_can_see_organization(user=user, organization=organization):
        raise NotAllowed("Only this organization's account manager or a capacity planner decides.")


def require_second_approver(user: User, capacity_request: CapacityRequest) -> None:
    if not (user.is_authenticated and user.is_capacity_planner):
        raise NotAllowed("The second approval is a capacity planner's.")
    if capacity_request.first_approved_by_id == user.pk:
        raise NotAllowed("The second approval must come from someone else than the first.")


def capacity_planners() -> list[User]:
    return list(
        User.objects.filter(staff_role=StaffRole.CAPACITY_PLANNER, is_active=True).order_by("pk")
    )


def candidate_pools(capacity_request: CapacityRequest) -> list[CapacityPool]:
    """The request's own pool first, then every active pool among its alternatives (SKU x
    region), in a stable order."""
    sku_ids = [capacity_request.sku_id]
    region_ids = [capacity_request.region_id]
    if not capacity_request.is_extension and capacity_request.pk:
        sku_ids += [s.pk for s in capacity_request.alternative_skus.all()]
        region_ids += [r.pk for r in capacity_request.alternative_regions.all()]
    pools = list(
        CapacityPool.objects.filter(
            sku_id__in=sku_ids,
            region_id__in=region_ids,
            active=True,
            sku__active=True,
            region__active=True,
        ).select_related("sku", "region")
    )

    def rank(pool: CapacityPool) -> tuple:
        return (
            sku_ids.index(pool.sku_id) + region_ids.index(pool.region_id),
            sku_ids.index(pool.sku_id),
            pool.region.code,
        )

    return sorted(pools, key=rank)
