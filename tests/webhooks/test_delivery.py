"""Publishing, signing, sending, retrying and disabling, against a real receiver."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from notifications.models import Notification
from portal.errors import ConflictError
from tests.conftest import make_member
from webhooks import signing
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.selectors import webhook_delivery_due_ids
from webhooks.services import (
    webhook_delivery_attempt,
    webhook_delivery_redeliver,
    webhook_endpoint_create,
    webhook_endpoint_update,
    webhook_event_publish,
)
from webhooks.tasks import deliver_task, deliveries_due_scan_task

from .conftest import documented_verify

pytestmark = pytest.mark.django_db

DATA = {"reference": "REQ-1", "gpu_count": 64}


def publish(org, event_id="evt-1", event_type="request.approved", data=DATA):
    return webhook_event_publish(
        organization=org, event_type=event_type, data=data, event_id=event_id
    )


def due_now(delivery):
    """Let time pass until the delivery's next attempt is due."""
    WebhookDelivery.all_objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def wait_seconds(delivery) -> int:
    """Whole seconds from the attempt to the next one (the attempt itself takes a moment)."""
    return int((delivery.next_attempt_at - delivery.last_attempt_at).total_seconds())


# --- Publishing --------------------------------------------------------------------------------
def test_publish_creates_one_delivery_per_subscribed_enabled_endpoint_and_enqueues_after_commit(
    org, owner, other_org, other_owner, endpoint, receiver, django_capture_on_commit_callbacks
):
    webhook_endpoint_create(
        organization=org, actor=owner, url=receiver.url, events=["request.rejected"]
    )
    disabled = webhook_endpoint_create(
        organization=org, actor=owner, url=receiver.url, events=["request.approved"]
    )
    webhook_endpoint_update(endpoint=disabled, actor=owner, enabled=False)
    webhook_endpoint_create(
        organization=other_org, actor=other_owner, url=receiver.url, events=["request.approved"]
    )

    with django_capture_on_commit_callbacks() as callbacks:
        created = publish(org)

    assert [d.endpoint_id for d in created] == [endpoint.pk]
    assert len(callbacks) == 1
    delivery = created[0]
    assert delivery.status == "pending" and delivery.next_attempt_at is not None
    assert delivery.payload["id"] == "evt-1"
    assert delivery.payload["type"] == "request.approved"
    assert delivery.payload["organization"] == "acme"
    assert delivery.payload["data"] == DATA
    assert WebhookDelivery.objects.unscoped_for_staff().count() == 1


def test_publishing_the_same_event_again_creates_and_enqueues_nothing(
    org, endpoint, django_capture_on_commit_callbacks
):
    publish(org)
    with django_capture_on_commit_callbacks() as callbacks:
        again = publish(org, data={"changed": True})

    assert again == []
    assert callbacks == []
    delivery = WebhookDelivery.objects.for_organization(org).get()
    assert delivery.payload["data"] == DATA


def test_publish_refuses_unknown_event_types(org, endpoint):
    with pytest.raises(ValueError, match="Unknown webhook event type"):
        publish(org, event_type="request.teleported")


def test_data_is_built_only_when_an_endpoint_listens(org):
    def data():
        raise AssertionError("built for nobody")

    assert publish(org, data=data) == []


# --- Signing -----------------------------------------------------------------------------------
def test_receiver_verifies_each_delivery_with_the_documented_function(org, endpoint, receiver):
    verify = documented_verify()
    receiver.verify_with = (verify, endpoint.secret)
    delivery = publish(org)[0]

    assert deliver_task(delivery.pk) == "succeeded"

    assert receiver.verified == [True]
    request = receiver.received[0]
    assert request.path == "/hooks/portal"
    assert request.headers["Portal-Event-Id"] == "evt-1"
    assert request.headers["Portal-Event-Type"] == "request.approved"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.body)
    assert set(body) == {"id", "type", "created_at", "organization", "data"}
    assert body["data"] == DATA
    header = request.headers["Portal-Signature"]
    # A tampered body, another secret or an old signature fail the same check.
    assert not verify(endpoint.secret, request.body.replace(b"64", b"65"), header)
    assert not verify("whsec_someone-else", request.body, header)
    assert not verify(endpoint.secret, request.body, header, tolerance=-1)
    assert not verify(endpoint.secret, request.body, "v1=abc")


