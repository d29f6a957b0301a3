"""Reads behind the request and reservation pages: each one a fixed number of queries,
whatever the number of rows (the page tests pin them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import (
    Case,
    Count,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.http import Http404
from django.utils import timezone

from accounts.models import Organization, StaffRole, User
from accounts.permissions import SUPERUSER
from accounts.selectors import (
    organization_list_for_staff,
    staff_can_see_organization,
    staff_role_for,
)
from contracts.models import Contract
from quotas.models import (
    CapacityPool,
    CapacityRequest,
    RequestCheck,
    RequestComment,
    RequestEvent,
    Reservation,
)
from quotas.workflow import REQUEST_OPEN, RequestState, ReservationState

S = RequestState

PAGE_REQUEST_RELATED = ("sku", "region", "requested_by", "organization__account_manager")


def _search_filter(search: str) -> Q:
    """``REQ-12`` or ``12`` finds a request by number; other words search the justification."""
    text = search.strip()
    number = text.upper().removeprefix("REQ-")
    q = Q(justification__icontains=text)
    # isdecimal, not isdigit: "²" is a digit to Python but not a number int() reads.
    if number.isdecimal() and number.isascii():
        q |= Q(pk=int(number))
    return q


# --- Requests ----------------------------------------------------------------------------------
def request_list(
    *,
    organization: Organization,
    state: str | None = None,
    sku=None,
    region=None,
    search: str | None = None,
) -> QuerySet[CapacityRequest]:
    qs = CapacityRequest.objects.for_organization(organization).select_related(
        *PAGE_REQUEST_RELATED
    )
    if state:
        qs = qs.filter(state=state)
    if sku is not None:
        qs = qs.filter(sku=sku)
    if region is not None:
        qs = qs.filter(region=region)
    if search:
        qs = qs.filter(_search_filter(search))
    return qs.order_by("-created_at", "-id")


def request_get(*, organization: Organization, pk: int) -> CapacityRequest:
    capacity_request = (
        CapacityRequest.objects.for_organization(organization)
        .select_related(*PAGE_REQUEST_RELATED)
        .filter(pk=pk)
        .first()
    )
    if capacity_request is None:
        raise Http404("No such request.")
    return capacity_request


STATE_LABELS = {**dict(RequestState.choices), **dict(ReservationState.choices)}


def _labelled(events: list[RequestEvent]) -> list[RequestEvent]:
    """Give each timeline event the readable names of its states."""
    for event in events:
        event.from_label = STATE_LABELS.get(event.from_state, event.from_state)
        event.to_label = STATE_LABELS.get(event.to_state, event.to_state)
    return events


def _request_detail(capacity_request: CapacityRequest) -> dict:
    org = capacity_request.organization_id
    events = _labelled(
        list(
            RequestEvent.objects.for_organization(org)
            .filter(request=capacity_request)
            .select_related("actor", "reservation")
            .order_by("at", "id")
        )
    )
    checks = list(
        RequestCheck.objects.for_organization(org)
        .filter(request=capacity_request)
        .order_by("-run", "id")
    )
    latest_run = checks[0].run if checks else None
    comments = list(
        RequestComment.objects.for_organization(org)
        .filter(request=capacity_request)
        .select_related("author")
        .order_by("created_at", "id")
    )
    reservation = (
        Reservation.objects.for_organization(org)
        .filter(request=capacity_request)
        .select_related("pool__sku", "pool__region")
        .first()
    )
    alternative_skus = list(capacity_request.alternative_skus.order_by("name"))
    alternative_regions = list(capacity_request.alternative_regions.order_by("code"))
    offer_pool = None
    if capacity_request.offer_pool_id:
        offer_pool = CapacityPool.objects.select_related("sku", "region").get(
            pk=capacity_request.offer_pool_id
        )
    return {
        "capacity_request": capacity_request,
        "events": events,
        "checks": [c for c in checks if c.run == latest_run],
        "checks_run": latest_run,
        "comments": comments,
        "reservation": reservation,
        "alternative_skus": alternative_skus,
        "alternative_regions": alternative_regions,
        "offer_pool": offer_pool,
        "waiting": waiting_on(capacity_request),
    }


def request_detail_get(*, organization: Organization, pk: int) -> dict:
    return _request_detail(request_get(organization=organization, pk=pk))


@dataclass(frozen=True)
class Waiting:
    """Who a request waits on, and by when."""

    on: str
    due_at: datetime | None
    sla: str  # "on_time", "due_soon", "overdue" or "" when no due time

    @property
    def sla_label(self) -> str:
        return {"on_time": "On time", "due_soon": "Due soon", "overdue": "Overdue"}.get(
            self.sla, ""
        )


def sla_status(due_at: datetime | None, *, now: datetime | None = None) -> str:
    if due_at is None:
        return ""
    now = now or timezone.now()
    if due_at <= now:
        return "overdue"
    if due_at - now <= timedelta(hours=settings.QUOTAS_REMINDER_LEAD_HOURS):
        return "due_soon"
    return "on_time"


def waiting_on(capacity_request: CapacityRequest) -> Waiting | None:
    """On whom an open request waits (a person or a step) and its due time."""
    state = capacity_request.state
    manager = capacity_request.organization.account_manager_id and getattr(
        capacity_request.organization, "account_manager", None
    )
    if state == S.DRAFT:
        return Waiting("the requester, to submit it", None, "")
    if state == S.PENDING_INTERNAL_APPROVAL:
        return Waiting("your organization's owners or admins (sign-off)", None, "")
    if state in (S.SUBMITTED, S.CHECKING):
        return Waiting("the automatic checks", None, "")
    if state == S.PENDING_APPROVAL:
        who = f"the account manager ({manager.display_name})" if manager else "the provider"
        due = capacity_request.decision_due_at
        return Waiting(who, due, sla_status(due))
    if state == S.PENDING_SECOND_APPROVAL:
        due = capacity_request.decision_due_at
        return Waiting("a capacity planner (second approval)", due, sla_status(due))
    if state in (S.COUNTER_OFFERED, S.OFFERED):
        due = capacity_request.offer_expires_at
        return Waiting("the customer, to accept or decline the offer", due, sla_status(due))
    if state == S.WAITLISTED:
        return Waiting("capacity to free up (waitlist)", capacity_request.starts_at, "")
    return None


# --- Reservations ------------------------------------------------------------------------------
def reservation_list(
    *, organization: Organization, state: str | None = None
) -> QuerySet[Reservation]:
    qs = Reservation.objects.for_organization(organization).select_related(
        "pool__sku", "pool__region", "request"
    )
    if state:
        qs = qs.filter(state=state)
    return qs.order_by("-starts_at", "-id")


def reservation_get(*, organization: Organization, pk: int) -> Reservation:
    reservation = (
        Reservation.objects.for_organization(organization)
        .select_related("pool__sku", "pool__region", "request", "organization", "hold")
        .filter(pk=pk)
        .first()
    )
    if reservation is None:
        raise Http404("No such reservation.")
    return reservation


def reservation_detail_get(*, organization: Organization, pk: int) -> dict:
    reservation = reservation_get(organization=organization, pk=pk)
    events = _labelled(
        list(
            RequestEvent.objects.for_organization(organization)
            .filter(Q(reservation=reservation) | Q(request_id=reservation.request_id))
            .select_related("actor", "reservation")
            .order_by("at", "id")
        )
    )
    extensions = list(
        CapacityRequest.objects.for_organization(organization)
        .filter(extends_reservation=reservation)
        .select_related("sku", "region")
        .order_by("-created_at")
    )
    return {"reservation": reservation, "events": events, "extensions": extensions}


# --- Provider staff ----------------------------------------------------------------------------
STAFF_REQUEST_RELATED = ("sku", "region", "requested_by", "organization__account_manager")
# What a queue row shows (reference, organization, summary): fewer joins to plan per page.
STAFF_QUEUE_RELATED = ("sku", "region", "organization")


def _with_latest_checks(qs: QuerySet[CapacityRequest]) -> QuerySet[CapacityRequest]:
    return qs.prefetch_related(
        Prefetch(
            "checks",
            queryset=RequestCheck.all_objects.order_by("-run", "id"),
            to_attr="all_checks",
        )
    )


def staff_approval_inbox(*, user: User) -> QuerySet[CapacityRequest]:
    """Requests awaiting an account manager: their organizations' (all, for superusers),
    sorted by decision due time (soonest first, undated last)."""
    role = staff_role_for(user)
    qs = CapacityRequest.objects.unscoped_for_staff().filter(state=S.PENDING_APPROVAL)
    if role == StaffRole.ACCOUNT_MANAGER:
        qs = qs.filter(organization__account_manager=user)
    elif role not in (SUPERUSER, StaffRole.CAPACITY_PLANNER):
        return CapacityRequest.objects.none().unscoped_for_staff()
    return _with_latest_checks(
        qs.select_related(*STAFF_QUEUE_RELATED).order_by("decision_due_at", "submitted_at", "id")
    )


def staff_second_approval_queue(*, user: User) -> QuerySet[CapacityRequest]:
    """Requests awaiting a capacity planner's second approval, soonest due first."""
    if staff_role_for(user) not in (SUPERUSER, StaffRole.CAPACITY_PLANNER):
        return CapacityRequest.objects.none().unscoped_for_staff()
    return _with_latest_checks(
        CapacityRequest.objects.unscoped_for_staff()
        .filter(state=S.PENDING_SECOND_APPROVAL)
        .select_related(*STAFF_QUEUE_RELATED)
        .order_by("decision_due_at", "submitted_at", "id")
    )


