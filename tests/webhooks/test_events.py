"""The workflow and the contract alerts publish their events to subscribed endpoints."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from contracts.services import _spend_alert_publish
from quotas.checks import capacity_request_run_checks
from quotas.models import CapacityRequest, Reservation
from quotas.services import capacity_request_approve
from quotas.services.reservations import reservation_activate
from tests.api.conftest import reservation_request
from webhooks.events import EVENT_TYPES
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_endpoint_create
from webhooks.tasks import deliver_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def listener(org, owner, receiver):
    return webhook_endpoint_create(
        organization=org, actor=owner, url=receiver.url, events=sorted(EVENT_TYPES)
    )


def test_request_and_reservation_transitions_are_published_once_each(
    org, member, pool, account_manager, listener, receiver
):
    capacity_request = reservation_request(org, member, pool, gpu_count=8, days=5)
    capacity_request_run_checks(request_id=capacity_request.pk)
    capacity_request_approve(
        capacity_request=CapacityRequest.objects.for_organization(org).get(pk=capacity_request.pk),
        actor=account_manager,
    )
    reservation = Reservation.objects.for_organization(org).get(request_id=capacity_request.pk)

    sent = list(
        WebhookDelivery.objects.for_organization(org)
        .order_by("id")
        .values_list("event_type", "event_id")
    )
    types = [event_type for event_type, _ in sent]
    assert types[0] == "request.submitted"
    assert "request.pending_approval" in types
    assert "request.approved" in types
    assert len({event_id for _, event_id in sent}) == len(sent)

    approved = WebhookDelivery.objects.for_organization(org).get(event_type="request.approved")
    data = approved.payload["data"]
    assert data["request_id"] == capacity_request.pk
    assert data["state"] == "approved" and data["gpu_count"] == 8
    assert data["sku"] == "h100-sxm" and data["region"] == "us-east-1"
    assert data["url"].endswith(f"/o/acme/requests/{capacity_request.pk}/")
    reservation_activate(reservation_id=reservation.pk, now=reservation.starts_at)
    active = WebhookDelivery.objects.for_organization(org).get(event_type="reservation.active")
    assert active.payload["data"]["reservation_id"] == reservation.pk
    assert active.event_id == f"reservation:{reservation.pk}:v2:active"

    assert deliver_task(approved.pk) == "succeeded"
    assert receiver.received[0].headers["Portal-Event-Type"] == "request.approved"


def test_spend_alerts_are_published(org, listener, pool):
    from contracts.models import Contract, SpendAlertState

    contract = Contract.objects.for_organization(org).get()
    state = SpendAlertState.all_objects.create(
        organization=org,
        contract=contract,
        kind="consumed_80",
        fire_count=1,
        last_value=Decimal("81.00"),
    )

    class Burn:
        consumed = Decimal("8100")
        committed = Decimal("10000")
        currency = "USD"
        consumed_percent = Decimal("81")
        forecast_at_term_end = Decimal("12000")
        projected_underuse = Decimal("0")
        summary = "On track."

    _spend_alert_publish(contract, state, Burn())

    delivery = WebhookDelivery.objects.for_organization(org).get()
    assert delivery.event_type == "contract.spend_threshold"
    assert delivery.event_id == f"contract:{contract.pk}:consumed_80:1"
    assert delivery.payload["data"]["alert"] == "consumed_80"
    assert delivery.payload["data"]["consumed"] == "8100"


def test_nothing_is_queued_for_an_organization_without_endpoints(org, member, pool):
    reservation_request(org, member, pool, gpu_count=8, days=5)
    assert not WebhookDelivery.objects.for_organization(org).exists()


def test_a_quota_crossing_is_delivered_once_to_subscribed_endpoints_only(
    org, owner, h100, east, receiver
):
    from datetime import UTC, datetime

    from django.conf import settings

    from contracts.quota_alerts import quota_alerts_evaluate
    from quotas.models import OnDemandQuotaChange
    from tests.contracts.conftest import record_usage

    from .conftest import documented_verify

    subscribed = webhook_endpoint_create(
        organization=org, actor=owner, url=receiver.url, events=["quota.utilization"]
    )
    webhook_endpoint_create(
        organization=org,
        actor=owner,
        url=receiver.url + "/other",
        events=["request.approved", "contract.spend_threshold"],
    )
    hour = datetime(2026, 5, 4, 10, tzinfo=UTC)
    OnDemandQuotaChange.all_objects.create(
        organization=org, sku=h100, region=east, old_limit=0, new_limit=10, effective_at=hour
    )
    record_usage(org, h100, east, hour, "9")  # 90 % of 10: crosses 80, not 95

    assert [t for *_, t in quota_alerts_evaluate(organization=org, hour=hour)] == [80]
    assert quota_alerts_evaluate(organization=org, hour=hour) == []  # evaluated again: no more

    delivery = WebhookDelivery.objects.for_organization(org).get()
    assert delivery.endpoint == subscribed
    assert delivery.event_type == "quota.utilization"
    assert delivery.event_id == f"quota:{h100.pk}:{east.pk}:80:1"
    assert delivery.payload["data"] == {
        "sku": "h100-sxm",
        "region": "us-east-1",
        "threshold": 80,
        "percent": "90.0",
        "gpus_in_use": "9.0000",
        "quota": 10,
        "hour": "2026-05-04T10:00:00Z",
        "url": f"{settings.SITE_URL}/o/acme/usage/",
    }

    receiver.verify_with = (documented_verify(), subscribed.secret)
    assert deliver_task(delivery.pk) == "succeeded"
    (received,) = receiver.received
    assert received.path == "/hooks/portal"
    assert received.headers["Portal-Event-Type"] == "quota.utilization"
    assert receiver.verified == [True]


def test_an_accepted_offer_held_for_the_approvers_is_published_once(
    org, member, pool, account_manager, owner, receiver, settings
):
    """A counter-offer above the second-approval threshold, accepted: the request goes to the
    capacity planners with the offer's capacity held, and subscribers hear so."""
    from quotas import notify
    from quotas.services import capacity_request_accept_offer, capacity_request_counter_offer

    settings.QUOTAS_SECOND_APPROVAL_GPUS = 32
    subscribed = webhook_endpoint_create(
        organization=org, actor=owner, url=receiver.url, events=["request.offer_held"]
    )
    capacity_request = reservation_request(org, member, pool, gpu_count=16, days=5)
    capacity_request_run_checks(request_id=capacity_request.pk)
    capacity_request = CapacityRequest.objects.for_organization(org).get(pk=capacity_request.pk)
    capacity_request_counter_offer(
        capacity_request=capacity_request, actor=account_manager, gpu_count=48
    )
    capacity_request = CapacityRequest.objects.for_organization(org).get(pk=capacity_request.pk)
    capacity_request_accept_offer(capacity_request=capacity_request, actor=member)
    capacity_request = CapacityRequest.objects.for_organization(org).get(pk=capacity_request.pk)
    assert capacity_request.state == "pending_second_approval"

    delivery = WebhookDelivery.objects.for_organization(org).get()
    assert delivery.endpoint == subscribed
    assert delivery.event_type == "request.offer_held"
    assert delivery.event_id == (
        f"request:{capacity_request.pk}:v{capacity_request.version}:offer_held"
    )
    data = delivery.payload["data"]
    assert data["request_id"] == capacity_request.pk
    assert data["state"] == "pending_second_approval" and data["gpu_count"] == 16
    assert data["offer"] == {
        "sku": "h100-sxm",
        "region": "us-east-1",
        "gpu_count": 48,
        "starts_at": capacity_request.offer_starts_at.isoformat().replace("+00:00", "Z"),
        "ends_at": capacity_request.offer_ends_at.isoformat().replace("+00:00", "Z"),
    }
    assert data["decision_due_at"] == (
        capacity_request.decision_due_at.isoformat().replace("+00:00", "Z")
    )
    assert data["accepted_automatically"] is False

    # Told again (a repeated call), nothing more is queued.
    notify.request_offer_held(capacity_request, actor=member)
    assert WebhookDelivery.objects.for_organization(org).count() == 1

    assert deliver_task(delivery.pk) == "succeeded"
    assert receiver.received[0].headers["Portal-Event-Type"] == "request.offer_held"


def test_offer_held_is_in_the_catalogue_pages_and_api_offer(owner, org, receiver):
    from rest_framework.test import APIClient

    from webhooks.forms import WebhookEndpointForm

    assert "request.offer_held" in EVENT_TYPES
    api = APIClient()
    api.force_login(owner)
    response = api.post(
        "/api/v1/orgs/acme/webhooks/",
        {"url": receiver.url, "events": ["request.offer_held"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["events"] == ["request.offer_held"]
    assert "request.offer_held" in dict(WebhookEndpointForm().fields["events"].choices)
    schema = api.get("/api/v1/schema/?format=json").json()
    assert "request.offer_held" in json.dumps(schema["components"]["schemas"])
