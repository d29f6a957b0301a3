"""Shared machinery of the workflow services: row locks, recorded moves and who may act.

Every transition goes through ``request_move`` / ``reservation_move``: they consult the tables in
``quotas.workflow``, refuse an illegal move with ``IllegalTransition`` naming the current state,
bump the row's version, write the timeline event and the audit event in the caller's
transaction. The caller holds the row lock (``request_lock`` / ``reservation_lock``).
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEvent, Membership, Organization, Role, StaffRole, User
from accounts.permissions import role_has
from accounts.selectors import staff_can_see_organization, staff_role_for
from accounts.services import audit_event_build
from accounts.tenancy import UnscopedQueryError
from portal.errors import NotAllowed
from portal.prepared import prepared_cursor
from portal.rows import Columns, insert_together, save_fields
from quotas.models import (
    CapacityPool,
    CapacityRequest,
    GpuSku,
    Region,
    RequestEvent,
    Reservation,
)
from quotas.workflow import request_require_move, reservation_require_move


def setting_decimal(name: str) -> Decimal:
    return Decimal(str(getattr(settings, name)))


def hours(name: str) -> timedelta:
    return timedelta(hours=getattr(settings, name))


# --- Locks ---------------------------------------------------------------------------------
def request_lock(pk: int) -> CapacityRequest:
    """Lock one request row for the rest of the transaction and return it fresh, with its
    organization, SKU, region and requester.

    Every transition takes this lock: the statement is written once per process (the ORM
    compiled its five-table join each time, about half of the lock's CPU)."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("request_lock() must run inside transaction.atomic().")
    sql, parts = _request_lock_statement()
    # Prepared once per connection (portal.prepared): PostgreSQL spent ~0.7 ms planning it.
    with prepared_cursor(connection.alias) as cursor:
        cursor.execute(sql, [pk])
        row = cursor.fetchone()
    if row is None:
        raise CapacityRequest.DoesNotExist("CapacityRequest matching query does not exist.")
    instances, at = [], 0
    for part in parts:
        values = row[at : at + len(part)]
        at += len(part)
        instances.append(part.load_or_none(values))
    capacity_request, organization, sku, region, requested_by = instances
    capacity_request.organization = organization
    capacity_request.sku = sku
    capacity_request.region = region
    capacity_request.requested_by = requested_by
    return capacity_request


@functools.cache
def _request_lock_statement() -> tuple[str, tuple[Columns, ...]]:
    parts = (
        Columns(CapacityRequest, "r"),
        Columns(Organization, "o"),
        Columns(GpuSku, "s"),
        Columns(Region, "g"),
        Columns(User, "u"),
    )
    quote = transaction.get_connection().ops.quote_name
    table = {
        m: quote(m._meta.db_table) for m in (CapacityRequest, Organization, GpuSku, Region, User)
    }
    column = {
        name: quote(CapacityRequest._meta.get_field(name).column)
        for name in ("organization", "sku", "region", "requested_by")
    }
    sql = (
        f"SELECT {', '.join(part.sql for part in parts)} "  # noqa: S608 (names from the models)
        f"FROM {table[CapacityRequest]} r "
        f"JOIN {table[Organization]} o ON o.id = r.{column['organization']} "
        f"JOIN {table[GpuSku]} s ON s.id = r.{column['sku']} "
        f"JOIN {table[Region]} g ON g.id = r.{column['region']} "
        f"LEFT JOIN {table[User]} u ON u.id = r.{column['requested_by']} "
        "WHERE r.id = %s FOR UPDATE OF r"
    )
    return sql, parts


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
    save_fields(obj, ["state", "state_changed_at", "version", "updated_at", *update_fields])


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
    event, audit = event_and_audit_build(
        organization=organization,
        capacity_request=capacity_request,
        reservation=reservation,
        target=target,
        action=action,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        reason=reason,
        at=at,
        changes=changes,
    )
    insert_together([event], [audit])


def event_and_audit_build(
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
) -> tuple[RequestEvent, AuditEvent]:
    """The timeline event and the audit event of a move, unsaved (``events_and_audits_write``
    stores several in two statements)."""
    event = RequestEvent(
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
    audit = audit_event_build(
        organization=organization, actor=actor, action=action, target=target, changes=payload
    )
    return event, audit


def events_and_audits_write(records: list[tuple[RequestEvent, AuditEvent]]) -> None:
    """Store built timeline and audit events, each table's in their order, in one statement."""
    insert_together([event for event, _ in records], [audit for _, audit in records])


# --- Who may act ---------------------------------------------------------------------------
def tenant_role(user: User | None, organization: Organization) -> str | None:
    """The user's role in the organization (None: not a member).

    Every tenant action asks it, so the statement is written once and prepared once per
    connection: the ORM compiled it each call, and joined the users' table only to order by
    e-mail the one row (organization, user) can match (``tests/quotas/test_tenant_role.py``
    holds both equal)."""
    if user is None or not user.is_authenticated:
        return None
    if organization.pk is None:
        raise UnscopedQueryError("for_organization() needs a saved organization.")
    with prepared_cursor() as cursor:
        cursor.execute(_tenant_role_statement(), [organization.pk, user.pk])
        row = cursor.fetchone()
    return row[0] if row else None


@functools.cache
def _tenant_role_statement() -> str:
    quote = transaction.get_connection().ops.quote_name
    column = {
        name: quote(Membership._meta.get_field(name).column)
        for name in ("role", "organization", "user")
    }
    return (
        f"SELECT {column['role']} FROM {quote(Membership._meta.db_table)} "  # noqa: S608 (names from the model)
        f"WHERE {column['organization']} = %s AND {column['user']} = %s"
    )


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


@functools.cache
def _candidate_pools_sql() -> str:
    skus = CapacityRequest.alternative_skus.through._meta
    regions = CapacityRequest.alternative_regions.through._meta
    pool_cols = ", ".join(f'p."{f.column}"' for f in CapacityPool._meta.concrete_fields)
    sku_cols = ", ".join(f's."{f.column}"' for f in GpuSku._meta.concrete_fields)
    region_cols = ", ".join(f'r."{f.column}"' for f in Region._meta.concrete_fields)
    # Each SKU's (region's) place in the request's list: its own first, then its alternatives
    # in their model order (name, code), as the index in that list; an alternative that is also
    # its own keeps place 0.
    return f"""
WITH skus AS (
    SELECT id, MIN(n) AS n FROM (
        SELECT %(sku)s::bigint AS id, 0::bigint AS n
        UNION ALL
        SELECT s.id, row_number() OVER (ORDER BY s.name, s.id)
          FROM "{skus.db_table}" a JOIN quotas_gpusku s ON s.id = a.gpusku_id
         WHERE a.capacityrequest_id = %(request)s
    ) o GROUP BY id
), regions AS (
    SELECT id, MIN(n) AS n FROM (
        SELECT %(region)s::bigint AS id, 0::bigint AS n
        UNION ALL
        SELECT r.id, row_number() OVER (ORDER BY r.code, r.id)
          FROM "{regions.db_table}" a JOIN quotas_region r ON r.id = a.region_id
         WHERE a.capacityrequest_id = %(request)s
    ) o GROUP BY id
)
SELECT skus.n, regions.n, {pool_cols}, {sku_cols}, {region_cols}
  FROM quotas_capacitypool p
  JOIN skus ON skus.id = p.sku_id
  JOIN regions ON regions.id = p.region_id
  JOIN quotas_gpusku s ON s.id = p.sku_id
  JOIN quotas_region r ON r.id = p.region_id
 WHERE p.active AND s.active AND r.active
"""  # noqa: S608 (names from the models)


def candidate_pools(capacity_request: CapacityRequest) -> list[CapacityPool]:
    """The request's own pool first, then every active pool among its alternatives (SKU x
    region), in a stable order: by the sum of the SKU's and the region's places in the
    request's lists, then the SKU's place, then the region's code.

    One statement reads both alternative lists and the pools (three queries before)."""
    with_alternatives = not capacity_request.is_extension and capacity_request.pk
    connection = transaction.get_connection()
    # Prepared once per connection (portal.prepared): PostgreSQL spent ~3.5 ms planning it on
    # every check; the text is the same for every request.
    with prepared_cursor(connection.alias) as cursor:
        cursor.execute(
            _candidate_pools_sql(),
            {
                "sku": capacity_request.sku_id,
                "region": capacity_request.region_id,
                "request": capacity_request.pk if with_alternatives else None,
            },
        )
        rows = cursor.fetchall()
    pool_names = [f.attname for f in CapacityPool._meta.concrete_fields]
    sku_names = [f.attname for f in GpuSku._meta.concrete_fields]
    region_names = [f.attname for f in Region._meta.concrete_fields]
    a, b = 2 + len(pool_names), 2 + len(pool_names) + len(sku_names)
    ranked = []
    for row in rows:
        pool = CapacityPool.from_db(connection.alias, pool_names, row[2:a])
        pool.sku = GpuSku.from_db(connection.alias, sku_names, row[a:b])
        pool.region = Region.from_db(connection.alias, region_names, row[b:])
        sku_place, region_place = row[0], row[1]
        ranked.append(((sku_place + region_place, sku_place, pool.region.code), pool))
    ranked.sort(key=lambda item: item[0])
    return [pool for _, pool in ranked]