def staff_request_get(*, user: User, pk: int) -> CapacityRequest:
    """A request for a staff member who may see its organization, else 404."""
    capacity_request = (
        CapacityRequest.objects.unscoped_for_staff()
        .select_related(*STAFF_REQUEST_RELATED, "first_approved_by")
        .filter(pk=pk)
        .first()
    )
    if capacity_request is None or not staff_can_see_organization(
        user=user, organization=capacity_request.organization
    ):
        raise Http404("No such request.")
    return capacity_request


def staff_request_detail_get(*, user: User, pk: int) -> dict:
    return _request_detail(staff_request_get(user=user, pk=pk))


def staff_inbox_counts(*, user: User) -> dict[str, int]:
    return {
        "approvals": staff_approval_inbox(user=user).count(),
        "second_approvals": staff_second_approval_queue(user=user).count(),
    }


def latest_checks(capacity_request: CapacityRequest) -> dict[str, RequestCheck]:
    """The latest run's checks by name, from the ``all_checks`` prefetch."""
    checks = getattr(capacity_request, "all_checks", [])
    if not checks:
        return {}
    run = checks[0].run
    return {c.name: c for c in checks if c.run == run}


@dataclass(frozen=True)
class Glance:
    """What an approver needs at a glance, as the automatic checks recorded it."""

    checked_at: datetime | None
    free_min: int | None  # least free GPUs in the requested pool over the window
    price: Decimal | None
    currency: str
    contract: str | None
    contract_outcome: str | None


