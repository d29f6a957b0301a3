"""Read-only admin views of metered usage: records change only through the ingest, rollups
only through the ingest and ``rebuild_usage_rollups``."""

from __future__ import annotations

from django.contrib import admin

from .models import UsageDaily, UsageMonthly, UsageRecord


class ReadOnlyAdmin(admin.ModelAdmin):
    list_select_related = ["organization", "sku", "region"]
    show_full_result_count = False  # counting millions of rows on every page is not worth it

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = [
        "hour",
        "organization",
        "sku",
        "region",
        "reservation_id",
        "source",
        "gpu_hours",
    ]
    list_filter = ["source", "sku", "region"]
    date_hierarchy = "hour"
    raw_id_fields = ["organization", "reservation"]


@admin.register(UsageDaily)
class UsageDailyAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "organization",
        "sku",
        "region",
        "reservation_id",
        "gpu_hours",
        "record_count",
    ]
    list_filter = ["sku", "region"]
    date_hierarchy = "day"


@admin.register(UsageMonthly)
class UsageMonthlyAdmin(ReadOnlyAdmin):
    list_display = [
        "month",
        "organization",
        "sku",
        "region",
        "reservation_id",
        "gpu_hours",
        "record_count",
    ]
    list_filter = ["sku", "region"]
