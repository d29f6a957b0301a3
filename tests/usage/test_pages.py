from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from ..factories import ContractFactory, ContractRateFactory
from .conftest import JAN, hours, ingest, record

pytestmark = pytest.mark.django_db

URL = "/o/acme/usage/"
JANUARY = {"start": "2026-01-01", "end": "2026-01-31", "granularity": "day", "group_by": "sku"}


@pytest.fixture
def catalog(org, other_org, h100, east, a100, west):
    h100.list_price_per_gpu_hour = Decimal("3.0000")
    h100.save()
    a100.list_price_per_gpu_hour = Decimal("1.5000")
    a100.save()
    return org


@pytest.fixture
def owner_client(owner):
    client = Client()
    client.force_login(owner)
    return client


def test_history_shows_gpu_hours_and_cost_by_day_and_sku(catalog, owner_client):
    ingest([record(hour=h, gpu_hours="2") for h in hours(JAN, 30)])  # 24 h on day 1, 6 on day 2
    ingest([record(hour=JAN, sku="a100-80", gpu_hours="1.5")])

    response = owner_client.get(URL, JANUARY)

    assert response.status_code == 200
    rows = [
        (r["bucket"].isoformat(), r["group"], r["gpu_hours"], r["cost"]["USD"])
        for r in response.context["figures"]["rows"]
    ]
    assert rows == [
        ("2026-01-01", "A100 80GB", Decimal("1.5"), Decimal("2.25")),
        ("2026-01-01", "H100 SXM 80GB", Decimal("48"), Decimal("144.00")),
        ("2026-01-02", "H100 SXM 80GB", Decimal("12"), Decimal("36.00")),
    ]
    page = response.content.decode()
    assert "Organization time zone: UTC" in page
    assert "UTC calendar day" in page
    assert 'id="usage-data"' in page and "<script>" not in page


def test_contract_rate_prices_usage_in_its_term(catalog, owner_client, h100):
    contract = ContractFactory(
        organization=catalog,
        number="ACME-1",
        term_start=JAN.date(),
        term_end=JAN.date() + timedelta(days=1),
    )
    ContractRateFactory(contract=contract, sku=h100, price_per_gpu_hour=Decimal("2.0000"))
    ingest([record(hour=h, gpu_hours="1") for h in hours(JAN, 48)])

    rows = owner_client.get(URL, JANUARY).context["figures"]["rows"]

    # Day 1 at the contract's 2.00, day 2 (after the term) at list price 3.00.
    assert [r["cost"]["USD"] for r in rows] == [Decimal("48.00"), Decimal("72.00")]


def test_csv_is_exactly_the_table(catalog, owner_client):
    ingest([record(hour=h, gpu_hours="2", region="us-west-2") for h in hours(JAN, 30)])
    params = {**JANUARY, "group_by": "region"}
    shown = owner_client.get(URL, params).context["figures"]["rows"]

    response = owner_client.get(URL, {**params, "format": "csv"})

    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines[0] == "day_utc,region,gpu_hours,cost_USD"
    assert lines[1:] == [
        f"{r['bucket'].isoformat()},{r['group']},{r['gpu_hours']},{r['cost']['USD']}" for r in shown
    ]
    assert lines[1:] == [
        "2026-01-01,us-west-2,48.0000,144.00",
        "2026-01-02,us-west-2,12.0000,36.00",
    ]


def test_week_and_month_buckets(catalog, owner_client):
    ingest([record(hour=h, gpu_hours="1") for h in hours(JAN, 24 * 40)])  # Jan 1 .. Feb 9

    weekly = owner_client.get(URL, {**JANUARY, "end": "2026-02-09", "granularity": "week"})
    monthly = owner_client.get(URL, {**JANUARY, "end": "2026-02-28", "granularity": "month"})

    week_rows = weekly.context["figures"]["rows"]
    # 2026-01-01 is a Thursday: its ISO week starts on Monday 2025-12-29.
    assert (week_rows[0]["bucket"].isoformat(), week_rows[0]["gpu_hours"]) == (
        "2025-12-29",
        Decimal("96"),
    )
    assert sum(r["gpu_hours"] for r in week_rows) == Decimal(24 * 40)
    assert [
        (r["bucket"].isoformat(), r["gpu_hours"]) for r in monthly.context["figures"]["rows"]
    ] == [
        ("2026-01-01", Decimal(24 * 31)),
        ("2026-02-01", Decimal(24 * 9)),
    ]


