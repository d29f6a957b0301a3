"""Provider staff may look at webhooks in the admin, never at their secrets, and change nothing."""

import pytest

from tests.conftest import enable_totp
from tests.factories import UserFactory
from webhooks.services import webhook_event_publish

pytestmark = pytest.mark.django_db


def test_superuser_reads_endpoints_and_deliveries_without_the_secret(client, org, endpoint):
    delivery = webhook_event_publish(
        organization=org, event_type="request.approved", data={}, event_id="adm"
    )[0]
    superuser = UserFactory(is_superuser=True, is_staff=True)
    enable_totp(superuser)  # provider staff must have MFA
    client.force_login(superuser)
    for path in [
        "/admin/webhooks/webhookendpoint/",
        f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/",
        "/admin/webhooks/webhookdelivery/",
        f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/",
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert endpoint.secret not in response.content.decode(), path
    assert client.get("/admin/webhooks/webhookendpoint/add/").status_code == 403
    response = client.post(
        f"/admin/webhooks/webhookendpoint/{endpoint.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 403
