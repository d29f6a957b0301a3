"""The staff fleet-usage page: GPU-hours and cost per GPU type, region and organization over
whole months, from the rollups, for the organizations the staff member looks after."""

from dataclasses import fields
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Organization
from accounts.selectors import organization_list_for_staff
from contracts.models import Contract
from usage.costing import CostLine, usage_cost_lines, usage_cost_total
from usage.fleet import next_month, usage_cost_by_organization, usage_fleet

from ..factories import ContractFactory, ContractRateFactory
from .conftest import JAN, hours, ingest, record

pytestmark = pytest.mark.django_db

URL = "/staff/usage/"
JAN_FEB = {"start": "2026-01", "end": "2026-02"}


@pytest.fixture
def fleet(org, other_org, h100, east, a100, west):
    """acme: a contract from 15 January (H100 at 2.0000 anywhere, 1.9333 in us-east-1; no A100
    rate), usage in January and February; globex: list prices only."""
    h100.list_price_per_gpu_hour = Decimal("3.0000")
    h100.save()
    a100.list_price_per_gpu_hour = Decimal("1.5000")
    a100.save()
    contract = ContractFactory(
        organization=org, number="ACME-1", term_start=date(2026, 1, 15), term_end=date(2027, 1, 1)
    )
    ContractRateFactory(contract=contract, sku=h100, price_per_gpu_hour=Decimal("2.0000"))
    ContractRateFactory(
        contract=contract, sku=h100, region=east, price_per_gpu_hour=Decimal("1.9333")
    )
    jan_10, jan_20, feb_3 = JAN.replace(day=10), JAN.replace(day=20), JAN.replace(month=2, day=3)
    ingest(
        [record(hour=h, gpu_hours="1.5") for h in hours(jan_10, 10)]  # 15 h at list 3.00
        + [record(hour=h, gpu_hours="2.0001") for h in hours(jan_20, 5)]  # 10.0005 at 1.9333
        + [record(hour=h, region="us-west-2", gpu_hours="1") for h in hours(feb_3, 7)]  # 7 at 2
        + [record(hour=feb_3, sku="a100-80", gpu_hours="4")]  # contract has no A100 rate: list
        + [record(org="globex", hour=h, gpu_hours="3") for h in hours(jan_10, 4)]  # 12 at 3.00
        + [record(org="globex", hour=JAN.replace(month=3), gpu_hours="100")]  # March: outside
    )
    return org


def figures(rows):
    return [(row.name, row.gpu_hours, row.cost["USD"]) for row in rows]


def test_fleet_figures_by_gpu_type_region_and_organization(fleet, capacity_planner, other_org):
    result = usage_fleet(
        organizations=organization_list_for_staff(user=capacity_planner),
        start=date(2026, 1, 1),
        end=date(2026, 3, 1),
    )

    # acme H100 in us-east-1: 15 x 3.00 = 45.00 (before the contract) and 10.0005 x 1.9333 =
    # 19.33416... -> 19.33; in us-west-2 7 x 2.00 = 14.00; A100 4 x 1.50 = 6.00;
    # globex 12 x 3.00 = 36.00.
    assert figures(result.by_sku) == [
        ("A100 80GB", Decimal("4.0000"), Decimal("6.00")),
        ("H100 SXM 80GB", Decimal("44.0005"), Decimal("114.33")),
    ]
    assert figures(result.by_region) == [
        ("us-east-1", Decimal("41.0005"), Decimal("106.33")),
        ("us-west-2", Decimal("7.0000"), Decimal("14.00")),
    ]
    assert figures(result.top_organizations) == [
        ("Acme", Decimal("36.0005"), Decimal("84.33")),
        ("Globex", Decimal("12.0000"), Decimal("36.00")),
    ]
    assert (result.total_gpu_hours, result.total_cost) == (
        Decimal("48.0005"),
        {"USD": Decimal("120.33")},
    )
    # Each organization costs what its own history and statements say.
    for organization in (fleet, other_org):
        lines = usage_cost_lines(
            organization=organization, start=date(2026, 1, 1), end=date(2026, 3, 1)
        )
        (row,) = [r for r in result.top_organizations if r.key == organization.pk]
        assert row.cost == usage_cost_total(lines, billable_only=False)


def test_fleet_reads_rollups_never_hourly_records(fleet, capacity_planner):
    with CaptureQueriesContext(connection) as queries:
        usage_fleet(
            organizations=organization_list_for_staff(user=capacity_planner),
            start=date(2026, 1, 1),
            end=date(2026, 3, 1),
        )
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert "usage_usagemonthly" in sql and "usage_usagedaily" in sql
    assert "usage_usagerecord" not in sql


