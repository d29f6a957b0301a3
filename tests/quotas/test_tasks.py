"""The Celery entry points and the beat scans: idempotent, catching up, safe under double
delivery (two workers running the same message at the same instant)."""

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from notifications.models import Notification
from portal.celery import app as celery_app
from quotas import tasks
from quotas.capacity import hold_place
from quotas.models import CapacityHold, CapacityRequest, RequestEvent, Reservation
from quotas.services import capacity_request_approve
from quotas.services.scans import (
    requests_due_scan,
    requests_expiry_scan,
    requests_stuck_ids,
    reservations_due_scan,
)
from quotas.workflow import RequestState as S
from quotas.workflow import ReservationState as V

from .conftest import soon


def twice_at_once(task, *args):
    """Deliver the same task message to two workers at the same instant."""
    barrier = threading.Barrier(2)
    results, errors = [], []

    def worker():
        try:
            barrier.wait(timeout=10)
            outcome = task.apply(args=args)
            if outcome.failed():
                raise outcome.result
            results.append(outcome.result)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def approved_reservation(request_in_state, account_manager, **kwargs):
    capacity_request = request_in_state(S.PENDING_APPROVAL, **kwargs)
    capacity_request_approve(capacity_request=capacity_request, actor=account_manager)
    return Reservation.all_objects.get(request=capacity_request)


# --- Double delivery ---------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_checks_task_delivered_twice_at_once_has_one_effect(
    eager_celery, catalog, request_in_state, account_manager
):
    capacity_request = request_in_state(S.SUBMITTED)
    results = twice_at_once(
        tasks.run_checks_task, capacity_request.pk, capacity_request.organization_id
    )
    assert sorted(results) == [False, True]
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.PENDING_APPROVAL
    moves = list(
        RequestEvent.all_objects.filter(request=capacity_request).values_list("to_state", flat=True)
    )
    assert moves == [S.CHECKING, S.PENDING_APPROVAL]
    assert capacity_request.checks.count() == 4  # one run of the four checks
    assert Notification.objects.filter(recipient=account_manager).count() == 1
    assert [m.to for m in mail.outbox] == [[account_manager.email]]


@pytest.mark.django_db(transaction=True)
def test_activation_task_delivered_twice_at_once_activates_once(
    eager_celery, catalog, request_in_state, account_manager, owner
):
    reservation = approved_reservation(request_in_state, account_manager)
    Reservation.all_objects.filter(pk=reservation.pk).update(
        starts_at=timezone.now() - timedelta(minutes=1)
    )
    results = twice_at_once(tasks.reservations_due_task)
    assert sorted(r["activated"] for r in results) == [0, 1]
    reservation.refresh_from_db()
    assert reservation.state == V.ACTIVE
    assert RequestEvent.all_objects.filter(reservation=reservation, to_state=V.ACTIVE).count() == 1
    assert Notification.objects.filter(recipient=owner, event="reservation.active").count() == 1


