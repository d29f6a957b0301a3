"""The Webhooks pages: list, create (secret once), delivery log, redeliver, rotate, delete."""

from __future__ import annotations

import re

import pytest

from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import webhook_endpoint_create, webhook_event_publish
from webhooks.tasks import deliver_task

pytestmark = pytest.mark.django_db

LIST = "/o/acme/webhooks/"


def test_owner_adds_an_endpoint_and_sees_its_secret_once(client, org, owner, receiver):
    client.force_login(owner)
    posted = client.post(
        LIST, {"url": receiver.url, "description": "CI", "events": ["request.approved"]}
    )
    endpoint = WebhookEndpoint.objects.for_organization(org).get()
    # Post/Redirect/Get: the endpoint's page shows the secret on the GET the POST redirects to.
    assert posted.status_code == 302 and posted["Location"] == f"{LIST}{endpoint.pk}/"
    response = client.get(posted["Location"])
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    assert endpoint.secret in html and "Webhook added" in html
    # A refresh repeats that GET: the page, without the secret, and still one endpoint.
    detail = client.get(f"{LIST}{endpoint.pk}/")
    assert detail.status_code == 200
    assert endpoint.secret not in detail.content.decode()
    assert endpoint.secret not in client.get(LIST).content.decode()
    assert WebhookEndpoint.objects.for_organization(org).count() == 1


def test_a_private_url_is_refused_next_to_the_field(client, org, owner, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    client.force_login(owner)
    response = client.post(LIST, {"url": "http://192.168.1.9/", "events": ["request.approved"]})
    assert response.status_code == 400
    assert "not a public address" in response.content.decode()
    assert not WebhookEndpoint.objects.for_organization(org).exists()


@pytest.mark.parametrize("rows", [1, 12])
def test_list_and_delivery_log_take_a_fixed_number_of_queries(
    client, org, owner, receiver, rows, django_assert_num_queries
):
    endpoint = None
    for i in range(rows):
        endpoint = webhook_endpoint_create(
            organization=org, actor=owner, url=f"{receiver.url}/{i}", events=["request.approved"]
        )
    for i in range(rows):
        webhook_event_publish(
            organization=org, event_type="request.approved", data={}, event_id=f"e{i}"
        )
    client.force_login(owner)
    # The same count with 1 or 12 endpoints and deliveries: no query per row.
    with django_assert_num_queries(6):
        assert client.get(LIST).status_code == 200
    with django_assert_num_queries(8):
        response = client.get(f"{LIST}{endpoint.pk}/")
    assert response.status_code == 200
    assert response.content.decode().count("Redeliver<span") == rows


def test_delivery_log_shows_status_latency_and_redelivers(client, org, owner, endpoint, receiver):
    receiver.statuses = [500]
    delivery = webhook_event_publish(
        organization=org, event_type="request.approved", data={}, event_id="evt-9"
    )[0]
    deliver_task(delivery.pk)
    client.force_login(owner)

    html = client.get(f"{LIST}{endpoint.pk}/?status=retrying").content.decode()
    assert "evt-9" in html and "HTTP 500" in html
    assert re.search(r"\d+ ms", html)
    assert "evt-9" not in client.get(f"{LIST}{endpoint.pk}/?status=succeeded").content.decode()

    response = client.post(f"{LIST}{endpoint.pk}/deliveries/{delivery.pk}/redeliver/")
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == "pending"


def test_delete_asks_first_then_deletes(client, org, owner, endpoint):
    client.force_login(owner)
    confirm = client.get(f"{LIST}{endpoint.pk}/delete/")
    assert confirm.status_code == 200
    assert "Delete the webhook" in confirm.content.decode()
    assert WebhookEndpoint.objects.for_organization(org).exists()
    assert client.post(f"{LIST}{endpoint.pk}/delete/").status_code == 302
    assert not WebhookEndpoint.objects.for_organization(org).exists()


def test_rotate_asks_first_then_shows_the_new_secret(client, owner, endpoint):
    client.force_login(owner)
    assert client.get(f"{LIST}{endpoint.pk}/rotate-secret/").status_code == 200
    old_secret = endpoint.secret
    posted = client.post(f"{LIST}{endpoint.pk}/rotate-secret/")
    assert posted.status_code == 302 and posted["Location"] == f"{LIST}{endpoint.pk}/"
    response = client.get(posted["Location"])
    endpoint.refresh_from_db()
    assert endpoint.secret != old_secret
    assert response["Cache-Control"] == "no-store"
    assert endpoint.secret in response.content.decode()
    # A refresh shows the endpoint's page and rotates nothing.
    again = client.get(posted["Location"]).content.decode()
    assert endpoint.secret not in again
    endpoint.refresh_from_db()
    assert endpoint.secret in response.content.decode()


def test_disable_and_enable(client, owner, endpoint):
    client.force_login(owner)
    client.post(f"{LIST}{endpoint.pk}/enabled/", {"enabled": "false"})
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    client.post(f"{LIST}{endpoint.pk}/enabled/", {"enabled": "true"})
    endpoint.refresh_from_db()
    assert endpoint.enabled


def test_members_get_403_and_no_nav_link(client, member, endpoint):
    client.force_login(member)
    assert client.get(LIST).status_code == 403
    assert client.get(f"{LIST}{endpoint.pk}/").status_code == 403
    assert 'href="/o/acme/webhooks/"' not in client.get("/o/acme/settings/").content.decode()


def test_owners_see_the_nav_link(client, owner):
    client.force_login(owner)
    assert 'href="/o/acme/webhooks/"' in client.get("/o/acme/settings/").content.decode()


def test_another_organization_gets_404(client, org, other_owner, endpoint):
    delivery = webhook_event_publish(
        organization=org, event_type="request.approved", data={}, event_id="x"
    )[0]
    client.force_login(other_owner)
    for method, path in [
        ("get", LIST),
        ("get", f"{LIST}{endpoint.pk}/"),
        ("post", f"{LIST}{endpoint.pk}/delete/"),
        ("post", f"{LIST}{endpoint.pk}/rotate-secret/"),
        ("post", f"{LIST}{endpoint.pk}/deliveries/{delivery.pk}/redeliver/"),
        ("get", f"/o/globex/webhooks/{endpoint.pk}/"),
        ("post", f"/o/globex/webhooks/{endpoint.pk}/deliveries/{delivery.pk}/redeliver/"),
    ]:
        assert getattr(client, method)(path).status_code == 404, (method, path)
    assert WebhookEndpoint.objects.for_organization(org).exists()
    assert WebhookDelivery.objects.for_organization(org).get().status == "pending"


def test_quota_alerts_can_be_chosen_in_the_form(client, org, owner, receiver):
    client.force_login(owner)
    assert 'value="quota.utilization"' in client.get(LIST).content.decode()
    response = client.post(LIST, {"url": receiver.url, "events": ["quota.utilization"]})
    assert response.status_code == 302
    assert WebhookEndpoint.objects.for_organization(org).get().events == ["quota.utilization"]
