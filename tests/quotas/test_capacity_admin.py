from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import AuditEvent
from quotas.capacity import capacity_change_add, hold_place
from quotas.models import CapacityChange, CapacityHold
from tests.factories import CapacityPoolFactory, GpuSkuFactory, RegionFactory

T0 = datetime(2031, 3, 2, tzinfo=UTC)


@pytest.fixture
def pool(db):
    pool = CapacityPoolFactory(
        region=RegionFactory(code="us-east-1"), sku=GpuSkuFactory(code="h100-sxm")
    )
    capacity_change_add(pool=pool, gpus_delta=64, effective_at=T0, reason="hall A", actor=None)
    return pool


@pytest.fixture
def planner_client(client, capacity_planner):
    capacity_planner.is_staff = True  # the admin site itself lets in is_staff users only
    capacity_planner.save()
    client.force_login(capacity_planner)
    return client


def change_url(pool):
    return reverse("admin:quotas_capacitypool_capacity_change", args=[pool.pk])


def test_planner_adds_capacity_through_the_locked_service(planner_client, pool, capacity_planner):
    page = planner_client.get(reverse("admin:quotas_capacitypool_change", args=[pool.pk]))
    assert page.status_code == 200
    assert change_url(pool) in page.content.decode()

    response = planner_client.post(
        change_url(pool),
        {
            "gpus_delta": "512",
            "effective_at": "2031-06-01 00:00",
            "ends_at": "",
            "reason": "hall B online",
            "mode": "refuse",
        },
    )
    assert response.status_code == 302
    change = CapacityChange.objects.get(reason="hall B online")
    assert (change.gpus_delta, change.created_by) == (512, capacity_planner)
    assert AuditEvent.all_objects.filter(action="capacity.changed", actor=capacity_planner).exists()


def test_a_reduction_below_what_is_held_shows_the_error_and_writes_nothing(
    planner_client, pool, org
):
    hold_place(
        pool=pool,
        organization=org,
        gpu_count=48,
        starts_at=T0,
        ends_at=datetime(2031, 3, 10, tzinfo=UTC),
        kind="reservation",
    )
    data = {
        "gpus_delta": "-32",
        "effective_at": "2031-03-05 00:00",
        "ends_at": "2031-03-06 00:00",
        "reason": "maintenance",
        "mode": "refuse",
    }
    response = planner_client.post(change_url(pool), data)
    assert response.status_code == 200
    assert "Only 16" in response.content.decode()
    assert CapacityChange.objects.count() == 1

    response = planner_client.post(change_url(pool), {**data, "mode": "flag"})
    assert response.status_code == 302
    assert CapacityHold.all_objects.get().at_risk


def test_changes_and_holds_cannot_be_written_directly_in_the_admin(planner_client, pool):
    assert planner_client.get(reverse("admin:quotas_capacitychange_add")).status_code == 403
    assert planner_client.get(reverse("admin:quotas_capacityhold_add")).status_code == 403
    change = CapacityChange.objects.get()
    url = reverse("admin:quotas_capacitychange_change", args=[change.pk])
    response = planner_client.post(url, {"gpus_delta": "9999"})
    assert response.status_code == 403
    assert (
        planner_client.post(
            reverse("admin:quotas_capacitychange_delete", args=[change.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    change.refresh_from_db()
    assert change.gpus_delta == 64


def test_an_account_manager_cannot_change_capacity(client, account_manager, pool):
    account_manager.is_staff = True
    account_manager.save()
    client.force_login(account_manager)
    response = client.post(
        change_url(pool),
        {"gpus_delta": "8", "effective_at": "2031-06-01 00:00", "reason": "x", "mode": "refuse"},
    )
    assert response.status_code == 403
    assert CapacityChange.objects.count() == 1


def test_catalog_edits_are_audited(planner_client, pool, capacity_planner):
    sku = pool.sku
    response = planner_client.post(
        reverse("admin:quotas_gpusku_change", args=[sku.pk]),
        {
            "code": sku.code,
            "name": sku.name,
            "memory_gb": "80",
            "interconnect": sku.interconnect,
            "gpus_per_node": "8",
            "sold_in_whole_nodes": "on",
            "list_price_per_gpu_hour": "3.1900",
            "active": "on",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.all_objects.get(action="catalog.gpusku_changed")
    assert event.actor == capacity_planner
    assert event.changes == {"list_price_per_gpu_hour": "3.1900"}


def test_an_account_manager_may_look_at_the_catalog_but_not_edit_it(client, account_manager, pool):
    account_manager.is_staff = True
    account_manager.save()
    client.force_login(account_manager)
    assert client.get(reverse("admin:quotas_capacitypool_changelist")).status_code == 200
    response = client.post(
        reverse("admin:quotas_region_change", args=[pool.region.pk]),
        {"code": "renamed", "name": "X", "location": "", "active": "on"},
    )
    assert response.status_code == 403
    pool.region.refresh_from_db()
    assert pool.region.code == "us-east-1"


def test_pool_list_query_count_stays_flat(planner_client, pool):
    url = reverse("admin:quotas_capacitypool_changelist")

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert planner_client.get(url).status_code == 200
        return len(captured)

    few = queries()
    for n in range(6):
        other = CapacityPoolFactory(region=RegionFactory(code=f"r-{n}"), sku=GpuSkuFactory())
        capacity_change_add(pool=other, gpus_delta=8, effective_at=T0, reason="x", actor=None)
    assert queries() == few
