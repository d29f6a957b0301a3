"""Demo requests and reservations in every state, for Acme and Globex across the regions.

Run by ``manage.py seed_demo`` after the accounts, catalog and contracts seeders. Everything goes
through the workflow services (checks, holds under the pool lock, audit, notifications), with
the clock of the scans passed in where a step belongs to the past or the future.

Deterministic: windows are placed from a fixed anchor, Monday 00:00 UTC of the week the demo is
first loaded, so a demo week always shows upcoming, running and finished reservations.
Idempotent: each demo request is found again by its justification, which is unique; a second
run adds nothing. (Requests left "submitted" or "checking" move on as soon as a worker runs:
that is what those states are for.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import Organization, User
from quotas.checks import capacity_request_run_checks
from quotas.models import (
    ApprovalPolicy,
    CapacityPool,
    CapacityRequest,
    GpuSku,
    Region,
    Reservation,
)
from quotas.services import (
    approval_policy_set,
    capacity_request_approve,
    capacity_request_counter_offer,
    capacity_request_create,
    capacity_request_expire,
    capacity_request_reject,
    capacity_request_waitlist,
    capacity_request_withdraw,
    request_comment_add,
    reservation_activate,
    reservation_cancel,
    reservation_complete,
    reservation_release_early,
    waitlist_offer,
)
from quotas.services._base import request_lock, request_move, request_record_created
from quotas.services.decisions import pending_approval_enter, reservation_grant
from quotas.workflow import RequestState as S

MANAGER = "manager@provider.example"
PLANNER = "planner@provider.example"


@dataclass(frozen=True)
class Demo:
    org: str
    requester: str
    justification: str  # unique: the demo's key
    sku: str
    region: str
    gpus: int
    start_days: float  # from the anchor
    days: float
    outcome: str  # a request state, or "res:<reservation state>"
    alt_regions: tuple[str, ...] = ()


DEMOS = [
    # Upcoming decisions and offers.
    Demo("acme", "dev@acme.example", "Draft: Q1 pretraining sweep", "h100-sxm-80gb",
         "us-east-2", 256, 28, 14, S.DRAFT),
    Demo("acme", "dev@acme.example", "Foundation model v4 pretraining (needs sign-off)",
         "h200-141gb", "us-east-2", 1024, 21, 60, S.PENDING_INTERNAL_APPROVAL),
    Demo("acme", "owner@acme.example", "Eval harness burst", "a100-sxm-80gb", "us-east-1",
         64, 14, 3, S.SUBMITTED),
    Demo("acme", "owner@acme.example", "Retrieval index rebuild", "a100-sxm-80gb",
         "us-central-1", 128, 16, 2, S.CHECKING),
    Demo("acme", "dev@acme.example", "Speech model fine-tuning", "h100-sxm-80gb",
         "us-east-1", 128, 15, 10, S.PENDING_APPROVAL, ("us-west-1",)),
    Demo("globex", "owner@globex.example", "Inference fleet expansion for launch",
         "h100-sxm-80gb", "us-east-2", 512, 18, 30, S.PENDING_SECOND_APPROVAL),
    Demo("globex", "owner@globex.example", "Batch transcription backlog", "a100-sxm-80gb",
         "us-west-2", 256, 12, 7, S.COUNTER_OFFERED),
    Demo("acme", "owner@acme.example", "Vision model ablations before hall C",
         "h200-141gb", "us-central-1", 256, 20, 10, S.WAITLISTED),
    Demo("globex", "owner@globex.example", "Recommendation retraining window",
         "l40s-48gb", "us-central-1", 96, 10, 5, S.OFFERED),
    # Decided.
    Demo("acme", "dev@acme.example", "RLHF reward model training", "h100-sxm-80gb",
         "us-east-2", 384, 14, 21, "res:scheduled"),
    Demo("acme", "owner@acme.example", "Nightly regression cluster", "h100-sxm-80gb",
         "us-east-1", 16, 9, 7, "res:scheduled"),
    Demo("globex", "owner@globex.example", "Holiday traffic inference", "h100-sxm-80gb",
         "us-west-1", 256, 8, 14, S.REJECTED),
    Demo("acme", "dev@acme.example", "Duplicate of the speech run", "h100-sxm-80gb",
         "us-east-1", 64, 15, 10, S.WITHDRAWN),
    Demo("globex", "owner@globex.example", "Data-centre move rehearsal", "a40-48gb",
         "us-east-2", 64, 11, 4, "res:cancelled"),
    Demo("acme", "dev@acme.example", "Hackathon GPUs (nobody decided in time)",
         "rtx-a6000-48gb", "us-west-1", 32, 7, 2, S.EXPIRED),
    # Running and past reservations.
    Demo("acme", "owner@acme.example", "Production inference, autumn", "h100-sxm-80gb",
         "us-east-2", 512, -7, 28, "res:active"),
    Demo("globex", "owner@globex.example", "Search ranking model serving", "a100-sxm-80gb",
         "us-central-1", 192, -3, 17, "res:active"),
    Demo("acme", "owner@acme.example", "Summer pretraining run", "h200-141gb",
         "us-west-2", 1024, -70, 42, "res:completed"),
    Demo("globex", "owner@globex.example", "Fraud model retraining", "a100-sxm-40gb",
         "us-central-1", 128, -35, 14, "res:completed"),
    Demo("acme", "dev@acme.example", "Ablation study (finished early)", "a100-sxm-80gb",
         "us-east-1", 64, -21, 14, "res:released_early"),
]  # fmt: skip


def anchor() -> datetime:
    """Monday 00:00 UTC of the current week."""
    now = timezone.now().astimezone(UTC)
    monday = now - timedelta(days=now.weekday())
    return monday.replace(hour=0, minute=0, second=0, microsecond=0)


def _user(email: str) -> User:
    return User.objects.get(email=email)


@transaction.atomic
def seed() -> str:
    organizations = {o.slug: o for o in Organization.objects.filter(slug__in=["acme", "globex"])}
    if len(organizations) < 2 or not GpuSku.objects.exists():
        return "needs the demo organizations and catalog first"
    manager, planner = _user(MANAGER), _user(PLANNER)
    _policies(organizations, manager)
    base = anchor()
    made = 0
    for demo in DEMOS:
        organization = organizations[demo.org]
        exists = (
            CapacityRequest.objects.for_organization(organization)
            .filter(justification=demo.justification)
            .exists()
        )
        if exists:
            continue
        _make(demo, organization, base, manager, planner)
        made += 1
    made += _quota_increase(organizations["acme"], manager)
    states = (
        CapacityRequest.objects.unscoped_for_staff()
        .filter(organization__in=organizations.values())
        .values_list("state", flat=True)
        .distinct()
    )
    return f"{made} demo requests added; requests in {len(set(states))} states"


def _policies(organizations: dict[str, Organization], manager: User) -> None:
    """Acme: small requests within the contract are approved at once, big ones need an owner's
    sign-off. Globex: everything is decided by a person. Set once: a policy changed by hand
    since stays as it is."""
    policies = {
        "acme": {
            "auto_approve_max_gpus": 16,
            "auto_approve_max_value": Decimal("50000"),
            "auto_approve_requires_contract": True,
            "signoff_above_value": Decimal("1000000"),
        },
        "globex": {"auto_accept_waitlist_offers": False},
    }
    for slug, fields in policies.items():
        organization = organizations[slug]
        if not ApprovalPolicy.objects.for_organization(organization).exists():
            approval_policy_set(organization=organization, actor=manager, **fields)


def _make(demo: Demo, organization: Organization, base: datetime, manager, planner) -> None:
    requester = _user(demo.requester)
    sku = GpuSku.objects.get(code=demo.sku)
    region = Region.objects.get(code=demo.region)
    starts_at = base + timedelta(days=demo.start_days)
    ends_at = starts_at + timedelta(days=demo.days)
    if demo.start_days < 0:
        _past(demo, organization, requester, sku, region, starts_at, ends_at, manager)
        return
    capacity_request = capacity_request_create(
        organization=organization,
        actor=requester,
        sku=sku,
        region=region,
        gpu_count=demo.gpus,
        starts_at=starts_at,
        ends_at=ends_at,
        justification=demo.justification,
        alternative_regions=list(Region.objects.filter(code__in=demo.alt_regions)),
        waitlist_if_unavailable=demo.outcome == S.WAITLISTED,
        submit=demo.outcome != S.DRAFT,
    )
    if demo.outcome in (S.DRAFT, S.PENDING_INTERNAL_APPROVAL, S.SUBMITTED):
        return
    if demo.outcome == S.CHECKING:
        with transaction.atomic():
            locked = request_lock(capacity_request.pk)
            request_move(locked, to_state=S.CHECKING, actor=None)
        return
    capacity_request_run_checks(request_id=capacity_request.pk)
    capacity_request.refresh_from_db()
    outcome = demo.outcome
    if outcome == S.PENDING_APPROVAL:
        request_comment_add(
            capacity_request=capacity_request,
            author=requester,
            body="Either region works for us; east is closer to our data.",
        )
    elif outcome == S.PENDING_SECOND_APPROVAL:
        capacity_request_approve(capacity_request=capacity_request, actor=manager)
    elif outcome == S.COUNTER_OFFERED:
        capacity_request_counter_offer(
            capacity_request=capacity_request,
            actor=manager,
            gpu_count=demo.gpus // 2,
            note="Half now; the rest frees up the week after.",
        )
    elif outcome == S.WAITLISTED and capacity_request.state != S.WAITLISTED:
        capacity_request_waitlist(capacity_request=capacity_request, actor=requester)
    elif outcome == S.OFFERED:
        capacity_request_waitlist(capacity_request=capacity_request, actor=requester)
        pool = CapacityPool.objects.get(sku=sku, region=region)
        waitlist_offer(request_id=capacity_request.pk, pool=pool)
    elif outcome == S.REJECTED:
        capacity_request_reject(
            capacity_request=capacity_request,
            actor=manager,
            reason="us-west-1 H100s are committed to a launch that week; try us-east-2.",
        )
    elif outcome == S.WITHDRAWN:
        capacity_request_withdraw(
            capacity_request=capacity_request, actor=requester, reason="Filed twice."
        )
    elif outcome == S.EXPIRED:
        capacity_request_expire(request_id=capacity_request.pk, now=starts_at)
    elif outcome.startswith("res:"):
        if capacity_request.state != S.APPROVED:  # small ones are approved by policy
            capacity_request_approve(capacity_request=capacity_request, actor=manager)
            capacity_request.refresh_from_db()
        if capacity_request.state == S.PENDING_SECOND_APPROVAL:
            capacity_request_approve(capacity_request=capacity_request, actor=planner)
        if outcome == "res:cancelled":
            reservation = Reservation.objects.for_organization(organization).get(
                request=capacity_request
            )
            reservation_cancel(
                reservation=reservation, actor=requester, reason="The move was postponed."
            )


def _past(demo, organization, requester, sku, region, starts_at, ends_at, manager) -> None:
    """A reservation whose window began before now: decided back then, then run by the scans'
    services with their clock set to the instants they would have run at."""
    submitted_at = starts_at - timedelta(days=10)
    capacity_request = CapacityRequest.all_objects.create(
        organization=organization,
        sku=sku,
        region=region,
        gpu_count=demo.gpus,
        starts_at=starts_at,
        ends_at=ends_at,
        justification=demo.justification,
        requested_by=requester,
        state=S.DRAFT,
        created_at=submitted_at,
        submitted_at=submitted_at,
    )
    request_record_created(capacity_request, actor=requester, changes={"demo": True})
    with transaction.atomic():
        locked = request_lock(capacity_request.pk)
        request_move(locked, to_state=S.SUBMITTED, actor=requester, at=submitted_at)
        request_move(locked, to_state=S.CHECKING, actor=None, at=submitted_at)
        pending_approval_enter(locked, actor=None)
        pool = CapacityPool.objects.select_related("sku", "region").get(sku=sku, region=region)
        reservation = reservation_grant(
            locked,
            actor=manager,
            pool=pool,
            gpu_count=demo.gpus,
            starts_at=starts_at,
            ends_at=ends_at,
        )
    reservation_activate(reservation_id=reservation.pk, now=starts_at)
    outcome = demo.outcome
    if outcome == "res:completed":
        reservation_complete(reservation_id=reservation.pk, now=ends_at)
    elif outcome == "res:released_early":
        release_at = starts_at + (ends_at - starts_at) / 2
        reservation_release_early(
            reservation=reservation,
            actor=requester,
            reason="The ablations converged early.",
            at=release_at,
        )


def _quota_increase(organization: Organization, manager: User) -> int:
    justification = "On-demand headroom for CI and notebooks"
    if (
        CapacityRequest.objects.for_organization(organization)
        .filter(justification=justification)
        .exists()
    ):
        return 0
    capacity_request = capacity_request_create(
        organization=organization,
        actor=_user("owner@acme.example"),
        kind=CapacityRequest.Kind.QUOTA_INCREASE,
        sku=GpuSku.objects.get(code="h100-sxm-80gb"),
        region=Region.objects.get(code="us-east-1"),
        on_demand_limit=64,
        justification=justification,
    )
    capacity_request_run_checks(request_id=capacity_request.pk)
    capacity_request.refresh_from_db()
    if capacity_request.state == S.PENDING_APPROVAL:
        capacity_request_approve(capacity_request=capacity_request, actor=manager)
    return 1
