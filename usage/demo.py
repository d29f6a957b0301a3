"""Demo usage: twelve months of hourly usage for acme and globex, up to the current hour.

Deterministic (one seeded generator per stream, anchored to the first day of the month eleven
months back) and idempotent (loaded through ``usage_ingest``: a second run finds every record
unchanged). Daytime weekdays run hot, nights and weekends cool, and usage grows over the year;
reservations of the demo organizations that ran in the window carry their own usage.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import chain

from django.utils import timezone

from accounts.models import Organization
from quotas.models import CapacityPool, Reservation

from .parsers import IterStream
from .services import usage_ingest

# organization, GPU type, region, GPUs in use at the busiest hour
ON_DEMAND = [
    ("acme", "h100-sxm-80gb", "us-east-1", 64),
    ("acme", "a100-sxm-80gb", "us-east-2", 32),
    ("globex", "a100-sxm-40gb", "us-central-1", 24),
    ("globex", "l40s-48gb", "us-west-1", 16),
]
RESERVATION_STATES = ("active", "completed", "released_early")
HOUR = timedelta(hours=1)


def window(now: datetime) -> tuple[datetime, datetime]:
    """[first hour of the month eleven months back, the current hour)."""
    now = now.astimezone(UTC)
    year, month = now.year, now.month - 11
    if month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=UTC), now.replace(minute=0, second=0, microsecond=0)


def _shape(at: datetime) -> float:
    weekend = at.weekday() >= 5
    if weekend:
        return 0.45
    return 1.0 if 8 <= at.hour < 20 else 0.55


def _on_demand_rows(streams, start: datetime, end: datetime) -> Iterator[str]:
    span = 366 * 24  # fixed, so an hour's figure does not depend on when the seeder runs
    for index, (org, sku, region, peak) in enumerate(streams):
        rng = random.Random(f"{index}:{org}:{sku}:{region}:{start:%Y-%m}")  # noqa: S311
        at, step = start, 0
        while at < end:
            growth = 0.6 + 0.4 * step / span
            value = Decimal(peak * _shape(at) * growth * rng.uniform(0.85, 1.1)).quantize(
                Decimal("0.01")
            )
            utilization = Decimal(rng.uniform(0.55, 0.95)).quantize(Decimal("0.0001"))
            yield f"{org},{sku},{region},{at.isoformat()},{value},,{utilization}\n"
            at += HOUR
            step += 1


def _reserved_rows(reservations, start: datetime, end: datetime) -> Iterator[str]:
    for reservation in reservations:
        seed = f"reservation:{reservation.pk}:{reservation.starts_at:%Y-%m-%d}"
        rng = random.Random(seed)  # noqa: S311 (demo figures, not secrets)
        stop = min(reservation.ends_at, end, reservation.ended_at or reservation.ends_at)
        at = max(reservation.starts_at, start)
        org = reservation.organization.slug
        sku, region = reservation.pool.sku.code, reservation.pool.region.code
        while at < stop:
            share = rng.uniform(0.7, 0.98) * (0.8 if at.weekday() >= 5 else 1.0)
            value = Decimal(reservation.gpu_count * share).quantize(Decimal("0.01"))
            yield (
                f"{org},{sku},{region},{at.isoformat()},{value},{reservation.pk},"
                f"{Decimal(share).quantize(Decimal('0.0001'))}\n"
            )
            at += HOUR


def seed() -> str:
    start, end = window(timezone.now())
    organizations = set(
        Organization.objects.filter(slug__in={row[0] for row in ON_DEMAND}).values_list(
            "slug", flat=True
        )
    )
    offered = set(CapacityPool.objects.values_list("sku__code", "region__code"))
    streams = [row for row in ON_DEMAND if row[0] in organizations and row[1:3] in offered]
    if not streams:
        return "no demo organizations or pools: nothing to meter"
    reservations = list(
        Reservation.objects.unscoped_for_staff()
        .filter(
            organization__slug__in=organizations,
            state__in=RESERVATION_STATES,
            starts_at__lt=end,
            ends_at__gt=start,
        )
        .select_related("organization", "pool__sku", "pool__region")
        .order_by("pk")
    )

    def body() -> Iterator[bytes]:
        yield b"organization,sku,region,hour,gpu_hours,reservation,mean_utilization\n"
        lines: list[str] = []
        for line in chain(
            _on_demand_rows(streams, start, end), _reserved_rows(reservations, start, end)
        ):
            lines.append(line)
            if len(lines) == 5000:
                yield "".join(lines).encode()
                lines.clear()
        yield "".join(lines).encode()

    result = usage_ingest(stream=IterStream(body()), content_type="text/csv")
    return (
        f"{result.received:,} hourly records from {start:%Y-%m-%d} "
        f"({len(reservations)} reservations): {result.inserted:,} new, "
        f"{result.replaced:,} replaced, {result.unchanged:,} unchanged"
    )