def test_fleet_covers_whole_months_only(capacity_planner):
    with pytest.raises(ValueError, match="whole months"):
        usage_fleet(
            organizations=Organization.objects.all(), start=date(2026, 1, 2), end=date(2026, 2, 1)
        )


def staff_client(user):
    client = Client()
    client.force_login(user)
    return client


def test_account_manager_sees_only_their_organizations(fleet, account_manager):
    response = staff_client(account_manager).get(URL, JAN_FEB)

    assert response.status_code == 200
    shown = response.context["fleet"]
    assert figures(shown.top_organizations) == [("Acme", Decimal("36.0005"), Decimal("84.33"))]
    page = response.content.decode()
    assert "Globex" not in page
    assert 'id="fleet-data"' in page and "<script>" not in page


def test_planner_sees_every_organization_and_the_csv_is_the_tables(fleet, capacity_planner):
    client = staff_client(capacity_planner)
    shown = client.get(URL, JAN_FEB).context["fleet"]
    assert [row.name for row in shown.top_organizations] == ["Acme", "Globex"]

    response = client.get(URL, {**JAN_FEB, "format": "csv"})

    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="fleet-usage-2026-01-2026-02.csv"' in response["Content-Disposition"]
    assert response.content.decode().splitlines() == [
        "table,name,gpu_hours,cost_USD",
        *(
            f"{table},{row.name},{row.gpu_hours},{row.cost['USD']}"
            for table, rows in (
                ("gpu_type", shown.by_sku),
                ("region", shown.by_region),
                ("top_organization", shown.top_organizations),
            )
            for row in rows
        ),
    ]
    assert "gpu_type,H100 SXM 80GB,44.0005,114.33" in response.content.decode()


def test_tenant_users_get_404(fleet, owner):
    client = staff_client(owner)
    assert client.get(URL).status_code == 404
    assert client.get(URL, {"format": "csv"}).status_code == 404


def test_bad_months_name_the_field(fleet, capacity_planner):
    client = staff_client(capacity_planner)
    response = client.get(URL, {"start": "2026-03", "end": "2026-01"})
    assert response.status_code == 400
    assert "end" in response.context["form"].errors
    response = client.get(URL, {"start": "March", "end": "2026-01"})
    assert response.status_code == 400
    assert "start" in response.context["form"].errors


def test_staff_home_links_to_fleet_usage(capacity_planner):
    assert 'href="/staff/usage/"' in staff_client(capacity_planner).get("/staff/").content.decode()


def test_page_query_count_is_flat_as_records_grow(
    fleet, capacity_planner, django_assert_num_queries
):
    client = staff_client(capacity_planner)
    params = {"start": "2026-01", "end": "2026-12"}
    client.get(URL, params)
    # session, user, TOTP check...; contracts, monthly rollups, the daily rollups of the
    # months a contract starts or ends in, rates, GPU types, regions, reservation rates, the
    # top organizations' names; the organization menu (two).
    with django_assert_num_queries(12):
        client.get(URL, params)
    ingest(
        [
            record(org=org, hour=h, sku=sku, region=region, gpu_hours="1")
            for h in hours(JAN, 24 * 70)
            for org in ("acme", "globex")
            for sku in ("h100-sxm", "a100-80")
            for region in ("us-east-1", "us-west-2")
        ]
    )
    with django_assert_num_queries(12):
        response = client.get(URL, params)
    assert len(response.context["fleet"].by_region) == 2


def test_each_organization_costs_what_its_history_says_with_reservations_and_terminations(
    fleet, other_org, reservation, capacity_planner, h100, east
):
    """A contract of globex terminated on 10 February prices its days before; acme's usage
    inside a reservation is at the reservation's rate."""
    terminated = ContractFactory(
        organization=other_org,
        number="GLOBEX-1",
        status="terminated",
        term_start=date(2025, 12, 1),
        term_end=date(2026, 12, 1),
    )
    Contract.all_objects.filter(pk=terminated.pk).update(terminated_at=JAN.replace(month=2, day=10))
    ContractRateFactory(contract=terminated, sku=h100, price_per_gpu_hour=Decimal("2.5000"))
    ingest(
        [
            record(org="globex", hour=h, gpu_hours="1.25")
            for h in hours(JAN.replace(month=2), 24 * 20)
        ]
        + [
            record(hour=h, gpu_hours="3", reservation=reservation.pk)
            for h in hours(reservation.starts_at, 30)
        ]
    )
    start = date(2026, 1, 1)
    end = next_month(reservation.ends_at.date())

    result = usage_fleet(
        organizations=organization_list_for_staff(user=capacity_planner), start=start, end=end
    )

    costs = {row.key: row.cost for row in result.top_organizations}
    for organization in (fleet, other_org):
        lines = usage_cost_lines(organization=organization, start=start, end=end)
        assert costs[organization.pk] == usage_cost_total(lines, billable_only=False)
    # globex: 12 GPU-hours in January at the contract's 2.50 (it was in force then); from 1
    # to 9 February 270 at 2.50 (terminated at midnight on the 10th); 10 to 20 February 330
    # and 1 March 100 at list 3.00.
    assert costs[other_org.pk] == {
        "USD": Decimal("30.00") + Decimal("675.00") + Decimal("990.00") + Decimal("300.00")
    }
    sources = {line.source for line in usage_cost_lines(organization=fleet, start=start, end=end)}
    assert sources == {"list", "contract", "reservation"}


