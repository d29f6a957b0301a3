"""The statements every request move that tells someone runs (the listening webhook endpoints,
the notification's publish) and the e-mail task's claim are prepared once per connection, and
do the same when a transaction pooler rules prepared statements out."""

import pytest
from django.db import connection, transaction
from django.utils import timezone

from notifications.models import Notification
from notifications.services import _notification_claim, notification_publish
from webhooks.selectors import webhook_endpoints_listening
from webhooks.services import webhook_endpoint_create

EVENT = "request.approval_needed"
WEBHOOK_EVENT = "request.pending_approval"


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements ORDER BY prepare_time")
        return [row[0] for row in cursor.fetchall()]


def _move(org, member, key: str) -> tuple:
    """What a move to pending approval reads and writes here, and the e-mail task's claim."""
    endpoints = webhook_endpoints_listening(organization=org, event_type=WEBHOOK_EVENT)
    (published,) = notification_publish(
        event=EVENT,
        organization=org,
        recipients=[member],
        title="REQ-7 awaits your decision",
        body="REQ-7: 8 GPUs.",
        url="/staff/requests/7/",
        dedupe_key=key,
    )
    with transaction.atomic():
        claimed = _notification_claim(published.pk, now=timezone.now())
    stored = Notification.objects.get(pk=published.pk)
    return (
        [endpoint.pk for endpoint in endpoints],
        published.delivery,
        claimed.recipient.email,
        claimed.emailed_at == stored.emailed_at,
    )


@pytest.fixture
def listening_endpoint(org, owner):
    return webhook_endpoint_create(
        organization=org,
        actor=owner,
        url="https://hooks.acme.example/portal",
        events=[WEBHOOK_EVENT, "request.approved"],
    )


@pytest.mark.django_db
def test_the_statements_are_prepared_once_per_connection(org, member, listening_endpoint):
    before = _prepared_statements()
    expected = ([listening_endpoint.pk], "immediate", member.email, True)
    assert _move(org, member, "request:7:v1:pending_approval") == expected
    prepared = _prepared_statements()
    new = prepared[len(before) :]
    assert len(new) == 3
    assert sum("webhooks_webhookendpoint" in statement for statement in new) == 1
    assert sum("INSERT INTO notifications_notification" in statement for statement in new) == 1
    assert sum("WITH n AS (UPDATE" in statement for statement in new) == 1
    assert _move(org, member, "request:7:v2:pending_approval") == expected
    assert _prepared_statements() == prepared  # used again, not prepared again


@pytest.mark.django_db
def test_the_same_without_prepared_statements(org, member, listening_endpoint, monkeypatch):
    """Behind a transaction pooler (DISABLE_SERVER_SIDE_CURSORS) statements are not prepared."""
    prepared_answer = _move(org, member, "request:7:v1:pending_approval")
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    before = _prepared_statements()
    assert _move(org, member, "request:7:v2:pending_approval") == prepared_answer
    assert _prepared_statements() == before  # nothing new prepared