def request_glance(capacity_request: CapacityRequest) -> Glance:
    """Capacity, contract cover and price from the latest checks (``all_checks`` prefetch)."""
    checks = latest_checks(capacity_request)
    capacity = checks.get("capacity")
    contract = checks.get("contract")
    free_min = None
    if capacity is not None:
        pools = capacity.figures.get("pools") or []
        if pools:
            free_min = pools[0].get("free_min")
    figures = contract.figures if contract is not None else {}
    return Glance(
        checked_at=max((c.created_at for c in checks.values()), default=None),
        free_min=free_min,
        price=Decimal(figures["value"]) if figures.get("value") else None,
        currency=figures.get("currency", "USD"),
        contract=figures.get("contract"),
        contract_outcome=contract.outcome if contract is not None else None,
    )


@dataclass(frozen=True)
class LiveFigures:
    """Capacity and price now, for the approver deciding a reservation request."""

    free_by_pool: list[tuple[CapacityPool, int, bool]]  # pool, least free, whether it fits
    quote: object | None  # quotas.pricing.Quote for the requested pool


def staff_live_figures(
    *, capacity_request: CapacityRequest, pools: list[CapacityPool]
) -> LiveFigures | None:
    """What fits now in each pool the request accepts, and today's quote (not the checks')."""
    if not capacity_request.is_reservation or not pools:
        return None
    from quotas.pricing import quote_price
    from quotas.selectors.availability import pool_free_min_by_pool

    free = pool_free_min_by_pool(
        pools=pools, starts_at=capacity_request.starts_at, ends_at=capacity_request.ends_at
    )
    quote = quote_price(
        organization=capacity_request.organization,
        sku=capacity_request.sku,
        region=capacity_request.region,
        gpu_count=capacity_request.gpu_count,
        starts_at=capacity_request.starts_at,
        ends_at=capacity_request.ends_at,
    )
    return LiveFigures(
        free_by_pool=[
            (pool, free[pool.pk], free[pool.pk] >= capacity_request.gpu_count) for pool in pools
        ],
        quote=quote,
    )