def test_documented_function_agrees_with_the_signer():
    verify = documented_verify()
    now = int(time.time())
    header = signing.signature_header(secret="whsec_x", timestamp=now, body=b'{"a":1}')
    assert verify("whsec_x", b'{"a":1}', header)
    old = signing.signature_header(secret="whsec_x", timestamp=now - 3600, body=b'{"a":1}')
    assert not verify("whsec_x", b'{"a":1}', old)


# --- Sending, retries --------------------------------------------------------------------------
def test_a_task_run_twice_sends_once(org, endpoint, receiver):
    delivery = publish(org)[0]

    assert deliver_task(delivery.pk) == "succeeded"
    assert deliver_task(delivery.pk) == "done"

    assert len(receiver.received) == 1
    delivery.refresh_from_db()
    assert delivery.attempt_count == 1
    assert delivery.last_response_status == 200
    assert delivery.latency_ms is not None
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None


def test_a_claimed_delivery_is_not_sent_by_a_second_copy(org, endpoint, receiver):
    """A copy of the task arriving while an attempt is in flight finds it not due."""
    delivery = publish(org)[0]
    WebhookDelivery.all_objects.filter(pk=delivery.pk).update(
        attempt_count=1, next_attempt_at=timezone.now() + timedelta(seconds=60)
    )
    assert deliver_task(delivery.pk) == "not_due"
    assert receiver.received == []


def test_retries_back_off_exponentially_after_500s_then_succeed(
    org, endpoint, receiver, settings, eager_celery
):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    receiver.statuses = [500, 503]
    delivery = publish(org)[0]

    assert deliver_task(delivery.pk) == "retrying"
    delivery.refresh_from_db()
    assert delivery.last_response_status == 500 and delivery.last_error == "HTTP 500"
    assert wait_seconds(delivery) == 30
    # Not due yet: the scan leaves it alone.
    assert deliveries_due_scan_task() == 0
    assert len(receiver.received) == 1

    due_now(delivery)
    assert deliveries_due_scan_task() == 1  # eager: the task runs inline
    delivery.refresh_from_db()
    assert delivery.status == "retrying" and delivery.last_response_status == 503
    assert wait_seconds(delivery) == 60

    due_now(delivery)
    assert deliveries_due_scan_task() == 1
    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    assert delivery.attempt_count == 3
    assert delivery.last_response_status == 200 and delivery.last_error == ""
    assert [r.headers["Portal-Event-Id"] for r in receiver.received] == ["evt-1"] * 3
    endpoint.refresh_from_db()
    assert endpoint.failure_streak == 0 and endpoint.failing_since is None


