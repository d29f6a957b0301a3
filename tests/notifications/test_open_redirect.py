"""Opening a notification goes only to a page of this site."""

import pytest
from django.urls import reverse

from notifications.models import Notification
from notifications.services import notification_publish


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/o/acme/requests/1/", "/o/acme/requests/1/"),
        ("//evil.example/phish", "/notifications/"),
        ("/\\evil.example/phish", "/notifications/"),
        ("https://evil.example/", "/notifications/"),
    ],
)
def test_opening_a_notification_never_leaves_the_site(client, org, member, url, expected):
    notification_publish(
        event="request.approved",
        organization=org,
        recipients=[member],
        title="Approved",
        body="",
        url=url,
        dedupe_key="k",
    )
    notification = Notification.objects.get(recipient=member)
    client.force_login(member)
    response = client.post(reverse("notification_read", args=[notification.pk]), {"open": "1"})
    assert response.status_code == 302
    assert response.url == expected