# --- Capacity planner --------------------------------------------------------------------------
@dataclass(frozen=True)
class HeatCell:
    pool: CapacityPool
    capacity: int  # installed now
    free_now: int
    free_min: int  # least free over the coming days

    @property
    def committed_pct(self) -> int:
        """Share of today's capacity committed at the busiest instant of the coming days."""
        if self.capacity <= 0:
            return 100
        return max(0, min(100, round(100 * (self.capacity - self.free_min) / self.capacity)))

    @property
    def level(self) -> str:
        pct = self.committed_pct
        return "high" if pct >= 90 else "medium" if pct >= 70 else "low"


def capacity_heatmap(*, days: int = 30, now: datetime | None = None) -> dict:
    """Regions x GPU types: capacity now, free now and least free over the next ``days``.
    Four queries whatever the number of pools."""
    from quotas.models import CapacityChange
    from quotas.selectors.availability import pool_free_min_by_pool

    now = now or timezone.now()
    pools = list(
        CapacityPool.objects.filter(active=True, region__active=True, sku__active=True)
        .select_related("region", "sku")
        .order_by("region__code", "sku__name")
    )
    capacity = dict(
        CapacityChange.objects.filter(pool__in=pools, effective_at__lte=now)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .values("pool_id")
        .annotate(gpus=Sum("gpus_delta"))
        .values_list("pool_id", "gpus")
        .order_by()
    )
    free_now = pool_free_min_by_pool(
        pools=pools, starts_at=now, ends_at=now + timedelta(microseconds=1)
    )
    free_min = pool_free_min_by_pool(pools=pools, starts_at=now, ends_at=now + timedelta(days=days))
    regions = sorted({p.region for p in pools}, key=lambda r: r.code)
    skus = sorted({p.sku for p in pools}, key=lambda s: s.name)
    cells = {
        (p.region_id, p.sku_id): HeatCell(
            pool=p,
            capacity=capacity.get(p.pk, 0),
            free_now=free_now.get(p.pk, 0),
            free_min=free_min.get(p.pk, 0),
        )
        for p in pools
    }
    rows = [(region, [cells.get((region.pk, sku.pk)) for sku in skus]) for region in regions]
    return {"skus": skus, "rows": rows, "days": days}


REQUEST_WAITING_FOR_CAPACITY = frozenset(
    {
        S.PENDING_INTERNAL_APPROVAL,
        S.SUBMITTED,
        S.CHECKING,
        S.PENDING_APPROVAL,
        S.PENDING_SECOND_APPROVAL,
        S.WAITLISTED,
    }
)


@dataclass(frozen=True)
class PoolDay:
    day: date
    capacity: int
    held: int
    requested: int  # GPUs asked for by undecided requests that hold nothing yet


