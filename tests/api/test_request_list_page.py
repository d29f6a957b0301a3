"""The request list page: the same body as DRF's own serialization of each row, with a fixed
number of queries (the pools and alternatives of a page are read once for the page)."""

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from quotas.api.requests import CapacityRequestSerializer
from quotas.checks import capacity_request_run_checks
from quotas.models import CapacityRequest
from quotas.services import (
    capacity_request_approve,
    capacity_request_counter_offer,
    capacity_request_create,
)
from tests.factories import CapacityPoolFactory, GpuSkuFactory, RegionFactory

from .conftest import bearer, reservation_request, soon


class DrfSerializer(CapacityRequestSerializer):
    """DRF's generic path: every field through DRF, pools read through the row's relations."""

    def to_representation(self, instance):
        return serializers.ModelSerializer.to_representation(self, instance)


def varied_requests(org, member, owner, pool, account_manager):
    """Drafts, a quota increase, alternatives, a counter-offer, an approval with its quote."""
    other_sku = GpuSkuFactory(code="h200-sxm", name="H200 SXM")
    west = RegionFactory(code="us-west-2")
    CapacityPoolFactory(sku=pool.sku, region=west)
    start = soon(9)
    capacity_request_create(
        organization=org, actor=member, sku=pool.sku, region=pool.region, gpu_count=8,
        starts_at=start, ends_at=start + timedelta(days=2), alternative_skus=[other_sku],
        alternative_regions=[west], submit=False, justification="any of",
    )  # fmt: skip
    capacity_request_create(
        organization=org, actor=owner, kind="quota_increase", sku=pool.sku, region=pool.region,
        on_demand_limit=32,
    )  # fmt: skip
    offered = reservation_request(org, member, pool, gpu_count=16)
    capacity_request_run_checks(request_id=offered.pk)
    capacity_request_counter_offer(
        capacity_request=CapacityRequest.objects.for_organization(org).get(pk=offered.pk),
        actor=account_manager, gpu_count=8, note="half now",
    )  # fmt: skip
    approved = reservation_request(org, member, pool, gpu_count=8, days=5)
    capacity_request_run_checks(request_id=approved.pk)
    capacity_request_approve(
        capacity_request=CapacityRequest.objects.for_organization(org).get(pk=approved.pk),
        actor=account_manager,
    )
    member.delete()  # requested_by becomes null on the member's requests


def test_list_page_is_what_drf_would_render(org, member, owner, pool, account_manager, org_key):
    varied_requests(org, member, owner, pool, account_manager)
    response = bearer(org_key.key).get("/api/v1/orgs/acme/requests/?page_size=50")
    assert response.status_code == 200, response.content
    rows = CapacityRequest.objects.for_organization(org).order_by("-created_at", "-id")
    expected = [DrfSerializer(row).data for row in rows]
    assert response.json()["results"] == [dict(row) for row in _json(expected)]
    kinds = {(r["state"], bool(r["offer"]), bool(r["quote"]), bool(r["pool"])) for r in expected}
    assert len(kinds) >= 4, kinds  # the page really mixes offers, quotes, pools and drafts
    assert any(r["alternative_skus"] and r["alternative_regions"] for r in expected)
    assert any(r["requested_by"] is None for r in expected)


def _json(data):
    import json

    from rest_framework.utils.encoders import JSONEncoder

    return json.loads(json.dumps(data, cls=JSONEncoder))


def test_list_page_takes_five_queries(org, member, owner, pool, account_manager, org_key):
    varied_requests(org, member, owner, pool, account_manager)
    client = bearer(org_key.key)
    client.get("/api/v1/orgs/acme/requests/")  # the key's first use records it
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/orgs/acme/requests/?page_size=50")
    assert response.status_code == 200
    # key, role, count, page, and the page's pools and alternatives
    assert len(queries) == 5, "\n".join(q["sql"][:120] for q in queries.captured_queries)
