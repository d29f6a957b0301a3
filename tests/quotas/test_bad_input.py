"""Numbers past what a column stores are refused on their field, never a 500, and nothing is
written."""

from datetime import timedelta

import pytest
from django.urls import reverse

from quotas.models import ApprovalPolicy, CapacityRequest

from .conftest import soon

HUGE = "99999999999999999999"


def org_url(name, org, **kwargs):
    return reverse(name, kwargs={"org_slug": org.slug, **kwargs})


# --- Bad input gets a clear error on its field, never a 500 -----------------------------------
@pytest.mark.parametrize(
    "extra",
    [
        {"kind": "reservation", "gpu_count": HUGE},
        {"kind": "reservation", "gpu_count": "2147483648"},
        {"kind": "quota_increase", "on_demand_limit": HUGE},
    ],
)
def test_a_gpu_count_past_any_pool_is_refused_on_its_field(client, org, member, catalog, extra):
    starts_at = soon(3)
    data = {
        "sku": catalog.sku.pk,
        "region": catalog.region.pk,
        "starts_at": f"{starts_at:%Y-%m-%dT%H:%M}",
        "ends_at": f"{starts_at + timedelta(days=1):%Y-%m-%dT%H:%M}",
        "step": "draft",
        **extra,
    }
    client.force_login(member)
    response = client.post(org_url("request_create", org), data)
    assert response.status_code == 200
    field = "gpu_count" if "gpu_count" in extra else "on_demand_limit"
    assert response.context["form"].errors[field] == [
        "Ask for at most 1,000,000 GPUs."
        if field == "gpu_count"
        else "An on-demand limit is at most 1,000,000 GPUs."
    ]
    assert not CapacityRequest.all_objects.exists()


def test_an_auto_approval_count_past_its_column_is_refused_on_its_field(
    client, org, catalog, account_manager
):
    client.force_login(account_manager)
    response = client.post(
        org_url("approval_policy", org),
        {"auto_approve_max_gpus": "2147483648", "auto_approve_max_value": "10"},
    )
    assert response.status_code == 400
    assert "auto_approve_max_gpus" in response.context["form"].errors
    assert not ApprovalPolicy.all_objects.exists()


def test_a_capacity_change_past_any_pool_is_refused_on_its_field(client, capacity_planner, db):
    from accounts.models import AuditEvent
    from quotas.models import CapacityChange
    from tests.factories import CapacityPoolFactory

    pool = CapacityPoolFactory()
    client.force_login(capacity_planner)
    response = client.post(
        reverse("admin:quotas_capacitypool_capacity_change", args=[pool.pk]),
        {
            "gpus_delta": "2147483648",
            "effective_at": "2031-06-01 00:00",
            "ends_at": "",
            "reason": "typo",
            "mode": "refuse",
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["gpus_delta"] == [
        "A change adds or removes at most 1,000,000 GPUs."
    ]
    assert not CapacityChange.objects.filter(pool=pool).exists()
    assert not AuditEvent.all_objects.filter(action="capacity.changed").exists()


@pytest.fixture
def los_angeles(org):
    org.time_zone = "America/Los_Angeles"
    org.save()
    return org


FAR = {"starts_at": "9999-12-31T20:00", "ends_at": "9999-12-31T23:59"}


@pytest.mark.parametrize("step", ["review", "draft", "submit"])
def test_a_window_past_the_horizon_is_refused_and_the_pages_still_load(
    client, los_angeles, owner, catalog, step
):
    """In a zone behind UTC, 9999-12-31 20:00 is year 10000 in UTC: once stored, no page
    listing it could be read back."""
    org = los_angeles
    data = {"kind": "reservation", "sku": catalog.sku.pk, "region": catalog.region.pk}
    data.update(gpu_count=8, step=step, **FAR)
    client.force_login(owner)
    response = client.post(org_url("request_create", org), data)
    assert response.status_code == 200
    assert response.context["form"].errors["starts_at"] == [
        "The start must be within 5 years from now."
    ]
    assert not CapacityRequest.all_objects.exists()
    fragment = client.get(org_url("request_availability", org), data)
    assert fragment.status_code == 200
    assert client.get(org_url("request_list", org)).status_code == 200


def test_the_service_refuses_a_start_past_the_horizon(org, member, catalog):
    from datetime import UTC, datetime

    from portal.errors import DomainError
    from quotas.services import capacity_request_create

    with pytest.raises(DomainError) as refused:
        capacity_request_create(
            organization=org,
            actor=member,
            sku=catalog.sku,
            region=catalog.region,
            gpu_count=8,
            starts_at=soon(6 * 365),
            ends_at=datetime(9999, 1, 1, tzinfo=UTC),
        )
    assert refused.value.field == "starts_at"
    assert not CapacityRequest.all_objects.exists()


def test_a_counter_offer_past_the_horizon_is_refused(
    client, los_angeles, catalog, request_in_state
):
    from quotas.models import CapacityHold
    from quotas.workflow import RequestState as S

    capacity_request = request_in_state(S.PENDING_APPROVAL, gpu_count=8)
    client.force_login(los_angeles.account_manager)
    response = client.post(
        reverse("staff_counter_offer", args=[capacity_request.pk]),
        {"gpu_count": 8, "sku": catalog.sku.pk, "region": catalog.region.pk, **FAR},
    )
    assert response.status_code == 400
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.PENDING_APPROVAL
    assert not CapacityHold.objects.unscoped_for_staff().exists()
