"""A counter-offer is measured against the second-approval thresholds on its own terms: one
above them (in GPUs or in value at the quote) is not booked when the tenant accepts it; the
request goes to the capacity planners with the counter-offer's capacity still held, the
planner's approval books exactly that hold and a rejection gives it back. Below the
thresholds the account manager's counter-offer is the decision and acceptance books it."""

from datetime import timedelta

import pytest

from notifications.models import Notification
from portal.errors import NotAllowed
from quotas.checks import capacity_request_run_checks
from quotas.models import CapacityHold, Reservation
from quotas.selectors.availability import pool_free_min
from quotas.services import (
    capacity_request_accept_offer,
    capacity_request_approve,
    capacity_request_counter_offer,
    capacity_request_reject,
)
from quotas.workflow import RequestState as S

pytestmark = pytest.mark.django_db


def pending(new_request, **kwargs):
    capacity_request = new_request(**kwargs)
    capacity_request_run_checks(request_id=capacity_request.pk)
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.PENDING_APPROVAL
    return capacity_request


def counter_offered_and_accepted(capacity_request, *, account_manager, member, **terms):
    capacity_request_counter_offer(
        capacity_request=capacity_request, actor=account_manager, **terms
    )
    capacity_request.refresh_from_db()
    hold_id = capacity_request.offer_hold_id
    capacity_request_accept_offer(capacity_request=capacity_request, actor=member)
    capacity_request.refresh_from_db()
    return hold_id


@pytest.fixture
def threshold_32_gpus(settings):
    settings.QUOTAS_SECOND_APPROVAL_GPUS = 32


def test_accepting_a_counter_offer_above_the_gpu_threshold_waits_for_a_capacity_planner(
    threshold_32_gpus, catalog, new_request, member, account_manager, capacity_planner, east_pool
):
    capacity_request = pending(new_request, gpu_count=16)
    hold_id = counter_offered_and_accepted(
        capacity_request, account_manager=account_manager, member=member, gpu_count=48
    )

    assert capacity_request.state == S.PENDING_SECOND_APPROVAL
    assert not Reservation.all_objects.filter(request=capacity_request).exists()
    assert capacity_request.offer_hold_id == hold_id
    assert capacity_request.decision_due_at is not None
    hold = CapacityHold.all_objects.get(pk=hold_id)
    assert hold.released_at is None and hold.expires_at is None  # held until the planner decides
    assert (
        pool_free_min(
            pool=east_pool, starts_at=capacity_request.starts_at, ends_at=capacity_request.ends_at
        )
        == 64 - 48
    )
    assert Notification.objects.filter(
        recipient=capacity_planner, event="request.approval_needed"
    ).exists()


def test_the_planner_approval_books_exactly_the_counter_offer_and_its_hold(
    threshold_32_gpus, catalog, new_request, member, account_manager, capacity_planner, east_pool
):
    capacity_request = pending(new_request, gpu_count=16)
    later = capacity_request.starts_at + timedelta(days=1)
    hold_id = counter_offered_and_accepted(
        capacity_request,
        account_manager=account_manager,
        member=member,
        gpu_count=48,
        starts_at=later,
        ends_at=later + timedelta(days=5),
    )
    holds_before = CapacityHold.all_objects.count()

    capacity_request_approve(capacity_request=capacity_request, actor=capacity_planner)

    capacity_request.refresh_from_db()
    assert capacity_request.state == S.APPROVED
    reservation = capacity_request.reservation
    assert reservation.hold_id == hold_id
    assert (reservation.pool_id, reservation.gpu_count) == (east_pool.pk, 48)
    assert (reservation.starts_at, reservation.ends_at) == (later, later + timedelta(days=5))
    assert CapacityHold.all_objects.count() == holds_before  # no second hold
    assert capacity_request.decided_by == capacity_planner


def test_the_account_manager_who_counter_offered_is_not_the_second_approver(
    threshold_32_gpus, catalog, new_request, member, account_manager, capacity_planner
):
    capacity_request = pending(new_request, gpu_count=16)
    counter_offered_and_accepted(
        capacity_request, account_manager=account_manager, member=member, gpu_count=48
    )
    assert capacity_request.first_approved_by == account_manager
    with pytest.raises(NotAllowed):
        capacity_request_approve(capacity_request=capacity_request, actor=account_manager)


def test_the_planner_rejection_releases_the_counter_offer_hold(
    threshold_32_gpus, catalog, new_request, member, account_manager, capacity_planner, east_pool
):
    capacity_request = pending(new_request, gpu_count=16)
    hold_id = counter_offered_and_accepted(
        capacity_request, account_manager=account_manager, member=member, gpu_count=48
    )

    capacity_request_reject(
        capacity_request=capacity_request, actor=capacity_planner, reason="Hall reserved."
    )

    capacity_request.refresh_from_db()
    assert capacity_request.state == S.REJECTED
    assert CapacityHold.all_objects.get(pk=hold_id).released_at is not None
    assert (
        pool_free_min(
            pool=east_pool, starts_at=capacity_request.starts_at, ends_at=capacity_request.ends_at
        )
        == 64
    )


def test_a_counter_offer_above_the_value_threshold_waits_for_a_capacity_planner(
    settings, catalog, new_request, member, account_manager, capacity_planner
):
    # 16 GPUs for 7 days at the contract's 2.00 are 5,376.00; the offer's 14 days are 10,752.00.
    settings.QUOTAS_SECOND_APPROVAL_VALUE = "8000"
    capacity_request = pending(new_request, gpu_count=16)
    counter_offered_and_accepted(
        capacity_request,
        account_manager=account_manager,
        member=member,
        ends_at=capacity_request.starts_at + timedelta(days=14),
    )
    assert capacity_request.state == S.PENDING_SECOND_APPROVAL


def test_a_counter_offer_below_the_thresholds_is_booked_on_acceptance(
    threshold_32_gpus, catalog, new_request, member, account_manager
):
    capacity_request = pending(new_request, gpu_count=24)
    hold_id = counter_offered_and_accepted(
        capacity_request, account_manager=account_manager, member=member, gpu_count=16
    )
    assert capacity_request.state == S.APPROVED
    assert capacity_request.reservation.hold_id == hold_id
    assert capacity_request.reservation.gpu_count == 16


def test_the_tenant_hears_the_counter_offer_is_held_while_the_planner_decides(
    threshold_32_gpus, org, owner, catalog, new_request, member, account_manager
):
    capacity_request = pending(new_request, gpu_count=16)
    counter_offered_and_accepted(
        capacity_request, account_manager=account_manager, member=member, gpu_count=48
    )
    notice = Notification.objects.get(recipient=owner, event="request.offer_held")
    assert "48 GPUs" in notice.body and "capacity planners" in notice.body
    # The member accepted it themselves: no notice to the one who acted.
    assert not Notification.objects.filter(recipient=member, event="request.offer_held").exists()