@pytest.mark.django_db(transaction=True)
def test_expiry_task_delivered_twice_at_once_expires_once_and_mails_once(
    eager_celery, catalog, request_in_state, member
):
    capacity_request = request_in_state(S.PENDING_APPROVAL)
    CapacityRequest.all_objects.filter(pk=capacity_request.pk).update(
        starts_at=timezone.now() - timedelta(seconds=1)
    )
    results = twice_at_once(tasks.requests_expiry_task)
    assert sorted(results) == [0, 1]
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.EXPIRED
    assert Notification.objects.filter(recipient=member, event="request.expired").count() == 1
    assert sum(member.email in m.to for m in mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_waitlist_offer_task_delivered_twice_at_once_holds_once(
    eager_celery, catalog, request_in_state, east_pool, member
):
    capacity_request = request_in_state(S.WAITLISTED, gpu_count=48)
    results = twice_at_once(tasks.waitlist_offer_task, east_pool.pk)
    assert sorted(results) == [[], [capacity_request.pk]]
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.OFFERED
    assert CapacityHold.all_objects.filter(kind=CapacityHold.Kind.OFFER).count() == 1
    assert Notification.objects.filter(recipient=member, event="request.offered").count() == 1


@pytest.mark.django_db(transaction=True)
def test_due_task_delivered_twice_at_once_reminds_once(
    eager_celery, catalog, request_in_state, account_manager
):
    request_in_state(S.PENDING_APPROVAL, decision_due_at=timezone.now() + timedelta(hours=1))
    results = twice_at_once(tasks.requests_due_task)
    assert sorted(r["reminded"] for r in results) == [0, 1]
    reminders = Notification.objects.filter(recipient=account_manager, event="request.reminder")
    assert reminders.count() == 1
    assert sum(account_manager.email in m.to for m in mail.outbox) == 1


# --- Scans ----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_activation_happens_to_the_minute(catalog, request_in_state, account_manager):
    reservation = approved_reservation(request_in_state, account_manager)
    start = reservation.starts_at
    assert reservations_due_scan(now=start - timedelta(seconds=1)) == {
        "activated": 0,
        "completed": 0,
    }
    assert reservations_due_scan(now=start)["activated"] == 1
    reservation.refresh_from_db()
    assert reservation.state == V.ACTIVE and reservation.activated_at == start
    assert reservations_due_scan(now=reservation.ends_at - timedelta(seconds=1))["completed"] == 0
    assert reservations_due_scan(now=reservation.ends_at)["completed"] == 1
    reservation.refresh_from_db()
    assert reservation.state == V.COMPLETED and reservation.ended_at == reservation.ends_at
    assert reservations_due_scan(now=reservation.ends_at) == {"activated": 0, "completed": 0}


@pytest.mark.django_db
def test_scan_after_downtime_catches_up_start_and_end(catalog, request_in_state, account_manager):
    reservation = approved_reservation(request_in_state, account_manager)
    much_later = reservation.ends_at + timedelta(days=2)
    assert reservations_due_scan(now=much_later)["activated"] == 1
    reservation.refresh_from_db()
    assert reservation.state == V.COMPLETED
    steps = list(
        RequestEvent.all_objects.filter(reservation=reservation)
        .order_by("at", "id")
        .values_list("to_state", "at")
    )
    assert steps == [
        (V.SCHEDULED, reservation.created_at),
        (V.ACTIVE, reservation.starts_at),
        (V.COMPLETED, reservation.ends_at),
    ]


@pytest.mark.django_db
def test_undecided_request_expires_at_its_start(catalog, request_in_state):
    waiting = request_in_state(S.WAITLISTED)
    deciding = request_in_state(S.PENDING_SECOND_APPROVAL, starts_at=soon(5))
    draft = request_in_state(S.DRAFT)
    assert requests_expiry_scan(now=waiting.starts_at - timedelta(seconds=1)) == 0
    assert requests_expiry_scan(now=waiting.starts_at) == 1  # not the draft, not the later one
    for capacity_request, state in ((waiting, S.EXPIRED), (deciding, S.PENDING_SECOND_APPROVAL)):
        capacity_request.refresh_from_db()
        assert capacity_request.state == state
    draft.refresh_from_db()
    assert draft.state == S.DRAFT
    assert requests_expiry_scan(now=deciding.starts_at) == 1


@pytest.mark.django_db
def test_lapsed_offer_expires_and_its_hold_goes(catalog, request_in_state, east_pool):
    capacity_request = request_in_state(S.COUNTER_OFFERED)
    lapse = capacity_request.offer_expires_at
    assert requests_expiry_scan(now=lapse - timedelta(seconds=1)) == 0
    assert requests_expiry_scan(now=lapse) == 1
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.EXPIRED
    assert capacity_request.offer_hold.released_at is not None


@pytest.mark.django_db
def test_reminder_then_escalation_once_each(
    catalog, request_in_state, account_manager, capacity_planner, settings
):
    settings.QUOTAS_REMINDER_LEAD_HOURS = 12
    due = timezone.now() + timedelta(hours=24)
    request_in_state(S.PENDING_APPROVAL, decision_due_at=due)
    assert requests_due_scan(now=due - timedelta(hours=13)) == {"reminded": 0, "escalated": 0}
    assert requests_due_scan(now=due - timedelta(hours=11)) == {"reminded": 1, "escalated": 0}
    assert requests_due_scan(now=due - timedelta(hours=1)) == {"reminded": 0, "escalated": 0}
    assert requests_due_scan(now=due) == {"reminded": 0, "escalated": 1}
    assert requests_due_scan(now=due + timedelta(hours=5)) == {"reminded": 0, "escalated": 0}
    assert (
        Notification.objects.filter(recipient=account_manager, event="request.reminder").count()
        == 1
    )
    assert (
        Notification.objects.filter(recipient=capacity_planner, event="request.escalated").count()
        == 1
    )


@pytest.mark.django_db
def test_sweeper_redispatches_requests_stuck_in_checks(
    catalog, request_in_state, monkeypatch, settings
):
    settings.QUOTAS_STUCK_AFTER_MINUTES = 10
    fresh = request_in_state(S.SUBMITTED)
    stuck = request_in_state(S.CHECKING, state_changed_at=timezone.now() - timedelta(minutes=11))
    request_in_state(S.PENDING_APPROVAL, state_changed_at=timezone.now() - timedelta(hours=1))
    assert requests_stuck_ids() == [(stuck.pk, stuck.organization_id)]
    sent = []
    monkeypatch.setattr(tasks.run_checks_task, "delay", lambda *args: sent.append(args))
    assert tasks.requests_sweep_task.apply().get() == 1
    assert sent == [(stuck.pk, stuck.organization_id)]
    assert fresh.pk not in [args[0] for args in sent]
    # The re-dispatched task picks up a request left in "checking".
    tasks.run_checks_task.apply(args=[stuck.pk, stuck.organization_id])
    stuck.refresh_from_db()
    assert stuck.state == S.PENDING_APPROVAL


@pytest.mark.django_db
def test_freed_capacity_enqueues_a_waitlist_offer_after_commit(
    catalog, org, east_pool, request_in_state, django_capture_on_commit_callbacks, monkeypatch
):
    from quotas.capacity import hold_release

    hold = hold_place(
        pool=east_pool,
        organization=org,
        gpu_count=8,
        starts_at=soon(3),
        ends_at=soon(4),
        kind=CapacityHold.Kind.RESERVATION,
    )
    sent = []
    monkeypatch.setattr(tasks.waitlist_offer_task, "delay", lambda *args: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        hold_release(hold=hold)
    assert sent == [(east_pool.pk,)]


@pytest.mark.django_db
def test_beat_schedules_name_registered_tasks():
    periodic = PeriodicTask.objects.filter(task__startswith="quotas.")
    assert {p.task for p in periodic} == {
        "quotas.reservations_due_task",
        "quotas.requests_expiry_task",
        "quotas.requests_due_task",
        "quotas.waitlist_scan_task",
        "quotas.requests_sweep_task",
    }
    registered = set(celery_app.tasks.keys())
    assert {p.task for p in periodic} <= registered
    assert all(p.enabled and p.interval_id for p in periodic)


@pytest.mark.django_db
def test_messages_about_rows_that_are_gone_do_nothing():
    assert tasks.run_checks_task.apply(args=[987654, 1]).get() is False
    assert tasks.waitlist_offer_task.apply(args=[987654]).get() == []
