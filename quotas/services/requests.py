"""Capacity requests from the tenant side: validation, create, edit, submit, sign-off inside
the organization, comments, and the approval policy.

Each public function is one use case and one transaction. Transitions lock the request row,
check the tables in ``quotas.workflow``, write the timeline and audit rows, and tell the people
concerned (``quotas.notify``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Organization, Role, User
from accounts.services import audit_record
from portal.errors import DomainError, NotAllowed
from portal.rows import insert_together
from quotas import notify
from quotas.capacity import GPU_COUNT_MAX
from quotas.models import (
    ApprovalPolicy,
    CapacityPool,
    CapacityRequest,
    GpuSku,
    Region,
    RequestComment,
    Reservation,
)
from quotas.workflow import (
    RequestState,
    request_require_action,
    request_require_move,
)

from ._base import (
    candidate_pools,
    event_and_audit_build,
    events_and_audits_write,
    request_lock,
    request_move,
    request_record_created,
    require_decider,
    require_requester_or_manager,
    require_tenant,
    setting_decimal,
    tenant_role,
)

S = RequestState
Kind = CapacityRequest.Kind

# A window starts at most this far ahead. Beyond it nobody plans capacity, and a time typed
# near the end of year 9999 in a zone behind UTC is stored as year 10000, which Python cannot
# read back: every page listing the request would fail.
START_HORIZON = timedelta(days=5 * 365)


# --- Validation ----------------------------------------------------------------------------
def capacity_request_validate(
    *,
    kind: str,
    sku: GpuSku | None,
    region: Region | None,
    gpu_count: int | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    on_demand_limit: int | None = None,
    alternative_skus: Iterable[GpuSku] = (),
    alternative_regions: Iterable[Region] = (),
    lead_time: bool = True,
    now: datetime | None = None,
    pool: CapacityPool | None = None,
) -> CapacityPool:
    """Refuse bad input with a DomainError naming the field at fault; return the pool.

    ``pool``: the active pool of ``sku`` and ``region`` when the caller read it with them (the
    API reads the three in one statement); read here otherwise."""
    now = now or timezone.now()
    if kind not in Kind.values:
        raise DomainError("Choose a reservation or an on-demand quota increase.", field="kind")
    if sku is None or not sku.active:
        raise DomainError("Choose a GPU type that is on sale.", field="sku")
    if region is None or not region.active:
        raise DomainError("Choose a region that is open.", field="region")
    if pool is None or not (pool.active and pool.sku_id == sku.pk and pool.region_id == region.pk):
        pool = CapacityPool.objects.filter(sku=sku, region=region, active=True).first()
    if pool is None:
        raise DomainError(f"{sku} is not offered in {region.code}.", field="region")
    for alt in alternative_skus:
        if not alt.active:
            raise DomainError(f"{alt} is not on sale.", field="alternative_skus")
    for alt in alternative_regions:
        if not alt.active:
            raise DomainError(f"{alt.code} is not open.", field="alternative_regions")
    if kind == Kind.QUOTA_INCREASE:
        if on_demand_limit is None or on_demand_limit < 0:
            raise DomainError("Give the new on-demand limit in GPUs.", field="on_demand_limit")
        if on_demand_limit > GPU_COUNT_MAX:
            raise DomainError(
                f"An on-demand limit is at most {GPU_COUNT_MAX:,} GPUs.", field="on_demand_limit"
            )
        return pool
    if gpu_count is None or gpu_count <= 0:
        raise DomainError("Ask for at least one GPU.", field="gpu_count")
    if gpu_count > GPU_COUNT_MAX:
        raise DomainError(f"Ask for at most {GPU_COUNT_MAX:,} GPUs.", field="gpu_count")
    if sku.sold_in_whole_nodes and gpu_count % sku.gpus_per_node:
        raise DomainError(
            f"{sku} is sold in whole nodes of {sku.gpus_per_node} GPUs.", field="gpu_count"
        )
    if starts_at is None:
        raise DomainError("Give the start of the window.", field="starts_at")
    if ends_at is None:
        raise DomainError("Give the end of the window.", field="ends_at")
    lead = timedelta(minutes=settings.QUOTAS_MIN_LEAD_MINUTES) if lead_time else timedelta(0)
    if starts_at < now + lead:
        minutes = settings.QUOTAS_MIN_LEAD_MINUTES
        raise DomainError(
            f"The start must be at least {minutes} minutes from now."
            if lead_time
            else "The start must be in the future.",
            field="starts_at",
        )
    if starts_at > now + START_HORIZON:
        raise DomainError(
            f"The start must be within {START_HORIZON.days // 365} years from now.",
            field="starts_at",
        )
    if ends_at <= starts_at:
        raise DomainError("The end must be after the start.", field="ends_at")
    max_days = settings.QUOTAS_MAX_DURATION_DAYS
    if ends_at - starts_at > timedelta(days=max_days):
        raise DomainError(f"A reservation lasts at most {max_days} days.", field="ends_at")
    return pool


def window_quote(*, organization, pool: CapacityPool, gpu_count: int, starts_at, ends_at):
    from quotas.pricing import quote_price

    return quote_price(
        organization=organization,
        sku=pool.sku,
        region=pool.region,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
    )


def request_value(capacity_request: CapacityRequest) -> Decimal:
    """The request's total at its quote (0 for on-demand quota increases)."""
    if not capacity_request.is_reservation:
        return Decimal("0")
    pools = [capacity_request.pool] if capacity_request.pool_id else []
    pool = (pools or candidate_pools(capacity_request) or [None])[0]
    if pool is None:
        raise DomainError(f"{capacity_request.sku} is no longer offered there.", field="region")
    return window_quote(
        organization=capacity_request.organization,
        pool=pool,
        gpu_count=capacity_request.gpu_count,
        starts_at=capacity_request.starts_at,
        ends_at=capacity_request.ends_at,
    ).total