def test_reserved_against_used(catalog, owner_client, reservation):
    start = reservation.starts_at
    ingest([record(hour=h, gpu_hours="4", reservation=reservation.pk) for h in hours(start, 10)])
    first, last = start.date(), start.date() + timedelta(days=1)
    response = owner_client.get(
        URL, {**JANUARY, "start": first.isoformat(), "end": last.isoformat()}
    )
    (usage,) = response.context["reservations"]
    window_end = datetime.combine(last + timedelta(days=1), time.min, UTC)
    reserved_hours = (min(reservation.ends_at, window_end) - start) / timedelta(hours=1)
    assert usage.reserved_gpu_hours == Decimal(reservation.gpu_count) * Decimal(reserved_hours)
    assert usage.used_gpu_hours == Decimal(40)
    assert usage.utilization == (Decimal(40) / usage.reserved_gpu_hours).quantize(Decimal("0.0001"))
    assert f"#{reservation.pk}" in response.content.decode()


def test_bad_range_names_the_field(catalog, owner_client):
    response = owner_client.get(URL, {**JANUARY, "end": "2025-12-01"})
    assert response.status_code == 400
    assert "end" in response.context["form"].errors


def test_other_organizations_usage_is_404(catalog, other_owner):
    client = Client()
    client.force_login(other_owner)
    assert client.get(URL).status_code == 404
    assert client.get(URL, {"format": "csv"}).status_code == 404


def test_nav_links_to_usage(catalog, owner_client):
    assert 'href="/o/acme/usage/"' in owner_client.get("/o/acme/").content.decode()


def test_page_query_count_is_flat_as_records_grow(
    catalog, owner_client, reservation, django_assert_num_queries
):
    ContractFactory(
        organization=catalog,
        number="ACME-Q",
        term_start=JAN.date(),
        term_end=JAN.date() + timedelta(days=400),
    )
    params = {**JANUARY, "end": "2026-12-31"}
    ingest(
        [
            record(hour=JAN, gpu_hours="1"),
            record(hour=reservation.starts_at, gpu_hours="1", reservation=reservation.pk),
        ]
    )
    owner_client.get(URL, params)
    # session, user, organization, membership, ...; contracts, rollups priced, rates, list
    # prices, reservation rates, group names; reservations and their usage; quota
    # utilization: the latest hour's usage, reservations, on-demand limits, GPU types, regions.
    with django_assert_num_queries(18):
        owner_client.get(URL, params)
    ingest(
        [
            record(hour=h, sku=sku, region=region, gpu_hours="1")
            for h in hours(JAN, 24 * 60)
            for sku in ("h100-sxm", "a100-80")
            for region in ("us-east-1", "us-west-2")
        ]
        + [
            record(hour=h, gpu_hours="2", reservation=reservation.pk)
            for h in hours(reservation.starts_at, 24)
        ]
    )
    with django_assert_num_queries(18):
        response = owner_client.get(URL, params)
    assert len(response.context["figures"]["rows"]) > 10


def test_expired_contract_still_prices_late_usage_of_its_term(catalog, owner_client, h100):
    contract = ContractFactory(
        organization=catalog,
        number="ACME-OLD",
        status="expired",
        term_start=JAN.date(),
        term_end=JAN.date() + timedelta(days=1),
    )
    ContractRateFactory(contract=contract, sku=h100, price_per_gpu_hour=Decimal("2.0000"))
    ingest([record(hour=h, gpu_hours="1") for h in hours(JAN, 48)])

    response = owner_client.get(URL, JANUARY)

    # The contract has expired since, but it was in force on 1 January: 24 x 2.00, then list.
    assert [r["cost"]["USD"] for r in response.context["figures"]["rows"]] == [
        Decimal("48.00"),
        Decimal("72.00"),
    ]
    assert response.context["figures"]["totals"]["cost"] == {"USD": Decimal("120.00")}
