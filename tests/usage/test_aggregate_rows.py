"""The API's daily and monthly aggregates come from one statement (``usage_aggregate_rows``):
the same buckets, groups, figures and order as ``usage_series_rows``, with the codes joined."""

from datetime import date, timedelta
from itertools import permutations

import pytest

from quotas.models import GpuSku, Region
from usage.selectors import usage_aggregate_rows, usage_series_rows

from .conftest import JAN, hours, ingest, record

pytestmark = pytest.mark.django_db

AGGREGATE = "/api/v1/orgs/acme/usage/aggregate/"


@pytest.fixture
def usage(org, other_org, h100, east, a100, west, reservation):
    # Two months, two GPU types, two regions, usage inside a reservation and outside it,
    # and another organization's usage in the same hours.
    ingest([record(hour=h, gpu_hours="1.25") for h in hours(JAN - timedelta(hours=30), 60)])
    ingest([record(hour=h, sku="a100-80", gpu_hours="2") for h in hours(JAN, 5)])
    ingest([record(hour=h, region="us-west-2", gpu_hours="0.5") for h in hours(JAN, 3)])
    ingest(
        [
            record(hour=h, gpu_hours="3", reservation=reservation.pk, source="reserved")
            for h in hours(reservation.starts_at, 4)
        ]
    )
    ingest([record(hour=h, gpu_hours="1") for h in hours(reservation.starts_at, 2)])
    ingest([record(org="globex", hour=h, gpu_hours="100") for h in hours(JAN, 3)])
    return org


GROUPINGS = [
    (),
    ("sku",),
    ("region",),
    ("reservation",),
    *permutations(("sku", "region")),
    *permutations(("sku", "region", "reservation")),
]


def _after_reservation(reservation) -> date:
    day = reservation.starts_at.date() + timedelta(days=1)
    return day if day.day == 1 else (day.replace(day=28) + timedelta(days=4)).replace(day=1)


@pytest.mark.parametrize("group_by", GROUPINGS)
@pytest.mark.parametrize(
    ("granularity", "window"),
    [
        # Every month from December to the reservation's (usage inside it included).
        ("month", lambda reservation: (date(2025, 12, 1), _after_reservation(reservation))),
        ("day", lambda reservation: (date(2025, 12, 30), date(2026, 1, 3))),
        (
            "day",
            lambda reservation: (
                reservation.starts_at.date() - timedelta(days=1),
                reservation.starts_at.date() + timedelta(days=1),
            ),
        ),
    ],
    ids=["months", "days", "reservation-days"],
)
def test_same_rows_as_the_series_with_codes(usage, reservation, group_by, granularity, window):
    start, end = window(reservation)
    sku_codes = dict(GpuSku.objects.values_list("pk", "code"))
    region_codes = dict(Region.objects.values_list("pk", "code"))
    expected = [
        (
            row.bucket,
            sku_codes[row.sku_id] if "sku" in group_by else None,
            region_codes[row.region_id] if "region" in group_by else None,
            row.reservation_id,
            row.gpu_hours,
            row.record_count,
        )
        for row in usage_series_rows(
            organization=usage, start=start, end=end, granularity=granularity, group_by=group_by
        )
    ]

    rows = usage_aggregate_rows(
        organization=usage, start=start, end=end, granularity=granularity, group_by=group_by
    )

    assert expected
    assert [
        (r.bucket, r.sku, r.region, r.reservation_id, r.gpu_hours, r.record_count) for r in rows
    ] == expected


def test_months_must_be_whole(usage):
    with pytest.raises(ValueError, match="whole months"):
        usage_aggregate_rows(
            organization=usage, start=date(2026, 1, 2), end=date(2026, 2, 1), granularity="month"
        )


def test_aggregate_endpoint_reads_rows_and_codes_in_one_query(
    usage, read_key, django_assert_max_num_queries
):
    from ..api.conftest import bearer

    client = bearer(read_key.key)
    params = {"granularity": "month", "group_by": "sku,region", "from": "2025-12-01"}
    params["to"] = "2026-02-01"
    client.get(AGGREGATE, params)  # the key's last-used time is written once
    # key with its user and organization, membership, the rollups with their codes
    with django_assert_max_num_queries(3) as captured:
        response = client.get(AGGREGATE, params)

    assert response.status_code == 200
    assert [query["sql"] for query in captured.captured_queries if "usage_" in query["sql"]]
    assert not [q for q in captured.captured_queries if q["sql"].startswith('SELECT "quotas_')]
    assert response.json() == [
        {"period": "2025-12-01", "sku": "h100-sxm", "region": "us-east-1"}
        | {"gpu_hours": "37.5000", "record_count": 30},
        {"period": "2026-01-01", "sku": "h100-sxm", "region": "us-east-1"}
        | {"gpu_hours": "37.5000", "record_count": 30},
        {"period": "2026-01-01", "sku": "h100-sxm", "region": "us-west-2"}
        | {"gpu_hours": "1.5000", "record_count": 3},
        {"period": "2026-01-01", "sku": "a100-80", "region": "us-east-1"}
        | {"gpu_hours": "10.0000", "record_count": 5},
    ]


def _prepared_statements() -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def _aggregate(usage):
    rows = usage_aggregate_rows(
        organization=usage,
        start=date(2025, 12, 1),
        end=date(2026, 3, 1),
        granularity="month",
        group_by=("sku", "region"),
    )
    return [(r.bucket, r.sku, r.region, r.gpu_hours, r.record_count) for r in rows]


def test_each_statement_is_prepared_once_per_connection_and_reads_the_same_without(
    usage, monkeypatch
):
    from django.db import connection

    prepared = _aggregate(usage)
    statements = _prepared_statements()
    assert any('FROM "usage_usagemonthly" r' in statement for statement in statements)
    assert _aggregate(usage) == prepared
    assert _prepared_statements() == statements  # used again, not prepared again
    # Behind a transaction pooler (DISABLE_SERVER_SIDE_CURSORS) nothing is prepared.
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    assert prepared and _aggregate(usage) == prepared
    assert _prepared_statements() == statements