def approval_policy_for(organization: Organization) -> ApprovalPolicy:
    """The organization's policy, or the default (nothing automatic) when none is set."""
    policy = ApprovalPolicy.objects.for_organization(organization).first()
    return policy or ApprovalPolicy(organization=organization)


def needs_second_approval(capacity_request: CapacityRequest, *, value: Decimal) -> bool:
    count = (
        capacity_request.gpu_count
        if capacity_request.is_reservation
        else capacity_request.on_demand_limit
    )
    return (count or 0) > settings.QUOTAS_SECOND_APPROVAL_GPUS or value > setting_decimal(
        "QUOTAS_SECOND_APPROVAL_VALUE"
    )


# --- Create, edit, submit ------------------------------------------------------------------
@transaction.atomic
def capacity_request_create(
    *,
    organization: Organization,
    actor: User,
    kind: str = Kind.RESERVATION,
    sku: GpuSku,
    region: Region,
    gpu_count: int | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    on_demand_limit: int | None = None,
    justification: str = "",
    alternative_skus: Iterable[GpuSku] = (),
    alternative_regions: Iterable[Region] = (),
    waitlist_if_unavailable: bool = False,
    submit: bool = True,
    extends_reservation: Reservation | None = None,
    pool: CapacityPool | None = None,
) -> CapacityRequest:
    """Create a request as a draft, and submit it unless ``submit`` is False. ``pool``: the
    pool of ``sku`` and ``region`` if the caller read it with them (checked, else read)."""
    role = require_tenant(actor, organization, "requests.create")
    alternative_skus = [s for s in alternative_skus if s.pk != getattr(sku, "pk", None)]
    alternative_regions = [r for r in alternative_regions if r.pk != getattr(region, "pk", None)]
    capacity_request_validate(
        kind=kind,
        sku=sku,
        region=region,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
        on_demand_limit=on_demand_limit,
        alternative_skus=alternative_skus,
        alternative_regions=alternative_regions,
        lead_time=extends_reservation is None,
        pool=pool,
    )
    is_quota = kind == Kind.QUOTA_INCREASE
    policy = None
    # Whether the submission goes straight to the checks is known before the row exists,
    # unless a sign-off depends on the request's value: then it is stored as a draft and
    # submitted as the public submit would.
    straight = submit and role in (Role.OWNER, Role.ADMIN)
    if submit and not straight:
        policy = approval_policy_for(organization)
        straight = not policy.signoff_for_members and (
            policy.signoff_above_value is None or is_quota
        )
    capacity_request = CapacityRequest(
        organization=organization,
        kind=kind,
        sku=sku,
        region=region,
        gpu_count=None if is_quota else gpu_count,
        starts_at=None if is_quota else starts_at,
        ends_at=None if is_quota else ends_at,
        on_demand_limit=on_demand_limit if is_quota else None,
        justification=justification.strip(),
        waitlist_if_unavailable=waitlist_if_unavailable and not is_quota,
        extends_reservation=extends_reservation,
        requested_by=actor,
        state=S.DRAFT,
    )
    created_changes = {
        "kind": kind,
        "sku": sku.code,
        "region": region.code,
        "gpu_count": capacity_request.gpu_count,
        "on_demand_limit": capacity_request.on_demand_limit,
        "starts_at": starts_at.isoformat() if starts_at and not is_quota else None,
        "ends_at": ends_at.isoformat() if ends_at and not is_quota else None,
    }
    if straight:
        return _create_submitted(
            capacity_request,
            actor=actor,
            role=role,
            changes=created_changes,
            alternative_skus=[] if is_quota else alternative_skus,
            alternative_regions=[] if is_quota else alternative_regions,
        )
    insert_together([capacity_request])
    if alternative_skus and not is_quota:
        capacity_request.alternative_skus.set(alternative_skus)
    if alternative_regions and not is_quota:
        capacity_request.alternative_regions.set(alternative_regions)
    request_record_created(capacity_request, actor=actor, changes=created_changes)
    if submit:
        # Just created and validated in this transaction, by this actor, whose role is known:
        # no lock, re-read or second validation needed (the public submit does all three).
        return _submit(capacity_request, actor=actor, role=role, policy=policy)
    return capacity_request


