"""The dashboard's month-to-date GPU-hours and spend and its contract burn-down summary: the
figures are the usage, statement and burn-down selectors' own; its lists, open count and quota
rows, read as written-out statements, are what the ORM queries read; and the page's query
count does not grow with the data."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from accounts.models import Organization
from contracts.charges import month_start
from contracts.selectors import contract_active_for
from contracts.selectors.spend import contract_burn_down
from contracts.selectors.statements import statement_get
from quotas.models import (
    CapacityRequest,
    GpuSku,
    OnDemandQuotaChange,
    Region,
    RequestEvent,
    Reservation,
)
from quotas.selectors.dashboard import (
    QuotaRow,
    contract_in_force_now,
    dashboard_figures_get,
    dashboard_lists_get,
)
from quotas.selectors.pages import waiting_on
from quotas.selectors.quotas import organization_quota_at
from quotas.workflow import REQUEST_OPEN, RequestState, ReservationState
from tests.factories import ContractFactory, ContractRateFactory, GpuSkuFactory
from usage.fleet import contracts_in_force

from .conftest import ingest, make_reservation

pytestmark = pytest.mark.django_db

# Session, user, organization and membership; the lists (four statements); the month's
# GPU-hours, the contracts, and the charges per month of the burn-down's windows and of this
# month (two queries); the organization switcher.
DASHBOARD_QUERIES = 13


@pytest.fixture
def running_contract(org, h100):
    """A contract in force today whatever the date: a year from two months back."""
    today = timezone.now().date()
    start = month_start(month_start(today) - timedelta(days=40))
    contract = ContractFactory(
        organization=org,
        number="ACME-RUNNING",
        term_start=start,
        term_end=date(start.year + 1, start.month, 1),
        committed_spend=Decimal("50000.00"),
    )
    ContractRateFactory(contract=contract, sku=h100, region=None, price_per_gpu_hour=Decimal("2.0"))
    return contract


def _this_hour():
    return timezone.now().replace(minute=0, second=0, microsecond=0)


def _last_month_hour():
    first = month_start(timezone.now().date())
    return timezone.now().replace(
        year=(first - timedelta(days=1)).year,
        month=(first - timedelta(days=1)).month,
        day=3,
        hour=5,
        minute=0,
        second=0,
        microsecond=0,
    )


def _url(org):
    return reverse("org_dashboard", kwargs={"org_slug": org.slug})


def test_dashboard_shows_the_selector_figures(client, org, owner, running_contract, h100, west):
    ingest(
        [
            (org, h100, west, _this_hour(), "10.5"),
            (org, h100, west, _last_month_hour(), "100"),
        ]
    )
    client.force_login(owner)
    response = client.get(_url(org))
    assert response.status_code == 200
    figures = response.context["figures"]
    now = figures.as_of

    # GPU-hours and spend of this UTC month only: last month's 100 GPU-hours are not in them.
    assert figures.gpu_hours == Decimal("10.5")
    assert figures.spend == Decimal("21.00")  # 10.5 GPU-hours at the contract's 2.00
    statement = statement_get(organization=org, month=month_start(now.date()), now=now)
    assert figures.spend == statement.usage_total + statement.reservation_total
    assert figures.currency == statement.currency == running_contract.currency

    burn = contract_burn_down(contract=running_contract, now=now)
    assert figures.contract == running_contract
    assert figures.burn_down == burn
    assert burn.consumed == Decimal("221.00")  # this month's and last month's usage

    body = response.content.decode()
    assert '<dd id="mtd-gpu-hours">10.5000</dd>' in body
    assert f'<dd id="mtd-spend">21.00 {statement.currency}</dd>' in body
    assert f'<dd id="burn-committed">50,000.00 {burn.currency}</dd>' in body
    assert f'<dd id="burn-consumed">221.00 {burn.currency}</dd>' in body
    assert f'<dd id="burn-percent">{burn.consumed_percent} %</dd>' in body
    assert burn.projected_underuse > 0
    assert f"{burn.projected_underuse:,}" in body
    assert "Projected under-use at term end" in body
    contract_url = reverse(
        "contract_detail", kwargs={"org_slug": org.slug, "pk": running_contract.pk}
    )
    assert f'href="{contract_url}"' in body


def test_dashboard_counts_reservation_charges_in_the_month_spend(
    org, owner, running_contract, h100, west
):
    now = timezone.now()
    make_reservation(
        org,
        h100,
        west,
        now - timedelta(hours=2),
        now + timedelta(days=2),
        gpu_count=8,
        contract=running_contract,
    )
    figures = dashboard_figures_get(organization=org, include_billing=True, now=now)
    statement = statement_get(organization=org, month=month_start(now.date()), now=now)
    assert statement.reservation_total > 0
    assert figures.spend == statement.usage_total + statement.reservation_total


def test_members_without_billing_see_gpu_hours_but_no_money(client, org, member, h100, west):
    ingest([(org, h100, west, _this_hour(), "4")])
    client.force_login(member)
    response = client.get(_url(org))
    figures = response.context["figures"]
    assert (figures.gpu_hours, figures.spend, figures.burn_down) == (Decimal("4"), None, None)
    body = response.content.decode()
    assert 'id="mtd-gpu-hours"' in body
    assert 'id="mtd-spend"' not in body and "burn-down" not in body.lower()


def test_without_a_contract_the_dashboard_says_so(client, org, owner):
    client.force_login(owner)
    response = client.get(_url(org))
    assert response.context["figures"].burn_down is None
    assert "No contract is in force today" in response.content.decode()
    assert response.context["figures"].spend == Decimal("0.00")


def test_dashboard_query_count_is_flat_as_data_grows(
    client, org, owner, running_contract, h100, west, east, django_assert_num_queries
):
    now = timezone.now()
    ingest([(org, h100, west, _this_hour(), "1")])
    make_reservation(
        org,
        h100,
        west,
        now - timedelta(hours=3),
        now + timedelta(days=1),
        contract=running_contract,
    )
    client.force_login(owner)
    client.get(_url(org))
    with django_assert_num_queries(DASHBOARD_QUERIES):
        client.get(_url(org))

    skus = [h100, *(GpuSkuFactory(code=f"sku-{n}") for n in range(3))]
    rows = []
    for sku in skus:
        for region in (west, east):
            for back in range(1, 30):
                rows.append((org, sku, region, _this_hour() - timedelta(hours=back * 7), "2"))
    ingest(rows)
    for n in range(4):
        make_reservation(
            org,
            h100,
            west,
            now - timedelta(days=n + 1),
            now + timedelta(days=n + 1),
            contract=running_contract,
        )
    with django_assert_num_queries(DASHBOARD_QUERIES):
        response = client.get(_url(org))
    assert response.context["figures"].gpu_hours > 1


def test_dashboard_lists_the_first_of_each_kind_and_counts_every_open_request(
    org, other_org, account_manager, h100, west, django_assert_num_queries
):
    """The lists are the ORM queries' rows (four statements, no query per row): the first ten
    of each, every open request counted; requests due at the same time in creation order,
    then by id."""
    now = timezone.now()
    for n in range(12):
        # Two running ones end at the same instant: the id breaks the tie.
        make_reservation(org, h100, west, now - timedelta(days=1), now + timedelta(hours=n // 2))
        make_reservation(
            org,
            h100,
            west,
            now + timedelta(hours=30 - n),
            now + timedelta(days=3),
            state=ReservationState.SCHEDULED,
        )
    make_reservation(
        org, h100, west, now - timedelta(days=3), now - timedelta(days=2), state="completed"
    )
    open_states = ["pending_approval", "counter_offered", "draft", "waitlisted"]
    created = now - timedelta(days=1)
    for n in range(13):
        CapacityRequest.all_objects.create(
            organization=org,
            kind=CapacityRequest.Kind.RESERVATION,
            sku=h100,
            region=west,
            gpu_count=8,
            starts_at=now + timedelta(days=5),
            ends_at=now + timedelta(days=6),
            state=open_states[n % 4],
            decision_due_at=now + timedelta(hours=n) if n % 4 == 0 else None,
            offer_expires_at=now + timedelta(hours=40 - n) if n % 4 == 1 else None,
            created_at=created + timedelta(minutes=n % 3),  # ties, broken by id
        )
    for state in ("rejected", "cancelled"):
        CapacityRequest.all_objects.create(
            organization=org,
            kind=CapacityRequest.Kind.QUOTA_INCREASE,
            sku=h100,
            region=west,
            on_demand_limit=4,
            state=state,
        )
    # Another organization's rows, first in every order: never on this dashboard.
    make_reservation(other_org, h100, west, now - timedelta(days=2), now + timedelta(minutes=1))
    make_reservation(other_org, h100, west, now, now + timedelta(days=1), state="scheduled")
    CapacityRequest.all_objects.create(
        organization=other_org,
        kind=CapacityRequest.Kind.RESERVATION,
        sku=h100,
        region=west,
        gpu_count=8,
        starts_at=now + timedelta(days=5),
        ends_at=now + timedelta(days=6),
        state="pending_approval",
        decision_due_at=now - timedelta(days=1),
    )
    organization = Organization.objects.select_related("account_manager").get(pk=org.pk)

    with django_assert_num_queries(4):
        lists = dashboard_lists_get(organization=organization)
        shown = [
            (r.reference, r.gpu_count, r.pool.sku.name, r.pool.region.code, r.starts_at, r.ends_at)
            for r in lists["active_reservations"] + lists["upcoming_reservations"]
        ] + [
            (r.reference, r.summary, r.get_state_display(), w.on, w.due_at)
            for r, w in lists["waiting_requests"]
        ]

    reservations = Reservation.objects.for_organization(org).select_related(
        "pool__sku", "pool__region"
    )
    active = list(reservations.filter(state="active").order_by("ends_at", "id")[:10])
    upcoming = list(reservations.filter(state="scheduled").order_by("starts_at", "id")[:10])
    assert lists["active_reservations"] == active
    assert lists["upcoming_reservations"] == upcoming
    open_requests = CapacityRequest.objects.for_organization(org).filter(state__in=REQUEST_OPEN)
    expected = list(
        open_requests.select_related("sku", "region", "organization__account_manager").order_by(
            Coalesce("decision_due_at", "offer_expires_at").asc(nulls_last=True),
            "created_at",
            "id",
        )[:10]
    )
    assert [r for r, _ in lists["waiting_requests"]] == expected
    assert shown == [
        (r.reference, r.gpu_count, r.pool.sku.name, r.pool.region.code, r.starts_at, r.ends_at)
        for r in active + upcoming
    ] + [(r.reference, r.summary, r.get_state_display(), *_waiting(r)) for r in expected]
    assert "account manager" in lists["waiting_requests"][0][1].on
    assert lists["open_request_count"] == open_requests.count() == 13


def _waiting(capacity_request):
    waiting = waiting_on(capacity_request)
    return waiting.on, waiting.due_at


def test_dashboard_counts_no_open_request_when_there_is_none(org):
    lists = dashboard_lists_get(organization=org)
    assert (lists["open_request_count"], lists["waiting_requests"]) == (0, [])
    assert (lists["active_reservations"], lists["upcoming_reservations"]) == ([], [])
    assert (lists["recent_events"], lists["quota_rows"]) == ([], [])


def test_recent_events_are_the_latest_ten_with_actor_and_subject(
    org, other_org, owner, h100, west, django_assert_num_queries
):
    now = timezone.now()
    day = timedelta(days=1)
    reservation = make_reservation(org, h100, west, now - day, now + day)
    request = reservation.request
    for n in range(12):
        RequestEvent.all_objects.create(
            organization=org,
            request=request,
            reservation=reservation if n % 3 == 0 else None,
            from_state="" if n % 4 == 0 else "pending_approval",
            to_state="approved" if n % 2 else "active",
            actor=owner if n % 2 else None,
            at=now - timedelta(minutes=n // 2),  # pairs at the same instant: newest id first
        )
    other = make_reservation(other_org, h100, west, now, now + timedelta(days=1))
    RequestEvent.all_objects.create(
        organization=other_org, request=other.request, to_state="approved", at=now
    )

    with django_assert_num_queries(4):
        events = dashboard_lists_get(organization=org)["recent_events"]
        shown = [_event_shown(e) for e in events]

    expected = list(
        RequestEvent.objects.for_organization(org)
        .select_related("actor", "request", "reservation")
        .order_by("-at", "-id")[:10]
    )
    assert events == expected
    labels = {**dict(RequestState.choices), **dict(ReservationState.choices)}
    for event in expected:
        event.from_label = labels.get(event.from_state, event.from_state)
        event.to_label = labels[event.to_state]
    assert shown == [_event_shown(e) for e in expected]
    assert {e.actor_id for e in events} == {owner.pk, None}
    assert {e.reservation_id for e in events} == {reservation.pk, None}


def _event_shown(event):
    subject = event.reservation.reference if event.reservation_id else event.request.reference
    actor = event.actor.display_name if event.actor else None
    return (event.pk, event.at, subject, event.from_state, event.from_label, event.to_label, actor)


def _quota_rows_by_orm(organization, at):
    """What the dashboard's quota rows stand for, read through the ORM: the quota at ``at``
    (``organization_quota_at``) and the GPUs of scheduled reservations still to start."""
    lines = {
        (q.sku_id, q.region_id): [q.reserved, q.on_demand, 0]
        for q in organization_quota_at(organization=organization, at=at)
    }
    upcoming = (
        Reservation.objects.for_organization(organization)
        .filter(state=ReservationState.SCHEDULED, starts_at__gt=at)
        .values("pool__sku_id", "pool__region_id")
        .annotate(gpus=Sum("gpu_count"))
        .order_by()
    )
    for row in upcoming:
        lines.setdefault((row["pool__sku_id"], row["pool__region_id"]), [0, 0, 0])[2] = row["gpus"]
    rows = [
        QuotaRow(GpuSku.objects.get(pk=sku).name, Region.objects.get(pk=region).code, r, o, n)
        for (sku, region), (r, o, n) in lines.items()
    ]
    return sorted(rows, key=lambda row: (row.sku_name, row.region_code))


def test_quota_rows_are_the_quota_now_and_what_is_scheduled(org, other_org, h100, west, east):
    now = timezone.now()
    a100 = GpuSkuFactory(code="a100", name="A100")
    l40 = GpuSkuFactory(code="l40s", name="L40S")
    day = timedelta(days=1)
    make_reservation(org, h100, west, now - day, now + day, gpu_count=8)
    make_reservation(org, h100, west, now - day, now, gpu_count=2)  # ended: half-open
    make_reservation(org, h100, west, now, now + day, gpu_count=3)  # starts now: counts
    make_reservation(org, h100, east, now + day, now + 2 * day, gpu_count=4, state="scheduled")
    make_reservation(org, h100, east, now - day, now + day, gpu_count=5, state="scheduled")
    make_reservation(org, a100, west, now - day, now + day, gpu_count=6, state="cancelled")
    make_reservation(org, a100, west, now + day, now + 2 * day, gpu_count=7, state="cancelled")
    released = make_reservation(org, a100, east, now - day, now + day, 9, state="released_early")
    Reservation.all_objects.filter(pk=released.pk).update(ended_at=now + timedelta(hours=1))
    gone = make_reservation(org, l40, east, now - day, now + day, 10, state="released_early")
    Reservation.all_objects.filter(pk=gone.pk).update(ended_at=now - timedelta(hours=1))
    make_reservation(org, l40, west, now - 2 * day, now - day, 11, state="completed")
    make_reservation(org, l40, west, now - day, now + day, 12, state="released_early")  # no end
    make_reservation(other_org, h100, west, now - day, now + day, gpu_count=13)
    for sku, region, limit, when in (
        (h100, west, 4, now - 2 * day),
        (h100, west, 6, now - day),  # the latest effective one counts
        (h100, west, 99, now + day),  # not yet effective
        (a100, west, 5, now - day),
        (l40, east, 0, now - day),  # a zero limit alone shows no row
        (l40, west, 2, now),
    ):
        OnDemandQuotaChange.all_objects.create(
            organization=org,
            sku=sku,
            region=region,
            old_limit=0,
            new_limit=limit,
            effective_at=when,
        )
    OnDemandQuotaChange.all_objects.create(
        organization=other_org, sku=l40, region=east, old_limit=0, new_limit=50, effective_at=now
    )

    for at in (now, now - 3 * day, now + timedelta(hours=2), now + 3 * day):
        rows = dashboard_lists_get(organization=org, now=at)["quota_rows"]
        assert rows == _quota_rows_by_orm(org, at), at
    rows = dashboard_lists_get(organization=org, now=now)["quota_rows"]
    assert len(rows) == 5  # no row for L40S in us-east-1: released, and a limit of zero
    totals = {(row.sku_name, row.region_code): row.total_now for row in rows}
    assert totals[("H100 SXM", "us-west-1")] == 8 + 3 + 6


def test_the_contract_in_force_now_is_contract_active_for(org, other_org):
    """The dashboard picks the contract in force from the contracts it reads for the charges:
    the one ``contract_active_for`` reads, whatever the statuses, overlaps and terms."""
    now = timezone.now()
    today = now.date()
    year = timedelta(days=365)

    def picked():
        in_force = contracts_in_force(organizations=[org.pk], start=date.min, end=date.max)
        return contract_in_force_now(in_force.get(org.pk, []), now)

    def expected():
        return contract_active_for(organization=org, at=now)

    assert picked() is expected() is None
    ContractFactory(organization=other_org, term_start=today - year, term_end=today + year)
    ContractFactory(organization=org, status="draft", term_start=today, term_end=today + year)
    ContractFactory(organization=org, status="expired", term_start=today - year, term_end=today)
    ContractFactory(organization=org, term_start=today - year, term_end=today)  # ended today
    ContractFactory(organization=org, term_start=today + timedelta(days=1), term_end=today + year)
    assert picked() is expected() is None
    first = ContractFactory(organization=org, term_start=today - year, term_end=today + year)
    assert picked() == expected() == first
    later = ContractFactory(
        organization=org, term_start=today - timedelta(days=3), term_end=today + year
    )
    same_start = ContractFactory(
        organization=org, term_start=today - timedelta(days=3), term_end=today + timedelta(days=1)
    )
    assert picked() == expected() == same_start  # the same start: the newer one
    ContractFactory(organization=org, status="terminated", term_start=today, term_end=today + year)
    assert picked() == expected() == same_start
    same_start.delete()
    assert picked() == expected() == later
