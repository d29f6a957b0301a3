"""Two workers given the same delivery at once (a redelivered message, the scan and the
on-commit task racing) send it once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from webhooks.models import WebhookDelivery
from webhooks.services import webhook_endpoint_create, webhook_event_publish
from webhooks.tasks import deliver_task

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_workers_racing_on_one_delivery_send_it_once(org, owner, receiver):
    webhook_endpoint_create(
        organization=org, actor=owner, url=receiver.url, events=["request.approved"]
    )
    delivery = webhook_event_publish(
        organization=org, event_type="request.approved", data={}, event_id="race"
    )[0]
    receiver.delay = 0.5
    outcomes = []
    start = threading.Barrier(2)

    def worker():
        try:
            start.wait()
            outcomes.append(deliver_task(delivery.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["not_due", "succeeded"]
    assert len(receiver.received) == 1
    delivery = WebhookDelivery.objects.for_organization(org).get()
    assert delivery.attempt_count == 1 and delivery.status == "succeeded"
