"""The usage history page: GPU-hours and cost by day, week or month, by GPU type or region,
reserved against used GPU-hours per reservation, quota utilization, and the same figures as
CSV; and the staff fleet-usage page."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from django.http import HttpResponse
from django.utils import timezone
from django.views.generic import TemplateView

from accounts.permissions import STAFF_CAPABILITIES
from accounts.selectors import organization_list_for_staff
from accounts.views_base import OrganizationViewMixin, StaffViewMixin
from quotas.models import GpuSku, Region

from .costing import usage_cost_lines
from .fleet import next_month, usage_fleet
from .forms import FleetUsageForm, UsageHistoryForm
from .selectors import usage_by_reservation, usage_quota_utilization

ZERO = Decimal("0")


def history_rows(*, organization, start, end, granularity, group_by) -> dict:
    """The figures of the page: one row per (bucket, group) with GPU-hours and cost per
    currency, from ``usage_cost_lines`` (the rollups, priced), and the chart series."""
    lines = usage_cost_lines(
        organization=organization, start=start, end=end, granularity=granularity
    )
    hours: dict[tuple, Decimal] = defaultdict(lambda: ZERO)
    cost: dict[tuple, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    group_ids = set()
    for line in lines:
        group_id = line.sku_id if group_by == "sku" else line.region_id
        group_ids.add(group_id)
        key = (line.bucket, group_id)
        hours[key] += line.gpu_hours
        cost[key][line.currency] += line.amount
    if group_by == "sku":
        names = dict(GpuSku.objects.filter(pk__in=group_ids).values_list("pk", "name"))
    else:
        names = dict(Region.objects.filter(pk__in=group_ids).values_list("pk", "code"))
    groups = sorted(group_ids, key=lambda pk: names[pk])
    buckets = sorted({bucket for bucket, _ in hours})
    currencies = sorted({c for per in cost.values() for c in per})
    rows = [
        {
            "bucket": bucket,
            "group": names[group_id],
            "gpu_hours": hours[(bucket, group_id)],
            "cost": {c: cost[(bucket, group_id)].get(c, ZERO) for c in currencies},
        }
        for bucket in buckets
        for group_id in groups
        if (bucket, group_id) in hours
    ]
    totals = {
        "gpu_hours": sum(hours.values(), ZERO),
        "cost": {c: sum((per.get(c, ZERO) for per in cost.values()), ZERO) for c in currencies},
    }
    chart = {
        "labels": [bucket.isoformat() for bucket in buckets],
        "currencies": currencies,
        "series": [
            {
                "label": names[group_id],
                "gpu_hours": [str(hours.get((bucket, group_id), ZERO)) for bucket in buckets],
            }
            for group_id in groups
        ],
        "cost": {
            c: [
                str(sum((cost[(b, g)].get(c, ZERO) for g in groups if (b, g) in cost), ZERO))
                for b in buckets
            ]
            for c in currencies
        },
    }
    return {"rows": rows, "totals": totals, "currencies": currencies, "chart": chart}


class UsageHistoryView(OrganizationViewMixin, TemplateView):
    template_name = "usage/usage_history.html"
    permission_map = {"GET": "usage.view", "HEAD": "usage.view"}

    def get(self, request, *args, **kwargs):
        today = timezone.now().date()
        form = UsageHistoryForm(request.GET, today=today)
        context = self.get_context_data(form=form)
        if form.is_valid():
            params = form.cleaned_data
            start, end = params["start"], params["end"] + timedelta(days=1)
            figures = history_rows(
                organization=self.organization,
                start=start,
                end=end,
                granularity=params["granularity"],
                group_by=params["group_by"],
            )
            if request.GET.get("format") == "csv":
                return self.csv_response(figures, params)
            quota_hour, quota_use = usage_quota_utilization(organization=self.organization)
            context.update(
                figures=figures,
                quota_hour=quota_hour,
                quota_use=quota_use,
                params=params,
                reservations=usage_by_reservation(
                    organization=self.organization, start=start, end=end
                ),
                csv_query=request.GET.urlencode(),
            )
        return self.render_to_response(context, status=200 if form.is_valid() else 400)

    def csv_response(self, figures: dict, params: dict) -> HttpResponse:
        """Exactly the table on the page, one row per period and group."""
        name = f"usage-{self.organization.slug}-{params['start']}-{params['end']}.csv"
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        writer = csv.writer(response, lineterminator="\n")
        group = "gpu_type" if params["group_by"] == "sku" else "region"
        currencies = figures["currencies"]
        writer.writerow(
            [f"{params['granularity']}_utc", group, "gpu_hours", *(f"cost_{c}" for c in currencies)]
        )
        for row in figures["rows"]:
            writer.writerow(
                [
                    row["bucket"].isoformat(),
                    row["group"],
                    row["gpu_hours"],
                    *(row["cost"][c] for c in currencies),
                ]
            )
        return response


class FleetUsageView(StaffViewMixin, TemplateView):
    """Staff: GPU-hours and cost by GPU type, by region and the top organizations over whole
    months, for the organizations the staff member may see (``organization_list_for_staff``),
    with the ``usage.view`` capability of the staff role table; and the same as CSV."""

    template_name = "usage/staff_fleet_usage.html"
    staff_roles = STAFF_CAPABILITIES["usage.view"]

    def get(self, request, *args, **kwargs):
        form = FleetUsageForm(request.GET, today=timezone.now().date())
        context = self.get_context_data(form=form)
        if not form.is_valid():
            return self.render_to_response(context, status=400)
        start, end = form.cleaned_data["start"], next_month(form.cleaned_data["end"])
        fleet = usage_fleet(
            organizations=organization_list_for_staff(user=request.user), start=start, end=end
        )
        if request.GET.get("format") == "csv":
            return self.csv_response(fleet)
        chart = {
            "currencies": fleet.currencies,
            "by_sku": self.chart_part(fleet.by_sku, fleet.currencies),
        }
        context.update(
            fleet=fleet,
            chart=chart,
            last_month=form.cleaned_data["end"],
            csv_query=request.GET.urlencode(),
        )
        return self.render_to_response(context)

    @staticmethod
    def chart_part(rows, currencies) -> dict:
        return {
            "labels": [row.name for row in rows],
            "gpu_hours": [str(row.gpu_hours) for row in rows],
            "cost": [str(row.cost[currencies[0]]) for row in rows] if len(currencies) == 1 else [],
        }

    def csv_response(self, fleet) -> HttpResponse:
        """Exactly the three tables on the page, one after the other."""
        last = fleet.end - timedelta(days=1)
        name = f"fleet-usage-{fleet.start:%Y-%m}-{last:%Y-%m}.csv"
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        writer = csv.writer(response, lineterminator="\n")
        writer.writerow(["table", "name", "gpu_hours", *(f"cost_{c}" for c in fleet.currencies)])
        for table, rows in (
            ("gpu_type", fleet.by_sku),
            ("region", fleet.by_region),
            ("top_organization", fleet.top_organizations),
        ):
            for row in rows:
                writer.writerow(
                    [table, row.name, row.gpu_hours, *(row.cost[c] for c in fleet.currencies)]
                )
        return response
