"""Fixtures of the contract tests: a catalog, a contract with rates, reservations written with
their capacity holds, and usage recorded with its rollups."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.models import Role
from quotas.models import CapacityHold, CapacityRequest, Reservation
from quotas.workflow import ReservationState
from tests.conftest import make_member
from tests.factories import (
    CapacityPoolFactory,
    ContractFactory,
    ContractRateFactory,
    GpuSkuFactory,
    RegionFactory,
)
from usage.services import usage_ingest


def at(year: int, month: int, day: int = 1, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    """Documents land in a folder of the test, never the developer's media folder."""
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def east(db):
    return RegionFactory(code="us-east-1", name="New Jersey 1")


@pytest.fixture
def west(db):
    return RegionFactory(code="us-west-1", name="Oregon 1")


@pytest.fixture
def h100(db):
    return GpuSkuFactory(code="h100-sxm", name="H100 SXM", list_price_per_gpu_hour=Decimal("2.5"))


@pytest.fixture
def a100(db):
    return GpuSkuFactory(code="a100", name="A100 80GB", list_price_per_gpu_hour=Decimal("1.7700"))


@pytest.fixture
def contract(org, h100, east):
    contract = ContractFactory(
        organization=org,
        number="ACME-2026",
        term_start=date(2026, 1, 1),
        term_end=date(2027, 1, 1),
        committed_spend=Decimal("10000.00"),
    )
    ContractRateFactory(contract=contract, sku=h100, region=None, price_per_gpu_hour=Decimal("2.0"))
    ContractRateFactory(
        contract=contract, sku=h100, region=east, price_per_gpu_hour=Decimal("1.9333")
    )
    return contract


@pytest.fixture
def billing(org):
    return make_member(org, Role.BILLING, email="billing@acme.example")


@pytest.fixture
def viewer(org):
    return make_member(org, Role.VIEWER, email="viewer@acme.example")


def ingest(rows):
    """Usage records through the real ingest (rollups kept by it): rows of
    (organization, sku, region, hour, gpu_hours[, reservation])."""
    lines = []
    for organization, sku, region, hour, gpu_hours, *rest in rows:
        record = {
            "organization": organization.slug,
            "sku": sku.code,
            "region": region.code,
            "hour": hour.isoformat(),
            "gpu_hours": str(gpu_hours),
        }
        if rest and rest[0] is not None:
            record["reservation"] = rest[0].pk
        lines.append(json.dumps(record))
    return usage_ingest(
        stream=io.BytesIO("\n".join(lines).encode()), content_type="application/x-ndjson"
    )


def record_usage(organization, sku, region, hour, gpu_hours, reservation=None):
    """One hourly usage record, ingested."""
    return ingest([(organization, sku, region, hour, gpu_hours, reservation)])


def make_reservation(
    organization,
    sku,
    region,
    starts_at,
    ends_at,
    gpu_count=8,
    rate="2.0000",
    contract=None,
    state=ReservationState.ACTIVE,
):
    """A reservation with its capacity hold, written straight (the workflow is tested in
    quotas): what statements read is the hold's window and the frozen price."""
    pool = CapacityPoolFactory(sku=sku, region=region)
    request = CapacityRequest.all_objects.create(
        organization=organization,
        kind=CapacityRequest.Kind.RESERVATION,
        sku=sku,
        region=region,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
        state="approved",
    )
    hold = CapacityHold.all_objects.create(
        pool=pool,
        organization=organization,
        kind=CapacityHold.Kind.RESERVATION,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
    )
    hours = Decimal((ends_at - starts_at).total_seconds()) / 3600 * gpu_count
    return Reservation.all_objects.create(
        organization=organization,
        request=request,
        pool=pool,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
        hold=hold,
        state=state,
        currency="USD",
        rate_per_gpu_hour=Decimal(rate),
        gpu_hours=hours,
        total=(hours * Decimal(rate)).quantize(Decimal("0.01")),
        price_source="contract" if contract else "list",
        contract=contract,
    )


@pytest.fixture
def hours():
    """``hours(start, n)``: the first ``n`` whole hours from ``start``."""

    def make(start: datetime, n: int):
        return [start + timedelta(hours=i) for i in range(n)]

    return make
