from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.apikeys import api_key_create_for_organization, api_key_create_for_provider
from accounts.models import Role
from quotas.capacity import capacity_change_add
from quotas.checks import capacity_request_run_checks
from quotas.models import CapacityRequest, Reservation
from quotas.services import capacity_request_approve, capacity_request_create

from ..conftest import make_member
from ..factories import (
    CapacityPoolFactory,
    ContractFactory,
    ContractRateFactory,
    GpuSkuFactory,
    RegionFactory,
    UserFactory,
)


@pytest.fixture
def api():
    return APIClient()


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def admin(org):
    return make_member(org, Role.ADMIN, email="admin@acme.example")


@pytest.fixture
def org_key(org, owner):
    return api_key_create_for_organization(
        organization=org, name="ci", scopes=["read", "write"], created_by=owner
    )


@pytest.fixture
def read_key(org, owner):
    return api_key_create_for_organization(
        organization=org, name="dashboards", scopes=["read"], created_by=owner
    )


@pytest.fixture
def other_org_key(other_org, other_owner):
    return api_key_create_for_organization(
        organization=other_org, name="globex ci", scopes=["read", "write"], created_by=other_owner
    )


@pytest.fixture
def superuser(db):
    return UserFactory(email="root@provider.example", is_superuser=True, is_staff=True)


@pytest.fixture
def ingest_key(superuser):
    return api_key_create_for_provider(
        name="metering", scopes=["usage:ingest"], created_by=superuser
    )


@pytest.fixture
def approvals_key(superuser):
    return api_key_create_for_provider(
        name="approver bot", scopes=["approvals"], created_by=superuser
    )


@pytest.fixture
def owner_api(owner):
    client = APIClient()
    client.force_login(owner)
    return client


@pytest.fixture
def member_api(member):
    client = APIClient()
    client.force_login(member)
    return client


# --- Requests and reservations -------------------------------------------------------------
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def soon(days: float = 3) -> datetime:
    """A whole hour some days ahead: past every lead time."""
    return timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=days)


@pytest.fixture
def h100(db):
    return GpuSkuFactory(code="h100-sxm", name="H100 SXM 80GB", gpus_per_node=8)


@pytest.fixture
def east(db):
    return RegionFactory(code="us-east-1", name="New Jersey 1")


@pytest.fixture
def pool(h100, east, org):
    pool = CapacityPoolFactory(sku=h100, region=east)
    capacity_change_add(
        pool=pool, gpus_delta=64, effective_at=LONG_AGO, reason="installed", actor=None
    )
    contract = ContractFactory(organization=org, number="ACME-API")
    ContractRateFactory(contract=contract, sku=h100, price_per_gpu_hour=Decimal("2.0000"))
    return pool


def reservation_request(org, actor, pool, *, gpu_count=16, days=3, submit=True):
    starts_at = soon(days)
    return capacity_request_create(
        organization=org,
        actor=actor,
        sku=pool.sku,
        region=pool.region,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(days=7),
        justification="Training run",
        submit=submit,
    )


@pytest.fixture
def pending_request(org, member, pool, account_manager):
    """A member's request past the automatic checks, waiting for the account manager."""
    capacity_request = reservation_request(org, member, pool)
    capacity_request_run_checks(request_id=capacity_request.pk)
    capacity_request.refresh_from_db()
    assert capacity_request.state == "pending_approval", capacity_request.state
    return capacity_request


@pytest.fixture
def reservation(org, member, pool, account_manager):
    """A scheduled reservation of acme (requested by the member, approved)."""
    capacity_request = reservation_request(org, member, pool, gpu_count=8, days=5)
    capacity_request_run_checks(request_id=capacity_request.pk)
    capacity_request_approve(
        capacity_request=CapacityRequest.objects.for_organization(org).get(pk=capacity_request.pk),
        actor=account_manager,
    )
    return Reservation.objects.for_organization(org).get(request_id=capacity_request.pk)
