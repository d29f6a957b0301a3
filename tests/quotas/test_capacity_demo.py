from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from contracts.demo import seed as seed_contracts
from contracts.models import Contract
from quotas.demo import seed_catalog
from quotas.models import CapacityChange, CapacityPool
from quotas.pricing import quote_price
from quotas.selectors.availability import pool_capacity_at, pool_earliest_start


@pytest.mark.django_db
def test_seed_catalog_is_idempotent_and_fleet_sized():
    seed_catalog()
    counts = (CapacityPool.objects.count(), CapacityChange.objects.count())
    seed_catalog()
    assert (CapacityPool.objects.count(), CapacityChange.objects.count()) == counts
    now = timezone.now()
    installed = sum(pool_capacity_at(pool=pool, at=now) for pool in CapacityPool.objects.all())
    assert installed > 30_000


@pytest.mark.django_db
def test_the_new_hall_is_the_earliest_start_for_h200_in_texas():
    seed_catalog()
    pool = CapacityPool.objects.get(region__code="us-central-1", sku__code="h200-141gb")
    hall = CapacityChange.objects.get(pool=pool, reason="Hall C comes online")
    now = timezone.now()
    assert hall.effective_at > now
    assert pool_capacity_at(pool=pool, at=now) == 0
    assert (
        pool_earliest_start(
            pool=pool,
            gpu_count=512,
            duration=timedelta(days=30),
            not_before=now,
            horizon=timedelta(days=365),
        )
        == hall.effective_at
    )


@pytest.mark.django_db
def test_demo_contracts_price_acme_with_its_region_rate(org, other_org):
    seed_catalog()
    seed_contracts()
    seed_contracts()
    assert Contract.all_objects.filter(status="active").count() == 2
    pool = CapacityPool.objects.select_related("sku", "region").get(
        region__code="us-east-2", sku__code="h100-sxm-80gb"
    )
    start = timezone.now().replace(microsecond=0) + timedelta(days=7)
    q = quote_price(
        organization=org,
        sku=pool.sku,
        region=pool.region,
        gpu_count=8,
        starts_at=start,
        ends_at=start + timedelta(hours=10),
    )
    assert (q.source, q.rate_per_gpu_hour, q.total) == (
        "contract",
        Decimal("2.3900"),
        Decimal("191.20"),
    )
