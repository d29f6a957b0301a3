from datetime import date, timedelta
from decimal import Decimal

import pytest

from contracts.models import SpendAlertState
from contracts.services import contract_spend_alerts_evaluate
from contracts.signals import spend_alert_fired
from notifications.models import Notification
from tests.factories import ContractFactory

from .conftest import at, record_usage

NOW = at(2026, 7, 1)


@pytest.fixture
def small_contract(org, h100, east):
    # 100.00 committed; usage at the list price of 2.5 (the contract prices nothing).
    return ContractFactory(
        organization=org,
        number="SMALL-1",
        term_start=date(2026, 1, 1),
        term_end=date(2027, 1, 1),
        committed_spend=Decimal("100.00"),
    )


def notifications(kind_event):
    return list(Notification.objects.filter(event=kind_event).order_by("id"))


@pytest.mark.django_db
def test_spend_alerts_fire_once_per_crossing_and_rearm(
    org, owner, billing, member, small_contract, h100, east, django_capture_on_commit_callbacks
):
    record_usage(org, h100, east, at(2026, 3, 1), "20")  # 50.00: 50 %
    assert contract_spend_alerts_evaluate(contract=small_contract, now=NOW)[:1] == ["consumed_50"]
    assert contract_spend_alerts_evaluate(contract=small_contract, now=NOW) == []  # once
    fired = notifications("contract.spend_threshold")
    assert {n.recipient for n in fired} == {owner, billing}  # not the plain member
    record_usage(org, h100, east, at(2026, 3, 2), "12")  # 80.00: 80 %
    assert "consumed_80" in contract_spend_alerts_evaluate(contract=small_contract, now=NOW)
    assert len(notifications("contract.spend_threshold")) == 4

    # The commitment grows (an amendment): the figure falls back below 80 %, which re-arms it.
    small_contract.committed_spend = Decimal("200.00")
    small_contract.save()
    assert contract_spend_alerts_evaluate(contract=small_contract, now=NOW) == []
    state = SpendAlertState.all_objects.get(contract=small_contract, kind="consumed_80")
    assert not state.fired and state.rearmed_at == NOW
    assert (
        SpendAlertState.all_objects.get(contract=small_contract, kind="consumed_50").fired is False
    )

    # Crossing again fires again, with a new notification.
    record_usage(org, h100, east, at(2026, 3, 3), "40")  # 180.00 of 200: 90 %
    fired_now = contract_spend_alerts_evaluate(contract=small_contract, now=NOW)
    assert {"consumed_50", "consumed_80"} <= set(fired_now)
    assert (
        SpendAlertState.all_objects.get(contract=small_contract, kind="consumed_80").fire_count == 2
    )
    assert len(notifications("contract.spend_threshold")) == 8


@pytest.mark.django_db
def test_forecast_underuse_alert_and_webhook_hook(
    org, owner, small_contract, h100, east, django_capture_on_commit_callbacks
):
    small_contract.committed_spend = Decimal("100000.00")
    small_contract.save()
    record_usage(org, h100, east, at(2026, 6, 20), "4")  # 10.00 in the last 30 days
    received = []

    def listener(sender, organization, event, payload, **kwargs):
        received.append((organization.pk, event, payload["alert"]))

    spend_alert_fired.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            fired = contract_spend_alerts_evaluate(contract=small_contract, now=NOW)
    finally:
        spend_alert_fired.disconnect(listener)
    assert fired == ["forecast_underuse"]
    assert received == [(org.pk, "contract.underuse_forecast", "forecast_underuse")]
    body = Notification.objects.get(recipient=owner, event="contract.underuse_forecast").body
    assert "left unused" in body


@pytest.mark.django_db
def test_a_new_contract_period_has_its_own_alerts(org, owner, small_contract, h100, east):
    record_usage(org, h100, east, at(2026, 3, 1), "20")
    contract_spend_alerts_evaluate(contract=small_contract, now=NOW)
    small_contract.status = "expired"
    small_contract.save()
    renewal = ContractFactory(
        organization=org,
        number="SMALL-2",
        term_start=date(2027, 1, 1),
        term_end=date(2028, 1, 1),
        committed_spend=Decimal("100.00"),
    )
    record_usage(org, h100, east, at(2027, 2, 1), "20")
    later = at(2027, 2, 2)
    assert contract_spend_alerts_evaluate(contract=small_contract, now=later) == []
    assert contract_spend_alerts_evaluate(contract=renewal, now=later)[:1] == ["consumed_50"]
    assert SpendAlertState.all_objects.filter(contract=renewal, fired=True).count() >= 1


@pytest.mark.django_db
def test_draft_contract_consumes_nothing_and_alerts_nothing(org, small_contract, h100, east):
    small_contract.status = "draft"
    small_contract.save()
    record_usage(org, h100, east, at(2026, 3, 1), "100")
    assert (
        contract_spend_alerts_evaluate(contract=small_contract, now=NOW + timedelta(days=1)) == []
    )


@pytest.mark.django_db
def test_ingest_hook_sends_one_message_for_all_organizations(
    org, small_contract, django_capture_on_commit_callbacks
):
    """The metering request does not wait for a broker round trip per organization: one task
    fans the evaluations out from a worker."""
    from unittest import mock

    from contracts.services import alerts_after_usage_ingest
    from contracts.tasks import usage_ingest_alerts_task

    others = [org.pk + 1000 + n for n in range(300)]
    with (
        mock.patch.object(usage_ingest_alerts_task, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        alerts_after_usage_ingest(organization_ids=[*others, org.pk, org.pk])
        alerts_after_usage_ingest(organization_ids=[])
    assert len(callbacks) == 1
    delay.assert_called_once_with(sorted({*others, org.pk}))


@pytest.mark.django_db
def test_alerts_fan_out_sends_each_active_contract_and_organization_its_own_task(
    org, small_contract
):
    from unittest import mock

    from contracts.services import alerts_fan_out
    from contracts.tasks import contract_spend_alerts_task, quota_alerts_task

    ContractFactory(organization=org, status="draft")
    with (
        mock.patch.object(contract_spend_alerts_task, "delay") as spend,
        mock.patch.object(quota_alerts_task, "delay") as quota,
    ):
        assert alerts_fan_out(organization_ids=[org.pk]) == 2
    spend.assert_called_once_with(small_contract.pk)
    quota.assert_called_once_with(org.pk)


@pytest.mark.django_db
def test_ingest_hook_evaluates_after_commit(
    org, owner, small_contract, h100, east, django_capture_on_commit_callbacks, settings
):
    from contracts.services import alerts_after_usage_ingest
    from portal.celery import app

    record_usage(org, h100, east, at(2026, 3, 1), "40")  # 100.00: 100 %
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            alerts_after_usage_ingest(organization_ids=[org.pk])
        assert not SpendAlertState.all_objects.exists()  # nothing before the commit
        for callback in callbacks:
            callback()
    finally:
        app.conf.task_always_eager = previous
    assert SpendAlertState.all_objects.filter(contract=small_contract, fired=True).count() >= 3