def _create_submitted(
    capacity_request: CapacityRequest,
    *,
    actor: User,
    role: str | None,
    changes: dict,
    alternative_skus: list[GpuSku],
    alternative_regions: list[Region],
) -> CapacityRequest:
    """Store a new request already submitted (no sign-off needed): the row as a draft and its
    submission would leave it, with both steps' timeline and audit events, in three
    statements instead of six. ``recorded_events`` keeps its timeline for the response."""
    request_require_action("submit", capacity_request.state)
    request_require_move(S.DRAFT, S.SUBMITTED)
    now = timezone.now()
    capacity_request.submitted_at = now
    if role in (Role.OWNER, Role.ADMIN):
        capacity_request.signed_off_by = actor
        capacity_request.signed_off_at = now
    capacity_request.state = S.SUBMITTED
    capacity_request.state_changed_at = now
    capacity_request.version += 1
    capacity_request.updated_at = now
    # save(force_insert=True) from a statement written once (portal.rows): no signals or
    # save() of its own to skip.
    insert_together([capacity_request])
    if alternative_skus:
        capacity_request.alternative_skus.set(alternative_skus)
    if alternative_regions:
        capacity_request.alternative_regions.set(alternative_regions)
    common = {
        "organization": capacity_request.organization,
        "capacity_request": capacity_request,
        "reservation": None,
        "target": capacity_request,
        "actor": actor,
        "reason": "",
    }
    records = [
        event_and_audit_build(
            **common,
            action="capacity_request.created",
            from_state="",
            to_state=S.DRAFT,
            at=capacity_request.created_at,
            changes=changes,
        ),
        event_and_audit_build(
            **common,
            action=f"capacity_request.{S.SUBMITTED}",
            from_state=S.DRAFT,
            to_state=S.SUBMITTED,
            at=now,
            changes=None,
        ),
    ]
    events_and_audits_write(records)
    capacity_request.recorded_events = [event for event, _ in records]
    _enqueue_checks(capacity_request)
    notify.request_moved(capacity_request, actor=actor)
    return capacity_request


DRAFT_FIELDS = (
    "sku",
    "region",
    "gpu_count",
    "starts_at",
    "ends_at",
    "on_demand_limit",
    "justification",
    "waitlist_if_unavailable",
)