def _priced(line):
    """A cost line's figures, whoever's it is."""
    return tuple(getattr(line, field.name) for field in fields(CostLine))


def _of(result, organization):
    return [_priced(line) for line in result.lines if line.organization_id == organization.pk]


def _same(left, right) -> bool:
    return sorted(left, key=repr) == sorted(right, key=repr)


def test_cost_by_organization_prices_each_window_by_month_as_its_history(
    fleet, other_org, django_assert_max_num_queries
):
    """Each organization over its own window, cut inside months (acme's from 12 January,
    across its contract's start on the 15th, to 4 February): its lines are the month lines
    of its own history over that window."""
    windows = {
        fleet.pk: (date(2026, 1, 12), date(2026, 2, 4)),
        other_org.pk: (date(2026, 1, 1), date(2026, 3, 1)),
    }

    with django_assert_max_num_queries(6):
        result = usage_cost_by_organization(
            organizations=list(windows),
            start=date(2026, 1, 1),
            end=date(2026, 3, 1),
            windows=windows,
            by_month=True,
        )

    for organization in (fleet, other_org):
        low, high = windows[organization.pk]
        history = usage_cost_lines(
            organization=organization, start=low, end=high, granularity="month"
        )
        assert _same(_of(result, organization), map(_priced, history))
    # acme's list-price hours of 10 January lie before its window: 10.0005 h at 1.9333 in
    # January, 7 h at 2.00 (us-west-2) and 4 A100 h at list 1.50 on 3 February.
    assert [
        (line.bucket, line.source, line.amount)
        for line in result.lines
        if line.organization_id == fleet.pk
    ] == [
        (date(2026, 1, 1), "contract", Decimal("19.33")),
        (date(2026, 2, 1), "contract", Decimal("14.00")),
        (date(2026, 2, 1), "list", Decimal("6.00")),
    ]


def test_cost_by_organization_over_days_leaves_reservations_out_on_request(
    fleet, other_org, reservation, capacity_planner
):
    """One window for all, cut inside months, priced whole (one line per key); usage inside
    a reservation is priced at its rate, or not read at all without ``reservations``."""
    ingest(
        [
            record(hour=h, gpu_hours="3", reservation=reservation.pk)
            for h in hours(reservation.starts_at, 30)
        ]
    )
    start, end = date(2026, 1, 12), next_month(reservation.ends_at.date()) + timedelta(days=3)
    staff = organization_list_for_staff(user=capacity_planner)

    every = usage_cost_by_organization(organizations=staff, start=start, end=end)
    billable = usage_cost_by_organization(
        organizations=staff, start=start, end=end, reservations=False
    )

    for organization in (fleet, other_org):
        history = usage_cost_lines(organization=organization, start=start, end=end)
        assert _same(_of(every, organization), map(_priced, history))
        assert _same(_of(billable, organization), [_priced(x) for x in history if x.billable])
    assert {line.source for line in every.lines} == {"contract", "list", "reservation"}
    assert {line.source for line in billable.lines} == {"contract", "list"}
    assert set(every.skus) == {line.sku_id for line in every.lines}


def test_fleet_page_figures_are_the_shared_cost_lines_summed(fleet, capacity_planner):
    shown = staff_client(capacity_planner).get(URL, JAN_FEB).context["fleet"]

    lines = usage_cost_by_organization(
        organizations=organization_list_for_staff(user=capacity_planner),
        start=date(2026, 1, 1),
        end=date(2026, 3, 1),
    ).lines
    for row in shown.top_organizations:
        mine = [line for line in lines if line.organization_id == row.key]
        assert row.cost == usage_cost_total(mine, billable_only=False)
        assert row.gpu_hours == sum(line.gpu_hours for line in mine)
    for row in shown.by_sku:
        assert row.gpu_hours == sum(line.gpu_hours for line in lines if line.sku_id == row.key)
        assert row.cost["USD"] == sum(line.amount for line in lines if line.sku_id == row.key)
    assert shown.total_cost == usage_cost_total(lines, billable_only=False)
