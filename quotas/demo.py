"""Demo catalog: US data centres, NVIDIA GPU types and pools with tens of thousands of GPUs.

Idempotent: regions and SKUs are matched by code and reset to these figures; a capacity change
is added only when its pool has no change with the same reason. Deterministic: installed
capacity dates from a fixed day; the future events (a new hall, a maintenance window) are
placed relative to the first day of the month the demo is first loaded in, so they stay ahead
of "now" for a demo. Capacity goes through ``capacity_change_add``, like any other change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from .capacity import capacity_change_add
from .models import CapacityChange, CapacityPool, GpuSku, Region

INSTALLED_AT = datetime(2024, 1, 1, tzinfo=UTC)

REGIONS = [
    # code, name, location
    ("us-east-1", "New Jersey 1", "Weehawken, NJ"),
    ("us-east-2", "Virginia 2", "Ashburn, VA"),
    ("us-central-1", "Texas 1", "Plano, TX"),
    ("us-west-1", "Oregon 1", "Hillsboro, OR"),
    ("us-west-2", "Nevada 1", "Las Vegas, NV"),
]

SKUS = [
    # code, name, memory GB, interconnect, GPUs per node, whole nodes, list $/GPU-hour
    (
        "h100-sxm-80gb",
        "H100 SXM 80GB",
        80,
        "NVLink 4 (900 GB/s), 3.2 Tb/s InfiniBand NDR per node",
        8,
        True,
        "3.2900",
    ),
    (
        "h200-141gb",
        "H200 141GB",
        141,
        "NVLink 4 (900 GB/s), 3.2 Tb/s InfiniBand NDR per node",
        8,
        True,
        "3.9900",
    ),
    (
        "a100-sxm-80gb",
        "A100 80GB",
        80,
        "NVLink 3 (600 GB/s), 1.6 Tb/s InfiniBand HDR per node",
        8,
        True,
        "1.8900",
    ),
    (
        "a100-sxm-40gb",
        "A100 40GB",
        40,
        "NVLink 3 (600 GB/s), 200 Gb/s InfiniBand HDR per node",
        8,
        True,
        "1.2900",
    ),
    ("l40s-48gb", "L40S", 48, "PCIe Gen4 x16, 200 Gb/s Ethernet per node", 8, False, "0.9900"),
    ("a40-48gb", "A40", 48, "PCIe Gen4 x16, NVLink bridge per GPU pair", 8, False, "0.5500"),
    ("rtx-a6000-48gb", "RTX A6000", 48, "PCIe Gen4 x16, 100 Gb/s Ethernet", 4, False, "0.6100"),
]

# GPUs installed since INSTALLED_AT, per region and SKU code (about 40,000 in all).
INSTALLED = {
    "us-east-1": {
        "h100-sxm-80gb": 4096,
        "h200-141gb": 2048,
        "a100-sxm-80gb": 1024,
        "l40s-48gb": 512,
        "rtx-a6000-48gb": 256,
    },
    "us-east-2": {
        "h100-sxm-80gb": 8192,
        "h200-141gb": 4096,
        "a100-sxm-80gb": 2048,
        "a100-sxm-40gb": 1024,
        "a40-48gb": 512,
    },
    "us-central-1": {
        "h100-sxm-80gb": 3072,
        "h200-141gb": 0,  # arrives with hall C, see FUTURE
        "a100-sxm-80gb": 1536,
        "a100-sxm-40gb": 2048,
        "l40s-48gb": 1024,
        "a40-48gb": 768,
    },
    "us-west-1": {
        "h100-sxm-80gb": 2048,
        "h200-141gb": 1024,
        "l40s-48gb": 768,
        "rtx-a6000-48gb": 512,
    },
    "us-west-2": {
        "h200-141gb": 2048,
        "a100-sxm-80gb": 1024,
        "a40-48gb": 512,
        "rtx-a6000-48gb": 384,
    },
}

# Future events, as (region, SKU, delta, days after the anchor, length in days or None, reason).
FUTURE = [
    ("us-central-1", "h200-141gb", 2048, 75, None, "Hall C comes online"),
    ("us-east-2", "h100-sxm-80gb", 1024, 45, None, "Hall D phase 1 comes online"),
    ("us-east-1", "h100-sxm-80gb", -256, 21, 3, "Cooling maintenance, hall A row 7"),
]

INITIAL_REASON = "Initial installation"


def _anchor() -> datetime:
    """The first instant of the current month (UTC)."""
    now = timezone.now().astimezone(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def _add_once(pool: CapacityPool, reason: str, **change) -> bool:
    if CapacityChange.objects.filter(pool=pool, reason=reason).exists():
        return False
    capacity_change_add(pool=pool, reason=reason, actor=None, **change)
    return True


@transaction.atomic
def seed_catalog() -> str:
    regions = {
        code: Region.objects.update_or_create(
            code=code, defaults={"name": name, "location": location, "active": True}
        )[0]
        for code, name, location in REGIONS
    }
    skus = {}
    for code, name, memory, interconnect, per_node, whole, price in SKUS:
        skus[code] = GpuSku.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "memory_gb": memory,
                "interconnect": interconnect,
                "gpus_per_node": per_node,
                "sold_in_whole_nodes": whole,
                "list_price_per_gpu_hour": Decimal(price),
                "active": True,
            },
        )[0]
    pools = {}
    added = 0
    for region_code, counts in INSTALLED.items():
        for sku_code, count in counts.items():
            pool = CapacityPool.objects.get_or_create(
                region=regions[region_code], sku=skus[sku_code]
            )[0]
            pools[region_code, sku_code] = pool
            if count:
                added += _add_once(
                    pool, INITIAL_REASON, gpus_delta=count, effective_at=INSTALLED_AT
                )
    anchor = _anchor()
    for region_code, sku_code, delta, after_days, length, reason in FUTURE:
        effective_at = anchor + timedelta(days=after_days)
        added += _add_once(
            pools[region_code, sku_code],
            reason,
            gpus_delta=delta,
            effective_at=effective_at,
            ends_at=effective_at + timedelta(days=length) if length else None,
        )
    installed = sum(sum(counts.values()) for counts in INSTALLED.values())
    return (
        f"{len(regions)} regions, {len(skus)} GPU types, {len(pools)} pools, "
        f"{installed:,} GPUs installed, {added} capacity changes added"
    )