@transaction.atomic
def capacity_request_update(
    *, capacity_request: CapacityRequest, actor: User, **fields
) -> CapacityRequest:
    """Edit a draft (fields of ``DRAFT_FIELDS``, ``alternative_skus``, ``alternative_regions``)."""
    capacity_request = request_lock(capacity_request.pk)
    require_requester_or_manager(actor, capacity_request, "requests.create")
    request_require_action("update", capacity_request.state)
    unknown = set(fields) - set(DRAFT_FIELDS) - {"alternative_skus", "alternative_regions"}
    if unknown:
        raise DomainError(f"Unknown field {sorted(unknown)[0]}.", field=sorted(unknown)[0])
    alt_skus = fields.pop("alternative_skus", None)
    alt_regions = fields.pop("alternative_regions", None)
    for name, value in fields.items():
        setattr(capacity_request, name, value)
    capacity_request_validate(
        kind=capacity_request.kind,
        sku=capacity_request.sku,
        region=capacity_request.region,
        gpu_count=capacity_request.gpu_count,
        starts_at=capacity_request.starts_at,
        ends_at=capacity_request.ends_at,
        on_demand_limit=capacity_request.on_demand_limit,
        alternative_skus=alt_skus or (),
        alternative_regions=alt_regions or (),
        lead_time=not capacity_request.is_extension,
    )
    capacity_request.version += 1
    capacity_request.updated_at = timezone.now()
    capacity_request.save()
    if alt_skus is not None:
        capacity_request.alternative_skus.set(alt_skus)
    if alt_regions is not None:
        capacity_request.alternative_regions.set(alt_regions)
    audit_record(
        organization=capacity_request.organization,
        actor=actor,
        action="capacity_request.updated",
        target=capacity_request,
        changes={k: str(v) for k, v in fields.items()},
    )
    return capacity_request


def _signoff_needed(
    capacity_request: CapacityRequest, *, role: str | None, policy: ApprovalPolicy | None = None
) -> bool:
    """An organization may require sign-off by an owner/admin for members' requests and/or
    above a value. An owner's or admin's own submission is its own sign-off."""
    if role in (Role.OWNER, Role.ADMIN):
        return False
    policy = policy or approval_policy_for(capacity_request.organization)
    if policy.signoff_for_members:
        return True
    if policy.signoff_above_value is not None and capacity_request.is_reservation:
        return request_value(capacity_request) >= policy.signoff_above_value
    return False


def _enqueue_checks(capacity_request: CapacityRequest) -> None:
    from quotas.tasks import run_checks_task

    request_id, organization_id = capacity_request.pk, capacity_request.organization_id
    transaction.on_commit(lambda: run_checks_task.delay(request_id, organization_id), robust=True)


@transaction.atomic
def capacity_request_submit(*, capacity_request: CapacityRequest, actor: User) -> CapacityRequest:
    """Send a draft on: to sign-off inside the organization when its policy says so, else to
    the automatic checks (a Celery task enqueued after commit)."""
    capacity_request = request_lock(capacity_request.pk)
    require_requester_or_manager(actor, capacity_request, "requests.create")
    request_require_action("submit", capacity_request.state)
    if capacity_request.is_reservation:
        # A draft may have sat until its window no longer qualifies.
        capacity_request_validate(
            kind=capacity_request.kind,
            sku=capacity_request.sku,
            region=capacity_request.region,
            gpu_count=capacity_request.gpu_count,
            starts_at=capacity_request.starts_at,
            ends_at=capacity_request.ends_at,
            lead_time=not capacity_request.is_extension,
        )
    return _submit(
        capacity_request, actor=actor, role=tenant_role(actor, capacity_request.organization)
    )


def _submit(
    capacity_request: CapacityRequest,
    *,
    actor: User,
    role: str | None,
    policy: ApprovalPolicy | None = None,
) -> CapacityRequest:
    """Submit a draft the caller holds (locked, or created in this transaction)."""
    request_require_action("submit", capacity_request.state)
    now = timezone.now()
    capacity_request.submitted_at = now
    if _signoff_needed(capacity_request, role=role, policy=policy):
        request_move(
            capacity_request,
            to_state=S.PENDING_INTERNAL_APPROVAL,
            actor=actor,
            at=now,
            update_fields=("submitted_at",),
        )
        notify.request_moved(capacity_request, actor=actor)
        return capacity_request
    if role in (Role.OWNER, Role.ADMIN):
        capacity_request.signed_off_by = actor
        capacity_request.signed_off_at = now
    request_move(
        capacity_request,
        to_state=S.SUBMITTED,
        actor=actor,
        at=now,
        update_fields=("submitted_at", "signed_off_by", "signed_off_at"),
    )
    _enqueue_checks(capacity_request)
    notify.request_moved(capacity_request, actor=actor)
    return capacity_request


