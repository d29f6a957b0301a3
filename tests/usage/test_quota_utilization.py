"""Quota utilization on the usage page: per GPU type and region, the quota (running
reservations + on-demand limit) against the GPUs in use in the latest metered hour."""

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from quotas.models import OnDemandQuotaChange
from usage.selectors import usage_quota_utilization

from .conftest import hours, ingest, record

pytestmark = pytest.mark.django_db

URL = "/o/acme/usage/"


def last_complete_hour():
    return timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=1
    )


@pytest.fixture
def on_demand(org, h100, east, a100, west):
    """On-demand limits: 16 H100 in us-east-1, 4 A100 in us-west-2."""
    for sku, region, limit in ((h100, east, 16), (a100, west, 4)):
        OnDemandQuotaChange.all_objects.create(
            organization=org,
            sku=sku,
            region=region,
            old_limit=0,
            new_limit=limit,
            effective_at=timezone.now() - timedelta(days=30),
        )
    return org


@pytest.fixture
def owner_client(owner):
    client = Client()
    client.force_login(owner)
    return client


def test_latest_metered_hour_against_the_quota(on_demand, h100, east, a100, west, other_org):
    latest = last_complete_hour() - timedelta(hours=2)  # metering lags two hours
    ingest(
        [
            record(hour=latest - timedelta(hours=1), gpu_hours="16"),  # older, busier
            record(hour=latest, gpu_hours="12.5"),  # 12.5 of 16: 78.1 %
            record(hour=latest, sku="a100-80", region="us-west-2", gpu_hours="6"),  # over
            record(hour=latest, sku="a100-80", region="us-east-1", gpu_hours="1"),  # no quota
            record(org="globex", hour=latest + timedelta(hours=1), gpu_hours="3"),
        ]
    )
    # An hour still running is not judged.
    ingest([record(hour=last_complete_hour() + timedelta(hours=1), gpu_hours="16")])

    hour, rows = usage_quota_utilization(organization=on_demand)

    assert hour == latest
    assert [
        (r.sku.name, r.region.code, r.reserved, r.on_demand, r.quota, r.in_use, r.percent)
        for r in rows
    ] == [
        ("A100 80GB", "us-east-1", 0, 0, 0, Decimal("1.0000"), None),
        ("A100 80GB", "us-west-2", 0, 4, 4, Decimal("6.0000"), Decimal("150.0")),
        ("H100 SXM 80GB", "us-east-1", 0, 16, 16, Decimal("12.5000"), Decimal("78.1")),
    ]
    assert [r.meter_value for r in rows] == [Decimal(100), Decimal(100), Decimal("78.1")]


def test_running_reservation_counts_in_the_quota(on_demand, reservation, h100):
    hour = reservation.starts_at + timedelta(hours=3)
    ingest([record(hour=hour, gpu_hours="20", reservation=reservation.pk)])

    _, rows = usage_quota_utilization(organization=on_demand, now=hour + timedelta(hours=2))

    (h100_east,) = [r for r in rows if r.sku == h100]
    # 8 reserved + 16 on demand = 24; 20 in use.
    assert (h100_east.reserved, h100_east.quota, h100_east.percent) == (8, 24, Decimal("83.3"))


def test_no_usage_judges_the_last_complete_hour(on_demand):
    hour, rows = usage_quota_utilization(organization=on_demand)
    assert hour == last_complete_hour()
    assert [(r.quota, r.in_use, r.percent) for r in rows] == [
        (4, Decimal("0"), Decimal("0.0")),
        (16, Decimal("0"), Decimal("0.0")),
    ]


def test_page_shows_the_table_and_bars(on_demand, owner_client):
    ingest([record(hour=last_complete_hour(), gpu_hours="12")])

    response = owner_client.get(URL)

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="quota-utilization"' in page
    assert "<td>H100 SXM 80GB</td><td>us-east-1</td>" in page
    assert 'value="75.0"' in page and ">75.0 %</td>" in page
    assert f"{last_complete_hour():%Y-%m-%d %H:%M} UTC" in page


def test_quota_query_count_is_flat_as_records_grow(
    on_demand, owner_client, reservation, django_assert_num_queries
):
    start = last_complete_hour() - timedelta(days=2)
    ingest([record(hour=start, gpu_hours="1")])
    owner_client.get(URL)
    # session, user, organization, membership...; the history's reads; the latest hour's
    # usage, the quota (reservations, on-demand limits), GPU types, regions (no reservation
    # usage in the window: no reservation rates to read).
    with django_assert_num_queries(17):
        owner_client.get(URL)
    ingest(
        [
            record(hour=h, sku=sku, region=region, gpu_hours="1")
            for h in hours(start, 48)
            for sku in ("h100-sxm", "a100-80")
            for region in ("us-east-1", "us-west-2")
        ]
    )
    with django_assert_num_queries(17):
        response = owner_client.get(URL)
    assert len(response.context["quota_use"]) == 4
