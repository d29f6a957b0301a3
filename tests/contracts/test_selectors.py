from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from contracts.selectors import (
    contract_active_for,
    contract_consumed_spend,
    contract_rate_for,
    contract_remaining_commitment,
)
from tests.factories import ContractFactory, ContractRateFactory, GpuSkuFactory, RegionFactory


@pytest.mark.django_db
def test_active_contract_is_the_one_whose_term_contains_the_instant(org, other_org):
    old = ContractFactory(organization=org, term_start=date(2029, 1, 1), term_end=date(2030, 1, 1))
    new = ContractFactory(organization=org, term_start=date(2030, 1, 1), term_end=date(2033, 1, 1))
    ContractFactory(organization=org, status="draft", term_start=date(2030, 6, 1))
    ContractFactory(organization=other_org, term_start=date(2020, 1, 1))

    assert contract_active_for(organization=org, at=datetime(2029, 12, 31, 23, tzinfo=UTC)) == old
    assert contract_active_for(organization=org, at=datetime(2030, 1, 1, tzinfo=UTC)) == new
    assert contract_active_for(organization=org, at=date(2032, 12, 31)) == new
    assert contract_active_for(organization=org, at=date(2033, 1, 1)) is None
    assert contract_active_for(organization=org, at=date(2028, 1, 1)) is None


@pytest.mark.django_db
def test_rate_for_prefers_the_region_rate():
    contract = ContractFactory()
    sku, east, west = GpuSkuFactory(), RegionFactory(code="us-east-1"), RegionFactory(code="w-1")
    anywhere = ContractRateFactory(contract=contract, sku=sku, region=None)
    in_east = ContractRateFactory(contract=contract, sku=sku, region=east)
    assert contract_rate_for(contract=contract, sku=sku, region=east) == in_east
    assert contract_rate_for(contract=contract, sku=sku, region=west) == anywhere
    assert contract_rate_for(contract=contract, sku=sku, region=None) == anywhere
    assert contract_rate_for(contract=contract, sku=GpuSkuFactory(), region=east) is None
    assert contract_rate_for(contract=ContractFactory(), sku=sku, region=east) is None


@pytest.mark.django_db
def test_remaining_commitment_is_committed_minus_consumed():
    contract = ContractFactory(committed_spend=Decimal("2500000.00"))
    assert contract_consumed_spend(contract=contract) == Decimal("0")
    assert contract_remaining_commitment(contract=contract) == Decimal("2500000.00")