@transaction.atomic
def capacity_request_sign_off(
    *, capacity_request: CapacityRequest, actor: User, approve: bool, reason: str = ""
) -> CapacityRequest:
    """An owner or admin signs a request off (on to the provider) or turns it down."""
    capacity_request = request_lock(capacity_request.pk)
    require_tenant(actor, capacity_request.organization, "requests.sign_off")
    request_require_action("sign_off", capacity_request.state)
    if capacity_request.requested_by_id == actor.pk:
        raise NotAllowed("Another owner or admin must sign off your own request.")
    if approve:
        capacity_request.signed_off_by = actor
        capacity_request.signed_off_at = timezone.now()
        request_move(
            capacity_request,
            to_state=S.SUBMITTED,
            actor=actor,
            reason=reason.strip(),
            update_fields=("signed_off_by", "signed_off_at"),
        )
        _enqueue_checks(capacity_request)
    else:
        reason = reason_required(reason)
        capacity_request.decided_by = actor
        capacity_request.decided_at = timezone.now()
        capacity_request.decision_reason = reason
        request_move(
            capacity_request,
            to_state=S.REJECTED,
            actor=actor,
            reason=reason,
            update_fields=("decided_by", "decided_at", "decision_reason"),
        )
    notify.request_moved(capacity_request, actor=actor)
    return capacity_request


def reason_required(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Give a reason: the requester will read it.", field="reason")
    return reason


# --- Comments and policy -------------------------------------------------------------------
@transaction.atomic
def request_comment_add(
    *, capacity_request: CapacityRequest, author: User, body: str
) -> RequestComment:
    """A comment on a request by a member who may see it or by the staff deciding it."""
    body = (body or "").strip()
    if not body:
        raise DomainError("Write something.", field="body")
    organization = capacity_request.organization
    if tenant_role(author, organization) is None:
        require_decider(author, organization)
    comment = RequestComment.all_objects.create(
        organization=organization, request=capacity_request, author=author, body=body
    )
    audit_record(
        organization=organization,
        actor=author,
        action="capacity_request.commented",
        target=capacity_request,
        changes={"comment": comment.pk},
    )
    notify.request_commented(capacity_request, comment=comment, actor=author)
    return comment


POLICY_FIELDS = (
    "auto_approve_max_gpus",
    "auto_approve_max_value",
    "auto_approve_requires_contract",
    "signoff_for_members",
    "signoff_above_value",
    "auto_accept_waitlist_offers",
)
# Sign-off and auto-accept are the tenant's own choices; auto-approval is the provider's.
TENANT_POLICY_FIELDS = ("signoff_for_members", "signoff_above_value", "auto_accept_waitlist_offers")


@transaction.atomic
def approval_policy_set(*, organization: Organization, actor: User, **fields) -> ApprovalPolicy:
    """Set an organization's approval policy. The account manager sets every field; the
    organization's owners/admins set only its sign-off and auto-accept choices."""
    unknown = set(fields) - set(POLICY_FIELDS)
    if unknown:
        name = sorted(unknown)[0]
        raise DomainError(f"Unknown policy field {name}.", field=name)
    if tenant_role(actor, organization) in (Role.OWNER, Role.ADMIN):
        not_theirs = set(fields) - set(TENANT_POLICY_FIELDS)
        if not_theirs:
            raise NotAllowed("Auto-approval is set by the organization's account manager.")
    else:
        require_decider(actor, organization)
    for name in ("auto_approve_max_value", "signoff_above_value"):
        if fields.get(name) is not None and Decimal(fields[name]) < 0:
            raise DomainError("A value cannot be negative.", field=name)
    if fields.get("auto_approve_max_gpus") is not None and fields["auto_approve_max_gpus"] < 0:
        raise DomainError("A GPU count cannot be negative.", field="auto_approve_max_gpus")
    policy, _ = ApprovalPolicy.all_objects.select_for_update().get_or_create(
        organization=organization
    )
    before = {name: str(getattr(policy, name)) for name in fields}
    for name, value in fields.items():
        setattr(policy, name, value)
    policy.updated_by = actor
    policy.updated_at = timezone.now()
    try:
        policy.full_clean(exclude=["organization"])
    except ValidationError as exc:
        # The model's own bounds (a count past its column, too many digits) on the field.
        name, errors = next(iter(exc.message_dict.items()))
        raise DomainError(" ".join(errors), field=name) from None
    policy.save()
    audit_record(
        organization=organization,
        actor=actor,
        action="approval_policy.updated",
        target=policy,
        changes={name: {"from": before[name], "to": str(v)} for name, v in fields.items()},
    )
    return policy