def test_a_delivery_gives_up_after_the_last_attempt(org, endpoint, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    receiver.default_status = 500
    delivery = publish(org)[0]
    assert deliver_task(delivery.pk) == "retrying"
    due_now(delivery)
    assert deliver_task(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert delivery.next_attempt_at is None
    assert webhook_delivery_due_ids() == []


def test_a_connection_refused_is_logged_and_retried(org, owner, settings):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = webhook_endpoint_create(
        organization=org, actor=owner, url=f"http://127.0.0.1:{port}/", events=["request.approved"]
    )
    delivery = publish(org)[0]
    assert deliver_task(delivery.pk) == "retrying"
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("Connection failed")
    assert delivery.last_response_status is None
    endpoint.refresh_from_db()
    assert endpoint.failure_streak == 1


# --- Disabling ---------------------------------------------------------------------------------
def test_an_endpoint_that_keeps_failing_is_disabled_and_its_owners_and_admins_told(
    org, owner, admin, member, endpoint, receiver, settings
):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    settings.WEBHOOK_DISABLE_AFTER_HOURS = 0
    receiver.default_status = 500
    deliveries = [publish(org, event_id=f"evt-{i}")[0] for i in range(4)]

    for delivery in deliveries[:2]:
        assert deliver_task(delivery.pk) == "retrying"
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failure_streak == 2
    assert deliver_task(deliveries[2].pk) == "retrying"

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert "3 failed deliveries in a row" in endpoint.disabled_reason
    told = Notification.objects.filter(event="webhook.disabled")
    assert sorted(n.recipient.email for n in told) == sorted([owner.email, admin.email])
    assert AuditEvent.objects.for_organization(org).filter(action="webhook.disabled").exists()
    # Nothing more is sent to it: queued deliveries are failed, the scan skips it.
    statuses = set(WebhookDelivery.objects.for_organization(org).values_list("status", flat=True))
    assert statuses == {"failed"}
    assert webhook_delivery_due_ids(now=timezone.now() + timedelta(days=1)) == []
    assert deliver_task(deliveries[3].pk) == "done"
    assert len(receiver.received) == 3
    # Nor is any new event.
    assert publish(org, event_id="evt-later") == []


def test_failures_spread_over_less_than_the_window_do_not_disable(
    org, endpoint, receiver, settings
):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 2
    settings.WEBHOOK_DISABLE_AFTER_HOURS = 24
    receiver.default_status = 500
    for i in range(3):
        deliver_task(publish(org, event_id=f"evt-{i}")[0].pk)
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failure_streak == 3
    # The same streak, begun more than a day ago, disables it.
    WebhookEndpoint.all_objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - timedelta(hours=25)
    )
    deliver_task(publish(org, event_id="evt-3")[0].pk)
    endpoint.refresh_from_db()
    assert not endpoint.enabled


def test_a_success_resets_the_failure_streak(org, endpoint, receiver):
    receiver.statuses = [500]
    deliver_task(publish(org, event_id="a")[0].pk)
    endpoint.refresh_from_db()
    assert endpoint.failure_streak == 1
    deliver_task(publish(org, event_id="b")[0].pk)
    endpoint.refresh_from_db()
    assert endpoint.failure_streak == 0


# --- Redelivery --------------------------------------------------------------------------------
def test_redelivery_sends_the_same_event_again_with_a_fresh_signature(
    org, owner, endpoint, receiver, django_capture_on_commit_callbacks
):
    delivery = publish(org)[0]
    deliver_task(delivery.pk)

    with django_capture_on_commit_callbacks() as callbacks:
        webhook_delivery_redeliver(delivery=delivery, actor=owner)
    assert len(callbacks) == 1
    assert deliver_task(delivery.pk) == "succeeded"

    assert [r.body for r in receiver.received] == [receiver.received[0].body] * 2
    delivery.refresh_from_db()
    assert delivery.attempt_count == 2
    assert AuditEvent.objects.for_organization(org).filter(action="webhook.redelivered").exists()


def test_redelivery_to_a_disabled_endpoint_is_refused(org, owner, endpoint):
    delivery = publish(org)[0]
    webhook_endpoint_update(endpoint=endpoint, actor=owner, enabled=False)
    with pytest.raises(ConflictError, match="disabled"):
        webhook_delivery_redeliver(delivery=delivery, actor=owner)


def test_redelivery_gets_a_full_schedule_of_retries(org, owner, endpoint, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    receiver.default_status = 500
    delivery = publish(org)[0]
    assert deliver_task(delivery.pk) == "failed"
    webhook_delivery_redeliver(delivery=delivery, actor=owner)
    assert deliver_task(delivery.pk) == "failed"  # one attempt of its own, not zero
    assert len(receiver.received) == 2


def test_attempt_of_a_deleted_delivery_is_a_no_op(db):
    assert webhook_delivery_attempt(delivery_id=987654321) == "gone"


def test_other_members_are_not_told_when_an_endpoint_is_disabled(org, endpoint, receiver, settings):
    viewer = make_member(org, "viewer", email="viewer@acme.example")
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 1
    settings.WEBHOOK_DISABLE_AFTER_HOURS = 0
    receiver.default_status = 500
    deliver_task(publish(org)[0].pk)
    assert not Notification.objects.filter(recipient=viewer).exists()
