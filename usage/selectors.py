"""Reads of metered usage. History, totals and the fleet view read the daily and monthly
rollups only (never the hourly table); the records list and hourly aggregates read the hourly
table through its natural key, which leads with (organization, hour).

Windows are half-open [start, end) of UTC dates for rollup reads, of UTC datetimes for hourly
reads. Daily rollups are UTC calendar days; weeks start on Monday (ISO); months are UTC months.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from django.db import connection
from django.db.models import Count, DateField, F, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from accounts.models import Organization
from portal.prepared import prepared_cursor
from quotas.models import GpuSku, Region, Reservation

from .models import UsageDaily, UsageMonthly, UsageRecord

Granularity = Literal["day", "week", "month"]
GroupKey = Literal["sku", "region", "reservation"]
GROUP_KEYS: tuple[GroupKey, ...] = ("sku", "region", "reservation")
ZERO = Decimal("0")


@dataclass(frozen=True)
class UsageRow:
    """One bucket (or the whole window when ``bucket`` is None) of one group."""

    bucket: date | datetime | None
    sku_id: int | None
    region_id: int | None
    reservation_id: int | None
    gpu_hours: Decimal
    record_count: int


@dataclass(frozen=True)
class ReservationUsage:
    reservation: Reservation
    reserved_gpu_hours: Decimal  # GPUs x hours of the reservation inside the window
    used_gpu_hours: Decimal
    utilization: Decimal | None  # used / reserved, None when nothing was reserved


@dataclass(frozen=True)
class QuotaUse:
    """One SKU in one region: the quota at ``hour`` against the GPUs in use in that hour."""

    hour: datetime
    sku: GpuSku
    region: Region
    reserved: int
    on_demand: int
    in_use: Decimal  # GPU-hours metered in the hour: the mean number of GPUs in use
    percent: Decimal | None  # in use / quota x 100, one decimal; None: use without quota

    @property
    def quota(self) -> int:
        return self.reserved + self.on_demand

    @property
    def meter_value(self) -> Decimal:
        """What the bar shows: the percentage, capped at 100 (use without quota: full)."""
        return Decimal(100) if self.percent is None else min(self.percent, Decimal(100))


@dataclass(frozen=True)
class FleetSkuUsage:
    sku: GpuSku
    gpu_hours: Decimal
    organization_count: int


def utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, UTC)


def _month_aligned(start: date, end: date) -> bool:
    return start.day == 1 and end.day == 1


def _check_groups(group_by: Iterable[str]) -> tuple[GroupKey, ...]:
    groups = tuple(group_by)
    for key in groups:
        if key not in GROUP_KEYS:
            raise ValueError(f"group_by takes {', '.join(GROUP_KEYS)}, not {key!r}.")
    return groups  # type: ignore[return-value]


def _rollup_rows(
    *,
    organization: Organization | int | None,
    start: date,
    end: date,
    granularity: Granularity | None,
    group_by: Sequence[GroupKey],
) -> list[UsageRow]:
    """Sums over the rollups: the monthly table when the window and the buckets allow it."""
    use_monthly = _month_aligned(start, end) and granularity in (None, "month")
    model, field = (UsageMonthly, "month") if use_monthly else (UsageDaily, "day")
    manager = model.objects
    queryset = (
        manager.unscoped_for_staff()
        if organization is None
        else manager.for_organization(organization)
    ).filter(**{f"{field}__gte": start, f"{field}__lt": end})
    values: list[str] = [f"{key}_id" for key in group_by]
    if granularity is not None:
        if granularity == "day" or (granularity == "month" and use_monthly):
            queryset = queryset.annotate(bucket=F(field))
        else:
            queryset = queryset.annotate(bucket=Trunc(field, granularity, output_field=DateField()))
        values.insert(0, "bucket")
    rows = (
        queryset.values(*values)
        .annotate(total=Sum("gpu_hours"), records=Sum("record_count"))
        .order_by(*values)
    )
    return [
        UsageRow(
            bucket=row.get("bucket"),
            sku_id=row.get("sku_id"),
            region_id=row.get("region_id"),
            reservation_id=row.get("reservation_id"),
            gpu_hours=row["total"] or ZERO,
            record_count=row["records"] or 0,
        )
        for row in rows
    ]


def usage_series(
    *,
    organization: Organization | int,
    start: date,
    end: date,
    granularity: Granularity,
    group_by: Literal["sku", "region"] | None = None,
) -> list[UsageRow]:
    """GPU-hours per bucket (UTC day, ISO week starting Monday, or UTC month) over [start, end),
    optionally split by SKU or by region; buckets without usage are absent."""
    if granularity not in ("day", "week", "month"):
        raise ValueError("granularity is day, week or month.")
    groups = _check_groups(() if group_by is None else (group_by,))
    return _rollup_rows(
        organization=organization, start=start, end=end, granularity=granularity, group_by=groups
    )


def usage_series_rows(
    *,
    organization: Organization | int,
    start: date,
    end: date,
    granularity: Granularity,
    group_by: Sequence[GroupKey] = (),
) -> list[UsageRow]:
    """Like ``usage_series`` with any combination of groups (the API's aggregates)."""
    if granularity not in ("day", "week", "month"):
        raise ValueError("granularity is day, week or month.")
    return _rollup_rows(
        organization=organization,
        start=start,
        end=end,
        granularity=granularity,
        group_by=_check_groups(group_by),
    )


@dataclass(frozen=True)
class UsageAggregate:
    """One bucket of one group as the API shows it: GPU type and region by code."""

    bucket: date
    sku: str | None
    region: str | None
    reservation_id: int | None
    gpu_hours: Decimal
    record_count: int


# Per group key: the rollup column, and the catalog table and alias whose code it shows.
_AGGREGATE_GROUPS: dict[GroupKey, tuple[str, str | None, str | None]] = {
    "sku": ("sku_id", GpuSku._meta.db_table, "s"),
    "region": ("region_id", Region._meta.db_table, "g"),
    "reservation": ("reservation_id", None, None),
}


def usage_aggregate_rows(
    *,
    organization: Organization | int,
    start: date,
    end: date,
    granularity: Literal["day", "month"],
    group_by: Sequence[GroupKey] = (),
) -> list[UsageAggregate]:
    """The API's daily and monthly aggregates: ``usage_series_rows`` for days (the daily
    rollups) or whole months (the monthly rollups, [start, end) on 1sts), in the same order
    (bucket, then the groups' ids in ``group_by`` order), with the GPU types' and regions'
    codes joined in.

    One statement written out rather than built by the ORM: the usage history is the hottest
    read of the API, and composing the grouped query cost more CPU than PostgreSQL spends on
    it (an index scan of the organization's rollups, a few dozen rows a year of months). It
    names the organization like ``for_organization`` does. Each text (a granularity and a
    grouping: a few dozen at most) is prepared once per connection (``portal.prepared``):
    PostgreSQL spent more CPU planning it than running it.
    """
    groups = _check_groups(group_by)
    if granularity == "month":
        if not _month_aligned(start, end):
            raise ValueError("Monthly aggregates cover whole months: start and end on the 1st.")
        table, bucket = UsageMonthly._meta.db_table, "month"
    elif granularity == "day":
        table, bucket = UsageDaily._meta.db_table, "day"
    else:
        raise ValueError("granularity is day or month.")
    org_id = organization if isinstance(organization, int) else organization.pk
    if org_id is None:
        raise ValueError("usage_aggregate_rows() needs a saved organization.")
    quote = connection.ops.quote_name
    columns, joins, keys = [f"r.{bucket}"], [], [f"r.{bucket}"]
    for key in groups:
        column, catalog, alias = _AGGREGATE_GROUPS[key]
        keys.append(f"r.{column}")
        if catalog is None:
            columns.append(f"r.{column}")
        else:
            columns.append(f"{alias}.code")
            joins.append(f"JOIN {quote(catalog)} {alias} ON {alias}.id = r.{column}")
    # Only names of this module and the models go into the text; the values are parameters.
    sql = (
        f"SELECT {', '.join(columns)}, SUM(r.gpu_hours), SUM(r.record_count)"  # noqa: S608
        f" FROM {quote(table)} r {' '.join(joins)}"
        f" WHERE r.organization_id = %s AND r.{bucket} >= %s AND r.{bucket} < %s"
        f" GROUP BY {', '.join(keys + columns[1:])} ORDER BY {', '.join(keys)}"
    )
    with prepared_cursor() as cursor:
        cursor.execute(sql, [org_id, start, end])
        fetched = cursor.fetchall()
    rows = []
    for row in fetched:
        named = dict(zip(groups, row[1:-2], strict=True))
        rows.append(
            UsageAggregate(
                bucket=row[0],
                sku=named.get("sku"),
                region=named.get("region"),
                reservation_id=named.get("reservation"),
                gpu_hours=row[-2],
                record_count=row[-1],
            )
        )
    return rows


def usage_totals(
    *,
    organization: Organization | int,
    start: date,
    end: date,
    group_by: Sequence[GroupKey] = ("sku", "region"),
) -> list[UsageRow]:
    """GPU-hours per group over [start, end) (UTC dates); ``bucket`` is None."""
    return _rollup_rows(
        organization=organization,
        start=start,
        end=end,
        granularity=None,
        group_by=_check_groups(group_by),
    )


def usage_by_reservation(
    *, organization: Organization | int, start: date, end: date
) -> list[ReservationUsage]:
    """Reserved against used GPU-hours for every reservation that overlaps [start, end):
    reserved = GPUs x the hours of the reservation inside the window."""
    window_start, window_end = utc_midnight(start), utc_midnight(end)
    reservations = list(
        Reservation.objects.for_organization(organization)
        .filter(starts_at__lt=window_end, ends_at__gt=window_start)
        .select_related("pool__sku", "pool__region")
        .order_by("starts_at", "id")
    )
    used = {
        row.reservation_id: row.gpu_hours
        for row in _rollup_rows(
            organization=organization,
            start=start,
            end=end,
            granularity=None,
            group_by=("reservation",),
        )
        if row.reservation_id is not None
    }
    result = []
    for reservation in reservations:
        overlap = min(reservation.ends_at, window_end) - max(reservation.starts_at, window_start)
        reserved = (
            Decimal(reservation.gpu_count) * Decimal(int(overlap.total_seconds())) / Decimal(3600)
        ).quantize(Decimal("0.0001"))
        used_hours = used.get(reservation.pk, ZERO)
        utilization = (used_hours / reserved).quantize(Decimal("0.0001")) if reserved else None
        result.append(
            ReservationUsage(
                reservation=reservation,
                reserved_gpu_hours=reserved,
                used_gpu_hours=used_hours,
                utilization=utilization,
            )
        )
    return result


def usage_quota_utilization(
    *, organization: Organization, now: datetime | None = None
) -> tuple[datetime, list[QuotaUse]]:
    """The organization's quota per SKU and region against the GPUs in use, judged on the
    latest metered hour: the last hour with usage up to the last complete hour (metering
    arrives late; an hour still running is not complete), else the last complete hour.

    GPUs in use = the GPU-hours metered in that hour (the mean number of GPUs busy), quota =
    running reservations + on-demand limit at the hour's start
    (``quotas.selectors.quotas.organization_quota_at``), the figures the quota alerts judge.
    Five queries whatever the records: the latest hour's usage (through the (organization,
    hour) index), the quota (two), GPU types and regions.
    """
    from quotas.selectors.quotas import organization_quota_at

    now = now or timezone.now()
    last_complete = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=1
    )
    records = UsageRecord.objects.for_organization(organization)
    used_rows = list(
        records.filter(
            hour=Subquery(
                records.filter(hour__lte=last_complete).order_by("-hour").values("hour")[:1]
            )
        )
        .values("hour", "sku_id", "region_id")
        .annotate(gpus=Sum("gpu_hours"))
        .order_by()
    )
    hour = used_rows[0]["hour"] if used_rows else last_complete
    used = {(row["sku_id"], row["region_id"]): row["gpus"] for row in used_rows}
    quota = {
        (line.sku_id, line.region_id): line
        for line in organization_quota_at(organization=organization, at=hour)
    }
    keys = set(used) | set(quota)
    skus = GpuSku.objects.in_bulk({sku_id for sku_id, _ in keys})
    regions = Region.objects.in_bulk({region_id for _, region_id in keys})
    result = []
    for sku_id, region_id in keys:
        line = quota.get((sku_id, region_id))
        reserved, on_demand = (line.reserved, line.on_demand) if line else (0, 0)
        in_use = used.get((sku_id, region_id), ZERO)
        limit = reserved + on_demand
        percent = (
            (in_use * 100 / limit).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
            if limit
            else (None if in_use else Decimal("0.0"))
        )
        result.append(
            QuotaUse(
                hour=hour,
                sku=skus[sku_id],
                region=regions[region_id],
                reserved=reserved,
                on_demand=on_demand,
                in_use=in_use,
                percent=percent,
            )
        )
    result.sort(key=lambda row: (row.sku.name, row.region.code))
    return hour, result


