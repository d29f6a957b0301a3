"""What the request form shows as the user types: availability and a price quote.

Reads only; the figures come from the availability selectors and ``quote_price``, so the page
and the automatic checks can never disagree about what fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import Organization
from portal.errors import DomainError
from quotas.models import CapacityPool, GpuSku, Region
from quotas.pricing import Quote, quote_price
from quotas.selectors.availability import (
    PoolAvailability,
    pool_alternatives,
    pool_earliest_start,
    pool_free_min_by_pool,
)

# How far ahead the earliest start is searched.
EARLIEST_START_HORIZON = timedelta(days=365)


@dataclass(frozen=True)
class AlternativeFit:
    """An acceptable alternative pool (another SKU and/or region) and whether it fits."""

    pool: CapacityPool
    free_min: int
    fits: bool


@dataclass(frozen=True)
class RequestPreview:
    sku: GpuSku
    region: Region
    gpu_count: int
    starts_at: datetime
    ends_at: datetime
    pool: CapacityPool | None
    free_min: int | None  # the least free GPUs over the window; None without a pool
    earliest_start: datetime | None  # None when it fits as asked or nothing fits in the horizon
    other_regions: list[PoolAvailability] = field(default_factory=list)
    alternatives: list[AlternativeFit] = field(default_factory=list)
    quote: Quote | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.free_min is not None and self.free_min >= self.gpu_count


def request_preview(
    *,
    organization: Organization,
    sku: GpuSku,
    region: Region,
    gpu_count: int,
    starts_at: datetime,
    ends_at: datetime,
    alternative_skus: list[GpuSku] = (),
    alternative_regions: list[Region] = (),
) -> RequestPreview:
    problems: list[str] = []
    if sku.sold_in_whole_nodes and gpu_count % sku.gpus_per_node:
        problems.append(
            f"{sku.name} comes in whole nodes of {sku.gpus_per_node} GPUs: "
            f"ask for {gpu_count - gpu_count % sku.gpus_per_node or sku.gpus_per_node} "
            f"or {gpu_count - gpu_count % sku.gpus_per_node + sku.gpus_per_node}."
        )
    earliest_allowed = timezone.now() + timedelta(minutes=settings.QUOTAS_MIN_LEAD_MINUTES)
    if starts_at < earliest_allowed:
        problems.append(
            f"The start must be at least {settings.QUOTAS_MIN_LEAD_MINUTES} minutes from now."
        )
    skus = {sku.pk: sku, **{s.pk: s for s in alternative_skus}}
    regions = {region.pk: region, **{r.pk: r for r in alternative_regions}}
    pools = {
        (p.sku_id, p.region_id): p
        for p in CapacityPool.objects.filter(
            sku_id__in=skus, region_id__in=regions, active=True
        ).select_related("sku", "region")
    }
    pool = pools.get((sku.pk, region.pk))
    free_by_pool = pool_free_min_by_pool(
        pools=list(pools.values()), starts_at=starts_at, ends_at=ends_at
    )
    free_min = free_by_pool.get(pool.pk) if pool else None
    earliest = None
    other_regions: list[PoolAvailability] = []
    if pool is None:
        problems.append(f"{sku.name} is not offered in {region.code}.")
    elif free_min < gpu_count:
        try:
            earliest = pool_earliest_start(
                pool=pool,
                gpu_count=gpu_count,
                duration=ends_at - starts_at,
                not_before=max(starts_at, earliest_allowed),
                horizon=EARLIEST_START_HORIZON,
            )
        except DomainError as exc:
            problems.append(exc.message)
    if gpu_count > 0:
        other_regions = pool_alternatives(
            sku=sku, gpu_count=gpu_count, starts_at=starts_at, ends_at=ends_at, exclude_pool=pool
        )
    alternatives = [
        AlternativeFit(pool=p, free_min=free_by_pool[p.pk], fits=free_by_pool[p.pk] >= gpu_count)
        for key, p in sorted(pools.items(), key=lambda kv: (kv[1].sku.name, kv[1].region.code))
        if key != (sku.pk, region.pk)
    ]
    quote = quote_price(
        organization=organization,
        sku=sku,
        region=region,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
    )
    return RequestPreview(
        sku=sku,
        region=region,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
        pool=pool,
        free_min=free_min,
        earliest_start=earliest,
        other_regions=other_regions,
        alternatives=alternatives,
        quote=quote,
        problems=problems,
    )
