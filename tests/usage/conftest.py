import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from usage.models import UsageDaily, UsageMonthly, UsageRecord
from usage.services import usage_ingest

from ..api.conftest import (  # noqa: F401 (fixtures)
    api,
    approvals_key,
    east,
    h100,
    ingest_key,
    org_key,
    other_org_key,
    owner_api,
    pool,
    read_key,
    reservation,
    superuser,
)
from ..factories import GpuSkuFactory, RegionFactory

JAN = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def a100(db):
    return GpuSkuFactory(code="a100-80", name="A100 80GB")


@pytest.fixture
def west(db):
    return RegionFactory(code="us-west-2", name="Oregon 2")


def record(org="acme", sku="h100-sxm", region="us-east-1", hour=JAN, gpu_hours="8", **extra):
    hour_text = hour.isoformat() if isinstance(hour, datetime) else hour
    return {
        "organization": org,
        "sku": sku,
        "region": region,
        "hour": hour_text,
        "gpu_hours": gpu_hours,
        **extra,
    }


def hours(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(hours=n) for n in range(count)]


def as_json(records) -> bytes:
    return json.dumps(records).encode()


def as_ndjson(records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def as_csv(records) -> bytes:
    columns = [
        "organization",
        "sku",
        "region",
        "hour",
        "gpu_hours",
        "reservation",
        "mean_utilization",
        "source",
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().encode()


ENCODERS = {
    "application/json": as_json,
    "application/x-ndjson": as_ndjson,
    "text/csv": as_csv,
}


def ingest(records, content_type="application/x-ndjson", **kwargs):
    body = ENCODERS[content_type](records)
    return usage_ingest(stream=io.BytesIO(body), content_type=content_type, **kwargs)


def table_state():
    """Every row of the three tables, as comparable tuples."""
    records = list(
        UsageRecord.objects.unscoped_for_staff()
        .order_by("id")
        .values_list(
            "id",
            "organization_id",
            "sku_id",
            "region_id",
            "reservation_id",
            "hour",
            "source",
            "gpu_hours",
            "mean_utilization",
            "received_at",
        )
    )
    keys = ("organization_id", "sku_id", "region_id", "reservation_id", "gpu_hours", "record_count")
    # Ordered by the natural key, not the id: a rebuild inserts the same rows in another order.
    order = ("organization_id", "sku_id", "region_id", "reservation_id")
    daily = list(
        UsageDaily.objects.unscoped_for_staff().order_by("day", *order).values_list("day", *keys)
    )
    monthly = list(
        UsageMonthly.objects.unscoped_for_staff()
        .order_by("month", *order)
        .values_list("month", *keys)
    )
    return records, daily, monthly


def rollups_match_raw() -> tuple[list, list]:
    """Rows where a rollup differs from the sum of its hourly records (both ways)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH raw AS (
                SELECT organization_id, sku_id, region_id, reservation_id,
                       (hour AT TIME ZONE 'UTC')::date AS day, sum(gpu_hours) AS h, count(*) AS n
                FROM usage_usagerecord GROUP BY 1, 2, 3, 4, 5)
            SELECT * FROM raw FULL JOIN usage_usagedaily d
              ON d.organization_id = raw.organization_id AND d.sku_id = raw.sku_id
             AND d.region_id = raw.region_id AND d.day = raw.day
             AND d.reservation_id IS NOT DISTINCT FROM raw.reservation_id
            WHERE raw.h IS DISTINCT FROM d.gpu_hours OR raw.n IS DISTINCT FROM d.record_count
            """
        )
        daily = cursor.fetchall()
        cursor.execute(
            """
            WITH raw AS (
                SELECT organization_id, sku_id, region_id, reservation_id,
                       date_trunc('month', hour AT TIME ZONE 'UTC')::date AS month,
                       sum(gpu_hours) AS h, count(*) AS n
                FROM usage_usagerecord GROUP BY 1, 2, 3, 4, 5)
            SELECT * FROM raw FULL JOIN usage_usagemonthly m
              ON m.organization_id = raw.organization_id AND m.sku_id = raw.sku_id
             AND m.region_id = raw.region_id AND m.month = raw.month
             AND m.reservation_id IS NOT DISTINCT FROM raw.reservation_id
            WHERE raw.h IS DISTINCT FROM m.gpu_hours OR raw.n IS DISTINCT FROM m.record_count
            """
        )
        monthly = cursor.fetchall()
    return daily, monthly
