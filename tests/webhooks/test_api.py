"""The webhooks API: CRUD with the secret shown once, rotation, the delivery log, redelivery."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.apikeys import api_key_create_for_organization
from accounts.models import AuditEvent
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import webhook_endpoint_create, webhook_event_publish

pytestmark = pytest.mark.django_db

BASE = "/api/v1/orgs/acme/webhooks/"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def owner_api(owner):
    return client_for(owner)


def deliveries(org, endpoint, count):
    for i in range(count):
        webhook_event_publish(
            organization=org, event_type="request.approved", data={"n": i}, event_id=f"e{i}"
        )
    return WebhookDelivery.objects.for_organization(org).filter(endpoint=endpoint)


def test_create_shows_the_secret_once(owner_api, org, receiver):
    response = owner_api.post(
        BASE,
        {"url": receiver.url, "events": ["request.approved"], "description": "CI"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["request.approved"] and body["enabled"] is True
    endpoint = WebhookEndpoint.objects.for_organization(org).get()
    assert endpoint.secret == body["secret"]

    assert "secret" not in owner_api.get(f"{BASE}{endpoint.pk}/").json()
    assert "secret" not in owner_api.get(BASE).json()["results"][0]
    assert AuditEvent.objects.for_organization(org).filter(action="webhook.created").exists()


def test_create_refuses_a_private_url_naming_the_field(owner_api, org, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    response = owner_api.post(
        BASE, {"url": "http://10.0.0.1/", "events": ["request.approved"]}, format="json"
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["url"]
    assert not WebhookEndpoint.objects.for_organization(org).exists()


def test_create_refuses_unknown_events(owner_api, org, receiver):
    response = owner_api.post(
        BASE, {"url": receiver.url, "events": ["request.teleported"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"].startswith("events")


def test_rotate_replaces_the_secret_and_shows_it_once(owner_api, endpoint):
    response = owner_api.post(f"{BASE}{endpoint.pk}/rotate-secret/")
    assert response.status_code == 200
    new = response.json()["secret"]
    assert new != endpoint.secret
    endpoint.refresh_from_db()
    assert endpoint.secret == new and endpoint.secret_rotated_at is not None


def test_patch_changes_events_and_re_enables(owner_api, endpoint, owner):
    from webhooks.services import webhook_endpoint_update

    webhook_endpoint_update(endpoint=endpoint, actor=owner, enabled=False)
    response = owner_api.patch(
        f"{BASE}{endpoint.pk}/", {"events": ["request.rejected"], "enabled": True}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["events"] == ["request.rejected"]
    assert response.json()["enabled"] is True and response.json()["disabled_reason"] == ""


def test_delete_removes_the_endpoint_and_its_log(owner_api, org, endpoint):
    deliveries(org, endpoint, 2)
    assert owner_api.delete(f"{BASE}{endpoint.pk}/").status_code == 204
    assert not WebhookEndpoint.objects.for_organization(org).exists()
    assert not WebhookDelivery.objects.for_organization(org).exists()


def test_delivery_log_and_redelivery(owner_api, org, endpoint, receiver):
    from webhooks.tasks import deliver_task

    receiver.statuses = [500]
    delivery = deliveries(org, endpoint, 1).get()
    deliver_task(delivery.pk)

    log = owner_api.get(f"{BASE}{endpoint.pk}/deliveries/?status=retrying").json()
    assert log["count"] == 1
    row = log["results"][0]
    assert row["status"] == "retrying" and row["attempt_count"] == 1
    assert row["last_response_status"] == 500 and row["latency_ms"] is not None
    assert owner_api.get(f"{BASE}{endpoint.pk}/deliveries/?status=succeeded").json()["count"] == 0

    response = owner_api.post(f"{BASE}deliveries/{delivery.pk}/redeliver/")
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert owner_api.get(f"{BASE}deliveries/{delivery.pk}/").json()["event_id"] == "e0"


def test_redelivery_to_a_disabled_endpoint_is_a_conflict(owner_api, org, owner, endpoint):
    from webhooks.services import webhook_endpoint_update

    delivery = deliveries(org, endpoint, 1).get()
    webhook_endpoint_update(endpoint=endpoint, actor=owner, enabled=False)
    response = owner_api.post(f"{BASE}deliveries/{delivery.pk}/redeliver/")
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"


@pytest.mark.parametrize("rows", [1, 15])
def test_lists_take_a_fixed_number_of_queries(
    owner_api, org, owner, receiver, rows, django_assert_num_queries
):
    endpoint = None
    for i in range(rows):
        endpoint = webhook_endpoint_create(
            organization=org, actor=owner, url=f"{receiver.url}/{i}", events=["request.approved"]
        )
    deliveries(org, endpoint, rows)
    # session, user, organization, membership, then the page's count and rows
    with django_assert_num_queries(6):
        assert owner_api.get(BASE).json()["count"] == rows
    with django_assert_num_queries(7):  # + the endpoint
        assert owner_api.get(f"{BASE}{endpoint.pk}/deliveries/").json()["count"] == rows


def test_members_and_read_keys_cannot_manage_webhooks(org, owner, member, endpoint):
    assert client_for(member).get(BASE).status_code == 403
    read_key = api_key_create_for_organization(
        organization=org, name="ro", scopes=["read"], created_by=owner
    )
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {read_key.key}")
    assert reader.get(BASE).status_code == 200
    assert reader.post(f"{BASE}{endpoint.pk}/rotate-secret/").status_code == 403


def test_another_organization_gets_404(org, other_owner, endpoint):
    delivery = deliveries(org, endpoint, 1).get()
    stranger = client_for(other_owner)
    for method, path in [
        ("get", f"{BASE}{endpoint.pk}/"),
        ("patch", f"{BASE}{endpoint.pk}/"),
        ("delete", f"{BASE}{endpoint.pk}/"),
        ("post", f"{BASE}{endpoint.pk}/rotate-secret/"),
        ("get", f"{BASE}{endpoint.pk}/deliveries/"),
        ("get", f"{BASE}deliveries/{delivery.pk}/"),
        ("post", f"{BASE}deliveries/{delivery.pk}/redeliver/"),
        ("get", f"/api/v1/orgs/globex/webhooks/{endpoint.pk}/"),
        ("post", f"/api/v1/orgs/globex/webhooks/deliveries/{delivery.pk}/redeliver/"),
    ]:
        assert getattr(stranger, method)(path).status_code == 404, (method, path)
    endpoint.refresh_from_db()
    assert endpoint.enabled


def test_quota_alerts_can_be_subscribed_through_the_api(owner_api, org, receiver):
    response = owner_api.post(
        BASE,
        {"url": receiver.url, "events": ["quota.utilization", "contract.spend_threshold"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["events"] == ["contract.spend_threshold", "quota.utilization"]
