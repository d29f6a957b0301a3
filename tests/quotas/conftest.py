"""Fixtures of the workflow tests: a small catalog with capacity, a contract, helpers that
create requests through the services, and a way to put a request straight into any state."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Role
from quotas.capacity import capacity_change_add, hold_place
from quotas.models import CapacityHold, CapacityRequest
from quotas.services import capacity_request_create
from tests.conftest import make_member
from tests.factories import (
    CapacityPoolFactory,
    ContractFactory,
    ContractRateFactory,
    GpuSkuFactory,
    RegionFactory,
)

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def skus(db):
    """Two GPU types (the availability tests' random pools pick one of them)."""
    return [GpuSkuFactory(), GpuSkuFactory()]


@pytest.fixture
def eager_celery():
    """For tests that commit: tasks enqueued after commit run at once in the committing thread
    (e-mails too), instead of going to a broker."""
    from portal.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def soon(days: float = 3, hours: float = 0) -> datetime:
    """A whole hour some days from now: far enough for the lead times."""
    base = timezone.now().replace(minute=0, second=0, microsecond=0)
    return base + timedelta(days=days, hours=hours)


@pytest.fixture
def east(db):
    return RegionFactory(code="us-east-1", name="New Jersey 1")


@pytest.fixture
def west(db):
    return RegionFactory(code="us-west-1", name="Oregon 1")


@pytest.fixture
def h100(db):
    return GpuSkuFactory(
        code="h100-sxm",
        name="H100 SXM 80GB",
        gpus_per_node=8,
        sold_in_whole_nodes=True,
        list_price_per_gpu_hour=Decimal("2.5000"),
    )


@pytest.fixture
def h200(db):
    return GpuSkuFactory(code="h200", name="H200 141GB", list_price_per_gpu_hour=Decimal("3.5"))


def with_capacity(pool, gpus):
    capacity_change_add(
        pool=pool, gpus_delta=gpus, effective_at=LONG_AGO, reason="installed", actor=None
    )
    return pool


@pytest.fixture
def east_pool(h100, east):
    return with_capacity(CapacityPoolFactory(sku=h100, region=east), 64)


@pytest.fixture
def west_pool(h100, west):
    return with_capacity(CapacityPoolFactory(sku=h100, region=west), 32)


@pytest.fixture
def contract(org, h100):
    contract = ContractFactory(organization=org, number="ACME-2030")
    ContractRateFactory(contract=contract, sku=h100, price_per_gpu_hour=Decimal("2.0000"))
    return contract


@pytest.fixture
def admin(org):
    return make_member(org, Role.ADMIN, email="admin@acme.example")


@pytest.fixture
def catalog(east_pool, west_pool, contract, account_manager, owner):
    """Everything a request needs: pools with capacity, a contract, an account manager."""
    return east_pool


@pytest.fixture
def new_request(org, member, h100, east):
    """``new_request(gpu_count=16, ...)``: a reservation request created and submitted by the
    member through the service (``submit=False`` keeps it a draft)."""

    def make(actor=None, **kwargs):
        kwargs.setdefault("sku", h100)
        kwargs.setdefault("region", east)
        kwargs.setdefault("gpu_count", 16)
        kwargs.setdefault("starts_at", soon(3))
        kwargs.setdefault("ends_at", kwargs["starts_at"] + timedelta(days=7))
        kwargs.setdefault("justification", "Training run")
        return capacity_request_create(organization=org, actor=actor or member, **kwargs)

    return make


@pytest.fixture
def request_in_state(org, member, h100, east, east_pool):
    """``request_in_state(state)``: a reservation request written straight into ``state`` (with
    a live offer hold in the offer states), to test what each state allows."""

    def make(state, **kwargs):
        starts_at = kwargs.pop("starts_at", soon(3))
        fields = dict(
            organization=org,
            kind=CapacityRequest.Kind.RESERVATION,
            sku=h100,
            region=east,
            gpu_count=16,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(days=7),
            requested_by=member,
            state=state,
            submitted_at=timezone.now(),
        )
        fields.update(kwargs)
        if state in ("counter_offered", "offered"):
            expires_at = timezone.now() + timedelta(hours=48)
            hold = hold_place(
                pool=east_pool,
                organization=org,
                gpu_count=8,
                starts_at=fields["starts_at"],
                ends_at=fields["ends_at"],
                kind=CapacityHold.Kind.OFFER,
                expires_at=expires_at,
            )
            fields.update(
                offer_kind="counter" if state == "counter_offered" else "waitlist",
                offer_pool=east_pool,
                offer_gpu_count=8,
                offer_starts_at=fields["starts_at"],
                offer_ends_at=fields["ends_at"],
                offer_expires_at=expires_at,
                offer_hold=hold,
            )
        if state in ("pending_approval", "pending_second_approval"):
            fields.setdefault("decision_due_at", timezone.now() + timedelta(hours=48))
        return CapacityRequest.all_objects.create(**fields)

    return make