def usage_fleet_by_sku(*, start: date, end: date) -> list[FleetSkuUsage]:
    """Staff: GPU-hours per SKU across every organization over whole UTC months [start, end),
    from the monthly rollups."""
    if not _month_aligned(start, end):
        raise ValueError("The fleet view covers whole months: start and end on the 1st.")
    rows = (
        UsageMonthly.objects.unscoped_for_staff()
        .filter(month__gte=start, month__lt=end)
        .values("sku_id")
        .annotate(total=Sum("gpu_hours"), orgs=Count("organization_id", distinct=True))
        .order_by("sku_id")
    )
    totals = {row["sku_id"]: row for row in rows}
    skus = GpuSku.objects.filter(pk__in=totals).order_by("name")
    return [
        FleetSkuUsage(
            sku=sku,
            gpu_hours=totals[sku.pk]["total"] or ZERO,
            organization_count=totals[sku.pk]["orgs"],
        )
        for sku in skus
    ]


def usage_record_list(
    *,
    organization: Organization | int,
    sku: GpuSku | int | None = None,
    region: Region | int | None = None,
    reservation: Reservation | int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[UsageRecord]:
    """Hourly records of one organization, filtered, newest hour first (for the API)."""
    where = Q()
    if sku is not None:
        where &= Q(sku=sku)
    if region is not None:
        where &= Q(region=region)
    if reservation is not None:
        where &= Q(reservation=reservation)
    if start is not None:
        where &= Q(hour__gte=start)
    if end is not None:
        where &= Q(hour__lt=end)
    return (
        UsageRecord.objects.for_organization(organization)
        .filter(where)
        .select_related("sku", "region")
        .order_by("-hour", "-id")
    )


def usage_hourly_rows(
    *,
    organization: Organization | int,
    start: datetime,
    end: datetime,
    group_by: Sequence[GroupKey] = (),
) -> list[UsageRow]:
    """Per-hour sums from the hourly table (over sources, and over the groups not named)."""
    values = ["hour", *(f"{key}_id" for key in _check_groups(group_by))]
    rows = (
        UsageRecord.objects.for_organization(organization)
        .filter(hour__gte=start, hour__lt=end)
        .values(*values)
        .annotate(total=Sum("gpu_hours"), records=Count("id"))
        .order_by(*values)
    )
    return [
        UsageRow(
            bucket=row["hour"],
            sku_id=row.get("sku_id"),
            region_id=row.get("region_id"),
            reservation_id=row.get("reservation_id"),
            gpu_hours=row["total"],
            record_count=row["records"],
        )
        for row in rows
    ]