def pool_overview_get(*, pool_id: int, days: int = 90, today: date | None = None) -> dict:
    """One pool over the coming ``days``: capacity, held and requested per UTC day, its
    waitlist and its upcoming reservations (every organization: planner code)."""
    from quotas.selectors.availability import pool_timeline

    pool = CapacityPool.objects.select_related("region", "sku").filter(pk=pool_id).first()
    if pool is None:
        raise Http404("No such pool.")
    today = today or timezone.now().date()
    end = today + timedelta(days=days)
    timeline = pool_timeline(pool=pool, start=today, end=end)
    window_start = datetime.combine(today, time.min, tzinfo=UTC)
    window_end = datetime.combine(end, time.min, tzinfo=UTC)
    undecided = list(
        CapacityRequest.objects.unscoped_for_staff()
        .filter(
            sku_id=pool.sku_id,
            region_id=pool.region_id,
            kind=CapacityRequest.Kind.RESERVATION,
            state__in=REQUEST_WAITING_FOR_CAPACITY,
            starts_at__lt=window_end,
            ends_at__gt=window_start,
        )
        .select_related("organization")
        .order_by("created_at", "id")
    )
    requested: dict[date, int] = {}
    for r in undecided:
        day = max(r.starts_at.astimezone(UTC).date(), today)
        last = min((r.ends_at - timedelta(microseconds=1)).astimezone(UTC).date(), end)
        while day <= last and day < end:
            requested[day] = requested.get(day, 0) + r.gpu_count
            day += timedelta(days=1)
    reservations = list(
        Reservation.objects.unscoped_for_staff()
        .filter(pool=pool, state__in=[ReservationState.SCHEDULED, ReservationState.ACTIVE])
        .filter(ends_at__gt=window_start)
        .select_related("organization")
        .order_by("starts_at", "id")
    )
    return {
        "pool": pool,
        "days": [PoolDay(d.day, d.capacity, d.held, requested.get(d.day, 0)) for d in timeline],
        "waitlist": [r for r in undecided if r.state == S.WAITLISTED],
        "undecided": undecided,
        "reservations": reservations,
    }


