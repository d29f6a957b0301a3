"""Metered GPU usage: hourly records as the provider's metering sends them, and the daily and
monthly rollups that every history page, statement and burn-down reads.

Rows change only through ``usage.services.usage_ingest``, which keeps the rollups equal to the
sums of the hourly records in the same transaction (``rebuild_usage_rollups`` recomputes them).
Rollups sum over every source; a day and a month are UTC calendar days and months.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.db.models.functions import ExtractDay
from django.db.models.lookups import Exact
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import TenantManager
from quotas.models import GpuSku, Region, Reservation


class IsUtcHourStart(models.Func):
    """True when a timestamp is exactly the start of a UTC hour (no minutes, no fraction)."""

    def as_sql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.get_source_expressions()[0])
        utc = f"{sql} AT TIME ZONE 'UTC'"
        return f"(date_trunc('hour', {utc}) = {utc})", (*params, *params)

    output_field = models.BooleanField()


# Digits a GPU-hours figure may carry after the decimal point (ingest rejects more).
GPU_HOURS_DECIMALS = 4


class UsageRecord(models.Model):
    """GPU-hours one organization used of one SKU in one region during one UTC hour.

    The natural key (organization, sku, region, reservation or none, hour, source) is unique
    with NULLS NOT DISTINCT: a record sent again replaces the one before, it never adds to it.
    Its index leads with (organization, hour), so it also serves every read of the table (one
    organization's records over a range of hours); the nullable reservation comes last, so the
    ingest's pre-image lookup (which compares it with IS NOT DISTINCT FROM) still narrows on
    every other column.
    """

    # No index but the natural key's, the primary key's and a tiny partial one: every index
    # costs each ingested row an insertion into a table of tens of millions. Nothing reads
    # records by GPU type or region alone (history reads the rollups), so deleting a GPU type
    # or region (refused anyway while usage names it) may scan the table. Records with a
    # reservation are few: a partial index serves the reservation's PROTECT.
    #
    # No foreign-key constraints either (db_constraint=False): checking them cost each batch
    # one lookup per row and key at commit. What they guaranteed holds without them
    # (docs/usage.md, "Why the hourly table has no foreign-key constraints"): the ingest, the
    # only writer, resolves every id from the catalog and locks those rows FOR KEY SHARE in its
    # transaction; PROTECT still refuses an ORM delete; and every record has daily and monthly
    # rollup rows naming the same organization, GPU type, region and reservation, whose
    # foreign keys make the database refuse any other delete.
    organization = models.ForeignKey(
        Organization,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    sku = models.ForeignKey(
        GpuSku, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    region = models.ForeignKey(
        Region, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    reservation = models.ForeignKey(
        Reservation,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    hour = models.DateTimeField(help_text="Start of the UTC hour [hour, hour + 1h).")
    gpu_hours = models.DecimalField(max_digits=12, decimal_places=GPU_HOURS_DECIMALS)
    mean_utilization = models.DecimalField(
        max_digits=5, decimal_places=4, null=True, blank=True, help_text="0 to 1."
    )
    source = models.CharField(max_length=32, default="metering")
    received_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()
    all_objects = models.Manager()  # noqa: DJ012 (managers first, as in quotas)

    class Meta:
        default_manager_name = "all_objects"
        ordering = ["hour", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "hour", "sku", "region", "source", "reservation"],
                name="usage_record_natural_key",
                nulls_distinct=False,
            ),
            models.CheckConstraint(
                condition=Q(gpu_hours__gte=Decimal("0")), name="usage_record_gpu_hours_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(mean_utilization__isnull=True)
                | Q(mean_utilization__gte=Decimal("0"), mean_utilization__lte=Decimal("1")),
                name="usage_record_utilization_range",
            ),
            models.CheckConstraint(
                condition=IsUtcHourStart("hour"),
                name="usage_record_on_the_hour",
            ),
        ]
        indexes = [
            models.Index(
                fields=["reservation"],
                name="usage_record_reservation",
                condition=Q(reservation__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.sku_id}@{self.region_id} {self.hour:%Y-%m-%d %H}h"


class UsageRollup(models.Model):
    """Sum of GPU-hours and number of hourly records in one bucket (all sources)."""

    # Foreign-key constraints, but no index per foreign key: each new bucket an ingest creates
    # (a batch of metering over weeks creates thousands) pays one insertion per index. The
    # bucket's key and (organization, day or month) lead with the organization, which serves
    # the organization's lookups; a GPU type or region is never deleted (refused while usage
    # names it, and the hourly table, which has no such index, is scanned for that anyway);
    # rows with a reservation are few, and a partial index serves the reservation's PROTECT.
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    sku = models.ForeignKey(GpuSku, on_delete=models.PROTECT, related_name="+", db_index=False)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", db_index=False)
    reservation = models.ForeignKey(
        Reservation,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    gpu_hours = models.DecimalField(
        max_digits=18, decimal_places=GPU_HOURS_DECIMALS, default=Decimal("0")
    )
    record_count = models.PositiveIntegerField(default=0)

    objects = TenantManager()
    all_objects = models.Manager()  # noqa: DJ012 (managers first, as in quotas)

    class Meta:
        abstract = True
        default_manager_name = "all_objects"


class UsageDaily(UsageRollup):
    day = models.DateField(help_text="UTC calendar day.")

    class Meta(UsageRollup.Meta):
        ordering = ["day", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "sku", "region", "day", "reservation"],
                name="usage_daily_key",
                nulls_distinct=False,
            ),
            models.CheckConstraint(
                condition=Q(gpu_hours__gte=Decimal("0")), name="usage_daily_not_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "day"], name="usage_daily_org_day"),
            models.Index(
                fields=["reservation"],
                name="usage_daily_reservation",
                condition=Q(reservation__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.sku_id}@{self.region_id} {self.day}"


class UsageMonthly(UsageRollup):
    month = models.DateField(help_text="First day of the UTC calendar month.")

    class Meta(UsageRollup.Meta):
        ordering = ["month", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "sku", "region", "month", "reservation"],
                name="usage_monthly_key",
                nulls_distinct=False,
            ),
            models.CheckConstraint(
                condition=Q(gpu_hours__gte=Decimal("0")), name="usage_monthly_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(Exact(ExtractDay("month"), 1)), name="usage_monthly_first_day"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "month"], name="usage_monthly_org_month"),
            models.Index(fields=["month", "sku"], name="usage_monthly_month_sku"),
            models.Index(
                fields=["reservation"],
                name="usage_monthly_reservation",
                condition=Q(reservation__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.sku_id}@{self.region_id} {self.month:%Y-%m}"
