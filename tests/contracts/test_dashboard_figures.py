"""The dashboard's month-to-date GPU-hours and spend and its contract burn-down summary: the
figures are the usage, statement and burn-down selectors' own, its lists and open count are
what separate queries would read, and the page's query count does not grow with the data."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from contracts.charges import month_start
from contracts.selectors.spend import contract_burn_down
from contracts.selectors.statements import statement_get
from quotas.models import CapacityRequest, Reservation
from quotas.selectors.dashboard import dashboard_figures_get
from quotas.selectors.pages import dashboard_get
from quotas.workflow import REQUEST_OPEN, ReservationState
from tests.factories import ContractFactory, ContractRateFactory, GpuSkuFactory

from .conftest import ingest, make_reservation

pytestmark = pytest.mark.django_db

# Session, user, organization and membership; the lists; the month's GPU-hours, the contract,
# and the charges per month of the burn-down's windows and of this month (three queries).
DASHBOARD_QUERIES = 19


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


def test_dashboard_lists_the_first_of_each_kind_and_counts_every_open_request(org, h100, west):
    """The open requests carry their count (no query of every request's state): the count is
    of every open request, the lists the first ten of each."""
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

    lists = dashboard_get(organization=org)

    reservations = Reservation.objects.for_organization(org)
    assert lists["active_reservations"] == list(
        reservations.filter(state=ReservationState.ACTIVE).order_by("ends_at", "id")[:10]
    )
    assert lists["upcoming_reservations"] == list(
        reservations.filter(state=ReservationState.SCHEDULED).order_by("starts_at", "id")[:10]
    )
    open_requests = CapacityRequest.objects.for_organization(org).filter(state__in=REQUEST_OPEN)
    assert [r for r, _ in lists["waiting_requests"]] == list(
        open_requests.order_by(
            Coalesce("decision_due_at", "offer_expires_at").asc(nulls_last=True), "created_at"
        )[:10]
    )
    assert lists["open_request_count"] == open_requests.count() == 13
    assert lists["active_reservations"][0].pool.sku == h100  # with their pools, no query


def test_dashboard_counts_no_open_request_when_there_is_none(org):
    lists = dashboard_get(organization=org)
    assert (lists["open_request_count"], lists["waiting_requests"]) == (0, [])
    assert (lists["active_reservations"], lists["upcoming_reservations"]) == ([], [])
