"""An organization's quota: what it may use at an instant, per SKU and region.

Quota at t = GPUs of its reservations running at t (scheduled or active, and past ones while
they ran: a reservation released early counts until its release) + its on-demand limit at t
(the last ``OnDemandQuotaChange`` effective at or before t). Windows are half-open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Case, DateTimeField, F, Q, Sum, When
from django.db.models.functions import Coalesce

from accounts.models import Organization
from quotas.models import GpuSku, OnDemandQuotaChange, Region, Reservation
from quotas.workflow import ReservationState


@dataclass(frozen=True)
class QuotaLine:
    sku_id: int
    region_id: int
    reserved: int
    on_demand: int

    @property
    def total(self) -> int:
        return self.reserved + self.on_demand


@dataclass(frozen=True)
class QuotaPoint:
    """The quota from ``at`` until the next point."""

    at: datetime
    reserved: int
    on_demand: int

    @property
    def total(self) -> int:
        return self.reserved + self.on_demand


def _reservations_effective(organization: Organization):
    """Reservations that count while they run, annotated with the end they really had."""
    return (
        Reservation.objects.for_organization(organization)
        .exclude(state=ReservationState.CANCELLED)
        .annotate(
            effective_end=Case(
                When(
                    state=ReservationState.RELEASED_EARLY,
                    then=Coalesce(F("ended_at"), F("ends_at")),
                ),
                default=F("ends_at"),
                output_field=DateTimeField(),
            )
        )
    )


def organization_quota_at(*, organization: Organization, at: datetime) -> list[QuotaLine]:
    """The organization's quota per (SKU, region) at the instant ``at``: two queries."""
    reserved = (
        _reservations_effective(organization)
        .filter(starts_at__lte=at, effective_end__gt=at)
        .values("pool__sku_id", "pool__region_id")
        .annotate(gpus=Sum("gpu_count"))
    )
    lines: dict[tuple[int, int], list[int]] = {}
    for row in reserved:
        lines[(row["pool__sku_id"], row["pool__region_id"])] = [row["gpus"], 0]
    changes = (
        OnDemandQuotaChange.objects.for_organization(organization)
        .filter(effective_at__lte=at)
        .order_by("sku_id", "region_id", "-effective_at", "-id")
        .distinct("sku_id", "region_id")
        .values("sku_id", "region_id", "new_limit")
    )
    for row in changes:
        lines.setdefault((row["sku_id"], row["region_id"]), [0, 0])[1] = row["new_limit"]
    return [
        QuotaLine(sku_id=sku_id, region_id=region_id, reserved=r, on_demand=o)
        for (sku_id, region_id), (r, o) in sorted(lines.items())
        if r or o
    ]


def organization_quota_history(
    *,
    organization: Organization,
    sku: GpuSku | int,
    region: Region | int,
    since: datetime,
    until: datetime,
) -> list[QuotaPoint]:
    """The organization's quota for one SKU and region as steps over [since, until): the
    first point is the level at ``since``, then one point at every change."""
    sku_id = sku if isinstance(sku, int) else sku.pk
    region_id = region if isinstance(region, int) else region.pk
    reservations = list(
        _reservations_effective(organization)
        .filter(pool__sku_id=sku_id, pool__region_id=region_id)
        .filter(Q(starts_at__lt=until) & Q(effective_end__gt=since))
        .values_list("starts_at", "effective_end", "gpu_count")
    )
    changes = list(
        OnDemandQuotaChange.objects.for_organization(organization)
        .filter(sku_id=sku_id, region_id=region_id, effective_at__lt=until)
        .order_by("effective_at", "id")
        .values_list("effective_at", "new_limit")
    )
    instants = {since}
    instants.update(t for s, e, _ in reservations for t in (s, e) if since < t < until)
    instants.update(t for t, _ in changes if since < t)
    points: list[QuotaPoint] = []
    for at in sorted(instants):
        reserved = sum(n for s, e, n in reservations if s <= at < e)
        on_demand = 0
        for effective_at, limit in changes:
            if effective_at <= at:
                on_demand = limit
        point = QuotaPoint(at=at, reserved=reserved, on_demand=on_demand)
        if not points or (points[-1].reserved, points[-1].on_demand) != (reserved, on_demand):
            points.append(point)
    return points
