"""Requests, reservations, quotas, availability and quotes through the API, and the staff
inbox and pools."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from quotas.checks import capacity_request_run_checks
from quotas.models import CapacityRequest, Reservation

from .conftest import bearer, reservation_request, soon


def window(days=10, length=2):
    start = soon(days)
    return {"starts_at": start.isoformat(), "ends_at": (start + timedelta(days=length)).isoformat()}


def create_body(**overrides):
    return {"sku": "h100-sxm", "region": "us-east-1", "gpu_count": 8, **window(), **overrides}


def test_create_submits_and_enqueues_the_checks(
    org, member_api, pool, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = member_api.post("/api/v1/orgs/acme/requests/", create_body(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "submitted"
    assert body["reference"] == f"REQ-{body['id']}"
    assert response["ETag"]
    assert [event["to_state"] for event in body["timeline"]] == ["draft", "submitted"]
    assert callbacks, "the checks task is enqueued after commit"


def test_idempotent_create_makes_one_request(org, org_key, pool):
    client = bearer(org_key.key)
    first = client.post(
        "/api/v1/orgs/acme/requests/", create_body(), format="json", HTTP_IDEMPOTENCY_KEY="req-1"
    )
    second = client.post(
        "/api/v1/orgs/acme/requests/", create_body(), format="json", HTTP_IDEMPOTENCY_KEY="req-1"
    )
    assert first.status_code == second.status_code == 201
    assert second.json()["id"] == first.json()["id"]
    assert second["ETag"] == first["ETag"]
    assert CapacityRequest.objects.for_organization(org).count() == 1


def test_bad_request_names_the_field_and_writes_nothing(org, member_api, pool):
    response = member_api.post(
        "/api/v1/orgs/acme/requests/", create_body(gpu_count=3), format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "gpu_count"
    unknown = member_api.post("/api/v1/orgs/acme/requests/", create_body(sku="nope"), format="json")
    assert unknown.json()["errors"][0]["field"] == "sku"
    assert not CapacityRequest.objects.for_organization(org).exists()


def test_draft_edit_and_submit_honour_if_match(org, member_api, pool):
    created = member_api.post(
        "/api/v1/orgs/acme/requests/", create_body(submit=False), format="json"
    )
    assert created.json()["state"] == "draft"
    url = f"/api/v1/orgs/acme/requests/{created.json()['id']}/"
    etag = created["ETag"]
    edited = member_api.patch(url, {"gpu_count": 16}, format="json", HTTP_IF_MATCH=etag)
    assert edited.status_code == 200
    assert edited.json()["gpu_count"] == 16
    stale = member_api.post(f"{url}submit/", HTTP_IF_MATCH=etag)
    assert stale.status_code == 412
    assert CapacityRequest.objects.for_organization(org).get().state == "draft"
    submitted = member_api.post(f"{url}submit/", HTTP_IF_MATCH=edited["ETag"])
    assert submitted.status_code == 200
    assert submitted.json()["state"] == "submitted"


def test_illegal_transition_is_409_with_the_current_state(org, member_api, pending_request):
    url = f"/api/v1/orgs/acme/requests/{pending_request.pk}/submit/"
    response = member_api.post(url)
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "illegal_transition"
    assert body["current_state"] == "pending_approval"


def test_detail_shows_checks_timeline_and_comments(member_api, pending_request):
    url = f"/api/v1/orgs/acme/requests/{pending_request.pk}/"
    assert (
        member_api.post(f"{url}comments/", {"body": "Any news?"}, format="json").status_code == 201
    )
    body = member_api.get(url).json()
    assert {check["name"] for check in body["checks"]} >= {"capacity", "contract"}
    assert body["timeline"][-1]["to_state"] == "pending_approval"
    assert [comment["body"] for comment in body["comments"]] == ["Any news?"]
    assert body["reservation"] is None


def test_withdraw(member_api, pending_request):
    url = f"/api/v1/orgs/acme/requests/{pending_request.pk}/withdraw/"
    response = member_api.post(url, {"reason": "Not needed"}, format="json")
    assert response.status_code == 200
    assert response.json()["state"] == "withdrawn"


def test_staff_approve_through_a_provider_key(org, approvals_key, pending_request):
    client = bearer(approvals_key.key)
    inbox = client.get("/api/v1/staff/requests/").json()["results"]
    assert [row["id"] for row in inbox] == [pending_request.pk]
    assert inbox[0]["organization"] == "acme"
    response = client.post(f"/api/v1/staff/requests/{pending_request.pk}/approve/")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "approved"
    assert response.json()["reservation"] is not None
    assert response.json()["quote"]["source"] == "contract"


def test_staff_reject_needs_a_reason(account_manager, api, pending_request):
    api.force_login(account_manager)
    url = f"/api/v1/staff/requests/{pending_request.pk}/reject/"
    assert api.post(url, {}, format="json").json()["errors"][0]["field"] == "reason"
    response = api.post(url, {"reason": "No capacity for this team"}, format="json")
    assert response.json()["state"] == "rejected"


def test_account_manager_sees_only_their_tenants(db, api, other_org, pool, other_owner):
    from tests.factories import StaffUserFactory

    stranger = StaffUserFactory(email="other-manager@provider.example")
    from tests.conftest import enable_totp

    enable_totp(stranger)
    foreign = reservation_request(other_org, other_owner, pool)
    capacity_request_run_checks(request_id=foreign.pk)
    api.force_login(stranger)
    assert api.get("/api/v1/staff/requests/").json()["results"] == []
    assert api.get(f"/api/v1/staff/requests/{foreign.pk}/").status_code == 404
    assert api.post(f"/api/v1/staff/requests/{foreign.pk}/approve/").status_code == 404


def test_reservation_cancel_and_extend(org, member_api, reservation):
    url = f"/api/v1/orgs/acme/reservations/{reservation.pk}/"
    detail = member_api.get(url)
    assert detail.json()["state"] == "scheduled"
    extension = member_api.post(
        f"{url}extend/", {"ends_at": (reservation.ends_at + timedelta(days=1)).isoformat()},
        format="json",
    )  # fmt: skip
    assert extension.status_code == 201, extension.content
    assert extension.json()["extends_reservation"] == reservation.pk
    stale = member_api.post(f"{url}cancel/", HTTP_IF_MATCH='"stale"')
    assert stale.status_code == 412
    cancelled = member_api.post(f"{url}cancel/", {"reason": "Plans changed"}, format="json",
                                HTTP_IF_MATCH=detail["ETag"])  # fmt: skip
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert Reservation.objects.for_organization(org).get().state == "cancelled"


def test_release_of_a_scheduled_reservation_is_409(member_api, reservation):
    response = member_api.post(f"/api/v1/orgs/acme/reservations/{reservation.pk}/release/")
    assert response.status_code == 409


def test_quota_now_counts_running_reservations(member_api, reservation):
    at = (reservation.starts_at + timedelta(hours=1)).isoformat()
    body = member_api.get("/api/v1/orgs/acme/quotas/", {"at": at}).json()
    assert body["lines"] == [
        {"sku": "h100-sxm", "region": "us-east-1", "reserved": 8, "on_demand": 0, "total": 8}
    ]
    history = member_api.get(
        "/api/v1/orgs/acme/quotas/history/",
        {"sku": "h100-sxm", "region": "us-east-1", "since": soon(0).isoformat(),
         "until": soon(30).isoformat()},
    ).json()  # fmt: skip
    assert [point["total"] for point in history["points"]] == [0, 8, 0]


def test_availability_and_quote(member_api, pool, reservation):
    params = {"sku": "h100-sxm", "region": "us-east-1", "gpu_count": 64, **window(days=5)}
    body = member_api.get("/api/v1/orgs/acme/availability/", params).json()
    assert body["fits"] is False
    assert body["free_min"] == 56
    assert body["earliest_start"] is not None
    quote = member_api.get("/api/v1/orgs/acme/quote/", {**params, "gpu_count": 8}).json()
    assert quote["source"] == "contract"
    assert Decimal(quote["rate_per_gpu_hour"]) == Decimal("2")
    assert Decimal(quote["total"]) == Decimal("2") * 8 * 48


def test_availability_names_a_missing_pool(member_api, pool):
    from tests.factories import RegionFactory

    RegionFactory(code="us-west-9")
    params = {"sku": "h100-sxm", "region": "us-west-9", "gpu_count": 8, **window()}
    response = member_api.get("/api/v1/orgs/acme/availability/", params)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "region"


def count(client, url):
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(queries), response.json()


@pytest.mark.parametrize(
    "url",
    ["/api/v1/orgs/acme/requests/", "/api/v1/orgs/acme/reservations/", "/api/v1/staff/requests/",
     "/api/v1/staff/pools/"],
)  # fmt: skip
def test_workflow_lists_run_constant_queries(org, member, pool, org_key, approvals_key, url,
                                             account_manager):  # fmt: skip
    from quotas.services import capacity_request_approve

    def grow(n):
        for _ in range(n):
            capacity_request = reservation_request(org, member, pool, gpu_count=8)
            capacity_request_run_checks(request_id=capacity_request.pk)
        for capacity_request in CapacityRequest.objects.for_organization(org).filter(
            state="pending_approval"
        )[: n // 2]:
            capacity_request_approve(capacity_request=capacity_request, actor=account_manager)

    client = bearer(approvals_key.key if "/staff/" in url else org_key.key)
    grow(2)
    small, body = count(client, f"{url}?page_size=1")
    grow(4)
    large, body = count(client, f"{url}?page_size=20")
    assert len(body["results"]) > 1 or "pools" in url
    assert large == small


def test_contracts_show_commitment_and_rates(org, pool, owner_api, member_api):
    from tests.factories import ContractRateFactory, RegionFactory

    contract = pool_contract(org)
    ContractRateFactory(
        contract=contract, sku=pool.sku, region=RegionFactory(code="us-west-1"),
        price_per_gpu_hour=Decimal("1.9000"),
    )  # fmt: skip
    body = owner_api.get("/api/v1/orgs/acme/contracts/").json()["results"]
    assert [c["number"] for c in body] == ["ACME-API"]
    assert body[0]["remaining_commitment"] == body[0]["committed_spend"]
    assert body[0]["rates"] == [
        {"sku": "h100-sxm", "region": None, "price_per_gpu_hour": "2.0000"},
        {"sku": "h100-sxm", "region": "us-west-1", "price_per_gpu_hour": "1.9000"},
    ]
    assert member_api.get("/api/v1/orgs/acme/contracts/").status_code == 403


def pool_contract(org):
    from contracts.models import Contract

    return Contract.objects.for_organization(org).get(number="ACME-API")


def test_contract_list_runs_constant_queries(org, pool, org_key):
    from tests.factories import ContractFactory, ContractRateFactory

    def grow(n):
        for i in range(n):
            contract = ContractFactory(organization=org, number=f"X-{n}-{i}")
            ContractRateFactory(contract=contract, sku=pool.sku)

    client = bearer(org_key.key)
    grow(2)
    small, _ = count(client, "/api/v1/orgs/acme/contracts/?page_size=2")
    grow(6)
    large, body = count(client, "/api/v1/orgs/acme/contracts/?page_size=20")
    assert len(body["results"]) == 9
    assert large == small
