from datetime import date, timedelta
from decimal import Decimal

import pytest

from usage.costing import usage_cost_lines, usage_cost_total
from usage.selectors import (
    usage_fleet_by_sku,
    usage_series,
    usage_totals,
)

from ..factories import ContractFactory, ContractRateFactory
from .conftest import JAN, hours, ingest, record

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(org, other_org, h100, east, a100, west):
    h100.list_price_per_gpu_hour = Decimal("0.0450")
    h100.save()
    return org


def test_series_by_region_per_month(catalog, other_org):
    ingest([record(hour=h, gpu_hours="1") for h in hours(JAN - timedelta(hours=2), 26)])
    ingest([record(hour=JAN, region="us-west-2", gpu_hours="5")])
    ingest([record(org="globex", hour=JAN, gpu_hours="100")])

    rows = usage_series(
        organization=catalog,
        start=date(2025, 12, 1),
        end=date(2026, 2, 1),
        granularity="month",
        group_by="region",
    )

    assert [(r.bucket, r.region_id, r.gpu_hours, r.record_count) for r in rows] == [
        (date(2025, 12, 1), catalog_region("us-east-1"), Decimal("2"), 2),
        (date(2026, 1, 1), catalog_region("us-east-1"), Decimal("24"), 24),
        (date(2026, 1, 1), catalog_region("us-west-2"), Decimal("5"), 1),
    ]


def catalog_region(code):
    from quotas.models import Region

    return Region.objects.get(code=code).pk


def test_totals_ignore_other_organizations_and_the_window_end(catalog, h100, east):
    ingest([record(hour=h, gpu_hours="2") for h in hours(JAN, 48)])
    ingest([record(org="globex", hour=JAN, gpu_hours="100")])

    (total,) = usage_totals(organization=catalog, start=JAN.date(), end=date(2026, 1, 2))

    assert (total.sku_id, total.region_id, total.gpu_hours) == (h100.pk, east.pk, Decimal("48"))


def test_fleet_by_sku_spans_organizations(catalog, h100):
    ingest([record(hour=JAN, gpu_hours="3"), record(org="globex", hour=JAN, gpu_hours="4")])
    ingest([record(org="globex", hour=JAN, sku="a100-80", gpu_hours="1")])

    fleet = usage_fleet_by_sku(start=date(2026, 1, 1), end=date(2026, 2, 1))

    by_code = {row.sku.code: (row.gpu_hours, row.organization_count) for row in fleet}
    assert by_code == {"h100-sxm": (Decimal("7"), 2), "a100-80": (Decimal("1"), 1)}
    with pytest.raises(ValueError):
        usage_fleet_by_sku(start=date(2026, 1, 2), end=date(2026, 2, 1))


def test_cost_is_rounded_once_per_line_half_up(catalog):
    # Rounded per record, 0.3334 x 0.0450 = 0.015003 -> 0.02, three times 0.06; the line is
    # rounded once: 1.0002 x 0.0450 = 0.045009 -> 0.05.
    ingest([record(hour=h, gpu_hours="0.3334") for h in hours(JAN, 3)])

    (line,) = usage_cost_lines(organization=catalog, start=JAN.date(), end=date(2026, 1, 2))

    assert (line.gpu_hours, line.rate_per_gpu_hour, line.amount) == (
        Decimal("1.0002"),
        Decimal("0.0450"),
        Decimal("0.05"),
    )
    assert (line.source, line.currency, line.billable) == ("list", "USD", True)


def test_region_rate_beats_any_region_rate_and_reserved_usage_is_not_billable(
    catalog, h100, east, west, reservation
):
    contract = ContractFactory(
        organization=catalog,
        number="ACME-R",
        currency="EUR",
        term_start=date(2025, 1, 1),
        term_end=date(2028, 1, 1),
    )
    ContractRateFactory(contract=contract, sku=h100, region=None, price_per_gpu_hour=Decimal("2"))
    ContractRateFactory(contract=contract, sku=h100, region=east, price_per_gpu_hour=Decimal("1"))
    start = reservation.starts_at
    ingest(
        [
            record(hour=start, region="us-east-1", gpu_hours="10"),
            record(hour=start, region="us-west-2", gpu_hours="10"),
            record(hour=start, gpu_hours="8", reservation=reservation.pk),
        ]
    )

    lines = usage_cost_lines(
        organization=catalog, start=start.date(), end=start.date() + timedelta(days=1)
    )

    priced = {(line.region_id, line.reservation_id): line for line in lines}
    assert priced[(east.pk, None)].amount == Decimal("10.00")
    assert priced[(west.pk, None)].amount == Decimal("20.00")
    assert {priced[(east.pk, None)].currency, priced[(west.pk, None)].currency} == {"EUR"}
    reserved = priced[(east.pk, reservation.pk)]
    assert (reserved.source, reserved.billable) == ("reservation", False)
    assert reserved.rate_per_gpu_hour == reservation.rate_per_gpu_hour
    assert usage_cost_total(lines) == {"EUR": Decimal("30.00")}