def waitlist_list() -> QuerySet[CapacityRequest]:
    """Every waitlisted request in the order freed capacity is offered: extensions of running
    reservations first, then first submitted first served."""
    return (
        CapacityRequest.objects.unscoped_for_staff()
        .filter(state=S.WAITLISTED)
        .select_related("organization", "sku", "region")
        .annotate(
            extension_first=Case(
                When(extends_reservation__isnull=False, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("extension_first", "submitted_at", "pk")
    )


def staff_organization_overview(*, user: User) -> QuerySet[Organization]:
    """The organizations a staff member looks after, each with its open requests, active
    contract and approval policy: one query."""
    today = timezone.now().date()
    active_contract = Contract.all_objects.filter(
        organization=OuterRef("pk"), status="active", term_start__lte=today, term_end__gt=today
    ).order_by("-term_start")
    return (
        organization_list_for_staff(user=user)
        .select_related("approval_policy", "account_manager")
        .annotate(
            open_requests=Count(
                "capacity_requests",
                filter=Q(capacity_requests__state__in=REQUEST_OPEN),
                distinct=True,
            ),
            awaiting_decision=Count(
                "capacity_requests",
                filter=Q(
                    capacity_requests__state__in=[
                        S.PENDING_APPROVAL,
                        S.PENDING_SECOND_APPROVAL,
                    ]
                ),
                distinct=True,
            ),
            contract_number=Subquery(active_contract.values("number")[:1]),
            contract_currency=Subquery(active_contract.values("currency")[:1]),
            contract_committed=Subquery(active_contract.values("committed_spend")[:1]),
            contract_term_end=Subquery(active_contract.values("term_end")[:1]),
            contract_id=Subquery(active_contract.values("pk")[:1]),
        )
        .order_by("name")
    )


def staff_organization_list(
    *,
    user: User,
    search: str = "",
    status: str = "",
    awaiting_only: bool = False,
) -> QuerySet[Organization]:
    """``staff_organization_overview`` searched by name or slug, filtered by status and to
    those with requests awaiting a decision; ordered by name (then id, for stable pages)."""
    qs = staff_organization_overview(user=user)
    if search.strip():
        text = search.strip()
        qs = qs.filter(Q(name__icontains=text) | Q(slug__icontains=text))
    if status in (Organization.Status.ACTIVE, Organization.Status.SUSPENDED):
        qs = qs.filter(status=status)
    if awaiting_only:
        qs = qs.filter(awaiting_decision__gt=0)
    return qs.order_by("name", "pk")


def staff_organization_usage_cost(
    *, organization_ids: list[int], start: date, end: date
) -> dict[int, dict[str, Decimal]]:
    """Billable usage cost per organization and currency over the UTC days [start, end),
    priced by ``usage.fleet.usage_cost_by_organization`` (as statements price it: each
    organization's (SKU, region, contract) line over the window rounded once); usage inside a
    reservation is covered by the reservation and not counted, as in ``usage_cost_total``.
    At most five queries, whatever the organizations and records."""
    from usage.fleet import usage_cost_by_organization

    if not organization_ids:
        return {}
    cost: dict[int, dict[str, Decimal]] = {}
    for line in usage_cost_by_organization(
        organizations=organization_ids, start=start, end=end, reservations=False
    ).lines:
        per_org = cost.setdefault(line.organization_id, {})
        per_org[line.currency] = per_org.get(line.currency, Decimal("0.00")) + line.amount
    return cost


def staff_contract_consumed(
    *, contract_ids: list[int], now: datetime | None = None
) -> dict[int, Decimal]:
    """Consumed spend to date of several organizations' contracts, as the burn-down computes
    it (``contracts.selectors.spend.contract_consumed_spend_many``): every charge of the
    organization inside the term up to ``now`` (usage outside reservations by month and rate,
    each line rounded once, ``usage.fleet.usage_cost_by_organization``, plus the
    reservations' holds by month), summed whatever priced it. At most eight queries, whatever
    the contracts."""
    from contracts.charges import (
        ChargeSource,
        charge_lines_from,
        day_after_last,
        reservation_charge_rows_by_organization,
        utc_midnight,
    )
    from usage.fleet import usage_cost_by_organization

    now = now or timezone.now()
    if not contract_ids:
        return {}
    contracts = list(Contract.all_objects.filter(pk__in=contract_ids))
    windows: dict[int, tuple[datetime, datetime]] = {}  # organization -> [from, to)
    for contract in contracts:
        if contract.status == Contract.Status.DRAFT:
            continue
        start = utc_midnight(contract.term_start)
        windows[contract.organization_id] = (
            start,
            max(start, min(now, utc_midnight(contract.term_end))),
        )
    if not windows:
        return {}
    # Usage days that began before the window's end count (a partial last day as metered).
    days = {
        org_id: (start.astimezone(UTC).date(), day_after_last(end))
        for org_id, (start, end) in windows.items()
    }
    # Take-or-pay: all spend in the term counts, whatever priced it.
    consumed: dict[int, Decimal] = {org_id: Decimal("0.00") for org_id in windows}
    for line in usage_cost_by_organization(
        organizations=list(days),
        start=min(day_from for day_from, _ in days.values()),
        end=max(day_to for _, day_to in days.values()),
        windows=days,
        by_month=True,
        reservations=False,
    ).lines:
        consumed[line.organization_id] += line.amount

    reservations = reservation_charge_rows_by_organization(
        organization_ids=list(windows),
        start=min(start for start, _ in windows.values()),
        end=max(end for _, end in windows.values()),
    )
    for org_id, held in reservations.items():
        start, end = windows[org_id]
        source = ChargeSource(start=start, end=end, usage_days=[], reservations=held)
        consumed[org_id] += sum(
            (line.amount for line in charge_lines_from(source, start=start, end=end)),
            Decimal("0.00"),
        )
    return {
        contract.pk: consumed[contract.organization_id]
        for contract in contracts
        if contract.organization_id in consumed
    }
