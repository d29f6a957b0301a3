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
