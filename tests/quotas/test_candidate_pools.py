"""The candidate pools come from one statement and in the order the former three queries and
Python ranking gave (kept below as the reference): own pool first, then by the sum of the
SKU's and region's places in the request's lists."""

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from quotas.models import CapacityPool, CapacityRequest
from quotas.services._base import candidate_pools
from tests.factories import CapacityPoolFactory, GpuSkuFactory, RegionFactory

from .conftest import soon

pytestmark = pytest.mark.django_db


def reference_candidate_pools(capacity_request: CapacityRequest) -> list[CapacityPool]:
    sku_ids = [capacity_request.sku_id]
    region_ids = [capacity_request.region_id]
    if not capacity_request.is_extension and capacity_request.pk:
        sku_ids += [s.pk for s in capacity_request.alternative_skus.all()]
        region_ids += [r.pk for r in capacity_request.alternative_regions.all()]
    pools = list(
        CapacityPool.objects.filter(
            sku_id__in=sku_ids,
            region_id__in=region_ids,
            active=True,
            sku__active=True,
            region__active=True,
        ).select_related("sku", "region")
    )

    def rank(pool: CapacityPool) -> tuple:
        return (
            sku_ids.index(pool.sku_id) + region_ids.index(pool.region_id),
            sku_ids.index(pool.sku_id),
            pool.region.code,
        )

    return sorted(pools, key=rank)


@pytest.fixture
def fleet():
    skus = [
        GpuSkuFactory(code=f"sku-{n}", name=name, active=n != 4)
        for n, name in enumerate(["B200", "A100 80GB", "H100 SXM", "H200", "L40S", "GH200"])
    ]
    regions = [
        RegionFactory(code=code, active=code != "us-south-1")
        for code in ("us-east-1", "eu-west-1", "us-west-2", "ap-south-1", "us-south-1")
    ]
    rng = random.Random(7)
    for sku in skus:
        for region in regions:
            if rng.random() < 0.75:
                CapacityPoolFactory(sku=sku, region=region, active=rng.random() < 0.9)
    return skus, regions


def _request(org, member, sku, region, **kwargs):
    starts_at = soon(3)
    return CapacityRequest.all_objects.create(
        organization=org,
        kind=CapacityRequest.Kind.RESERVATION,
        sku=sku,
        region=region,
        gpu_count=8,
        starts_at=starts_at,
        ends_at=starts_at + (soon(10) - soon(3)),
        requested_by=member,
        **kwargs,
    )


def test_candidate_pools_equal_the_reference_on_random_alternatives(org, member, fleet):
    skus, regions = fleet
    rng = random.Random(11)
    seen_orders = set()
    for _ in range(60):
        sku, region = rng.choice(skus), rng.choice(regions)
        capacity_request = _request(org, member, sku, region)
        # An edited draft may list its own SKU or region among its alternatives.
        capacity_request.alternative_skus.set(rng.sample(skus, rng.randint(0, len(skus))))
        capacity_request.alternative_regions.set(rng.sample(regions, rng.randint(0, len(regions))))
        expected = reference_candidate_pools(capacity_request)
        with CaptureQueriesContext(connection) as queries:
            found = candidate_pools(capacity_request)
        assert len(queries.captured_queries) == 1
        assert [p.pk for p in found] == [p.pk for p in expected]
        assert [(p.sku, p.region) for p in found] == [(p.sku, p.region) for p in expected]
        assert all(p.sku.name == e.sku.name and p.region.code == e.region.code
                   for p, e in zip(found, expected, strict=True))  # fmt: skip
        seen_orders.add(len(found))
    assert len(seen_orders) > 5  # the cases were varied


def test_an_unsaved_request_or_an_extension_has_only_its_own_pool_kinds(org, member, fleet):
    skus, regions = fleet
    unsaved = CapacityRequest(organization=org, sku=skus[2], region=regions[0], gpu_count=8)
    assert [p.pk for p in candidate_pools(unsaved)] == [
        p.pk for p in reference_candidate_pools(unsaved)
    ]
    base = _request(org, member, skus[2], regions[0])
    base.alternative_regions.set(regions)
    assert len(candidate_pools(base)) > 1
