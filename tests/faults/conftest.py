"""Fixtures of the fault scenarios: a committed catalog (the processes they start must see it)
and the stack of processes, stopped at the end of each test."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from accounts.apikeys import api_key_create_for_organization, api_key_create_for_provider
from quotas.capacity import capacity_change_add
from tests.factories import (
    CapacityPoolFactory,
    ContractFactory,
    ContractRateFactory,
    GpuSkuFactory,
    RegionFactory,
    UserFactory,
)

from .harness import Stack

POOL_GPUS = 64


def soon(days: float = 3) -> datetime:
    """A whole hour some days ahead: past every lead time."""
    return timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=days)


@pytest.fixture
def stack(transactional_db, tmp_path):
    with Stack(tmp=tmp_path, database=dict(connection.settings_dict)) as processes:
        yield processes


@pytest.fixture
def pool(transactional_db, org, owner, member, account_manager):
    sku = GpuSkuFactory(
        code="h100-sxm", name="H100 SXM 80GB", gpus_per_node=8, sold_in_whole_nodes=True
    )
    region = RegionFactory(code="us-east-1", name="New Jersey 1")
    pool = CapacityPoolFactory(sku=sku, region=region)
    capacity_change_add(
        pool=pool,
        gpus_delta=POOL_GPUS,
        effective_at=datetime(2020, 1, 1, tzinfo=UTC),
        reason="installed",
        actor=None,
    )
    contract = ContractFactory(organization=org, number="ACME-FAULTS")
    ContractRateFactory(contract=contract, sku=sku, price_per_gpu_hour=Decimal("2.0000"))
    return pool


@pytest.fixture
def org_key(org, owner):
    return api_key_create_for_organization(
        organization=org, name="ci", scopes=["read", "write"], created_by=owner
    )


@pytest.fixture
def superuser(transactional_db):
    return UserFactory(email="root@provider.example", is_superuser=True, is_staff=True)


@pytest.fixture
def approvals_key(superuser):
    return api_key_create_for_provider(
        name="approver bot", scopes=["approvals"], created_by=superuser
    )


@pytest.fixture
def ingest_key(superuser):
    return api_key_create_for_provider(
        name="metering", scopes=["usage:ingest"], created_by=superuser
    )
