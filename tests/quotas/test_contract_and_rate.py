"""The checks read the active contract and its rate in one statement: the same contract and
rate as ``contract_active_for`` then ``contract_rate_for``, on random terms, statuses and
rates (region-specific and any-region), at term boundaries and across midnight UTC."""

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contracts.models import Contract
from contracts.selectors import contract_active_for, contract_rate_for
from quotas.pricing import contract_and_rate_for
from tests.factories import (
    ContractFactory,
    ContractRateFactory,
    GpuSkuFactory,
    OrganizationFactory,
    RegionFactory,
)

pytestmark = pytest.mark.django_db


def _values(obj) -> dict | None:
    if obj is None:
        return None
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_contract_and_rate_equal_the_two_selectors(org, other_org):
    rng = random.Random(5)
    skus = [GpuSkuFactory(code=f"s{n}") for n in range(3)]
    regions = [RegionFactory(code=f"r-{n}") for n in range(3)]
    statuses = [s for s, _ in Contract.Status.choices]
    base = date(2031, 1, 1)
    for organization in (org, other_org, OrganizationFactory()):
        for _ in range(4):
            start = base + timedelta(days=rng.randint(0, 300))
            contract = ContractFactory(
                organization=organization,
                status=rng.choice(statuses),
                term_start=start,
                term_end=start + timedelta(days=rng.randint(1, 200)),
            )
            for sku in skus:
                for region in [None, *regions]:
                    if rng.random() < 0.4:
                        ContractRateFactory(
                            contract=contract,
                            sku=sku,
                            region=region,
                            price_per_gpu_hour=Decimal(rng.randint(100, 900)) / 100,
                        )
    zones = [UTC, ZoneInfo("America/Los_Angeles"), ZoneInfo("Asia/Tokyo")]
    found_contract = found_rate = 0
    for _ in range(150):
        day = base + timedelta(days=rng.randint(-5, 520))
        at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(
            hours=rng.choice([0, 5, 23]), minutes=rng.choice([0, 59])
        )
        at = at.astimezone(rng.choice(zones))
        sku, region = rng.choice(skus), rng.choice(regions)
        organization = rng.choice([org, other_org])
        expected_contract = contract_active_for(organization=organization, at=at)
        expected_rate = (
            contract_rate_for(contract=expected_contract, sku=sku.pk, region=region.pk)
            if expected_contract is not None
            else None
        )
        with CaptureQueriesContext(connection) as queries:
            contract, rate = contract_and_rate_for(
                organization=organization, at=at, sku_id=sku.pk, region_id=region.pk
            )
        assert len(queries.captured_queries) == 1
        assert _values(contract) == _values(expected_contract)
        assert _values(rate) == _values(expected_rate)
        found_contract += contract is not None
        found_rate += rate is not None
    assert 20 < found_contract < 150 and 10 < found_rate < found_contract
