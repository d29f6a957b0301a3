"""A waitlist offer on a request that still needs a provider decision (the checks flagged it
with a contract or policy warning, or it is above the second-approval thresholds) is not booked
when the tenant accepts it, by hand or automatically: the request goes to its approvers with
the offer's capacity still held, the approval books exactly that hold, and a rejection (or a
withdrawal, or expiry) gives it to the next waitlisted request."""

from datetime import timedelta

import pytest

from accounts.models import Organization, Role
from notifications.models import Notification
from portal.errors import DomainError
from quotas.capacity import InsufficientCapacity
from quotas.checks import capacity_request_run_checks
from quotas.models import CapacityHold, RequestEvent, Reservation
from quotas.selectors.availability import pool_free_min
from quotas.services import (
    approval_policy_set,
    capacity_request_accept_offer,
    capacity_request_approve,
    capacity_request_expire,
    capacity_request_reject,
    capacity_request_waitlist,
    capacity_request_withdraw,
    reservation_cancel,
)
from quotas.services.decisions import request_needs_decision
from quotas.services.waitlist import waitlist_offer_for_pool
from quotas.workflow import RequestState as S
from tests.conftest import make_member
from tests.factories import OrganizationFactory

from .conftest import LONG_AGO, soon

pytestmark = pytest.mark.django_db


def checked(capacity_request):
    capacity_request_run_checks(request_id=capacity_request.pk)
    capacity_request.refresh_from_db()
    return capacity_request


def states(capacity_request):
    return list(
        RequestEvent.all_objects.filter(request=capacity_request, reservation=None)
        .order_by("at", "id")
        .values_list("to_state", flat=True)
    )


def assert_never_over_capacity(pool):
    assert pool_free_min(pool=pool, starts_at=LONG_AGO, ends_at=soon(400)) >= 0


@pytest.fixture
def policy_warns_above_48(settings):
    """The soft policy limit: 64 GPUs are flagged for the account manager, 32 are not."""
    settings.QUOTAS_POLICY_MAX_GPUS = 48


@pytest.fixture
def full_pool(catalog, new_request, account_manager, east_pool):
    """The whole 64-GPU east pool booked by one approved request, to free later."""
    blocker = checked(new_request(gpu_count=64))
    capacity_request_approve(capacity_request=blocker, actor=account_manager)
    blocker.refresh_from_db()
    return blocker.reservation


def free_up(reservation, actor, pool):
    reservation_cancel(reservation=reservation, actor=actor)
    return waitlist_offer_for_pool(pool_id=pool.pk)


def window(capacity_request):
    return {"starts_at": capacity_request.starts_at, "ends_at": capacity_request.ends_at}


def test_flagged_waitlisted_request_goes_to_its_approver_on_acceptance_with_the_hold_kept(
    policy_warns_above_48, full_pool, new_request, member, account_manager, east_pool
):
    flagged = checked(new_request(gpu_count=64, waitlist_if_unavailable=True))
    assert flagged.state == S.WAITLISTED and flagged.flagged
    assert request_needs_decision(flagged)
    assert free_up(full_pool, member, east_pool) == [flagged.pk]
    flagged.refresh_from_db()
    assert flagged.state == S.OFFERED
    hold_id = flagged.offer_hold_id

    capacity_request_accept_offer(capacity_request=flagged, actor=member)

    flagged.refresh_from_db()
    assert flagged.state == S.PENDING_APPROVAL
    assert not Reservation.all_objects.filter(request=flagged).exists()
    assert flagged.decision_due_at is not None and flagged.offer_hold_id == hold_id
    hold = CapacityHold.all_objects.get(pk=hold_id)
    assert hold.released_at is None and hold.expires_at is None  # held until the decision
    assert pool_free_min(pool=east_pool, **window(flagged)) == 0
    assert Notification.objects.filter(
        recipient=account_manager, event="request.approval_needed"
    ).exists()
    # A later waitlist scan neither offers it again nor releases it.
    assert waitlist_offer_for_pool(pool_id=east_pool.pk) == []
    assert_never_over_capacity(east_pool)


def test_the_approval_books_exactly_the_held_offer(
    policy_warns_above_48, full_pool, new_request, member, account_manager, east_pool
):
    flagged = checked(new_request(gpu_count=64, waitlist_if_unavailable=True))
    free_up(full_pool, member, east_pool)
    flagged.refresh_from_db()
    capacity_request_accept_offer(capacity_request=flagged, actor=member)
    flagged.refresh_from_db()
    hold_id = flagged.offer_hold_id
    holds_before = CapacityHold.all_objects.count()

    # The pool is full with the request's own hold: a fresh capacity check would refuse.
    capacity_request_approve(capacity_request=flagged, actor=account_manager)

    flagged.refresh_from_db()
    assert flagged.state == S.APPROVED
    reservation = flagged.reservation
    assert reservation.hold_id == hold_id and reservation.gpu_count == 64
    assert CapacityHold.all_objects.count() == holds_before
    assert reservation.hold.kind == CapacityHold.Kind.RESERVATION
    assert pool_free_min(pool=east_pool, **window(flagged)) == 0
    assert states(flagged)[-3:] == [S.OFFERED, S.PENDING_APPROVAL, S.APPROVED]
    assert_never_over_capacity(east_pool)


def test_the_approval_refuses_another_pool_than_the_held_one(
    policy_warns_above_48,
    full_pool,
    new_request,
    member,
    account_manager,
    east_pool,
    west,
    west_pool,
):
    flagged = checked(
        new_request(gpu_count=64, waitlist_if_unavailable=True, alternative_regions=[west])
    )
    free_up(full_pool, member, east_pool)
    flagged.refresh_from_db()
    capacity_request_accept_offer(capacity_request=flagged, actor=member)
    with pytest.raises(DomainError) as excinfo:
        capacity_request_approve(capacity_request=flagged, actor=account_manager, pool=west_pool)
    assert excinfo.value.field == "pool"
    flagged.refresh_from_db()
    assert flagged.state == S.PENDING_APPROVAL


def test_rejection_releases_the_hold_and_the_next_waitlisted_request_gets_the_offer(
    policy_warns_above_48,
    eager_celery,
    full_pool,
    new_request,
    member,
    account_manager,
    east_pool,
    django_capture_on_commit_callbacks,
):
    flagged = checked(new_request(gpu_count=64, waitlist_if_unavailable=True))
    plain = checked(new_request(gpu_count=32, waitlist_if_unavailable=True))
    assert not request_needs_decision(plain)
    assert free_up(full_pool, member, east_pool) == [flagged.pk]  # first come, and only it fits
    flagged.refresh_from_db()
    capacity_request_accept_offer(capacity_request=flagged, actor=member)
    flagged.refresh_from_db()
    hold_id = flagged.offer_hold_id

    with django_capture_on_commit_callbacks(execute=True):
        capacity_request_reject(
            capacity_request=flagged, actor=account_manager, reason="Outside the contract"
        )

    flagged.refresh_from_db()
    plain.refresh_from_db()
    assert flagged.state == S.REJECTED
    assert CapacityHold.all_objects.get(pk=hold_id).released_at is not None
    assert plain.state == S.OFFERED  # capacity_freed -> waitlist_offer_task, run at once
    assert pool_free_min(pool=east_pool, **window(plain)) == 32
    assert_never_over_capacity(east_pool)


def test_auto_accept_sends_a_flagged_offer_to_the_approver_instead_of_booking_it(
    policy_warns_above_48, org, owner, full_pool, new_request, member, account_manager, east_pool
):
    approval_policy_set(organization=org, actor=owner, auto_accept_waitlist_offers=True)
    flagged = checked(new_request(gpu_count=64, waitlist_if_unavailable=True))

    free_up(full_pool, member, east_pool)

    flagged.refresh_from_db()
    assert flagged.state == S.PENDING_APPROVAL
    assert states(flagged)[-2:] == [S.OFFERED, S.PENDING_APPROVAL]
    assert not Reservation.all_objects.filter(request=flagged).exists()
    assert CapacityHold.all_objects.get(pk=flagged.offer_hold_id).released_at is None
    assert Notification.objects.filter(
        recipient=account_manager, event="request.approval_needed"
    ).exists()
    capacity_request_approve(capacity_request=flagged, actor=account_manager)
    flagged.refresh_from_db()
    assert flagged.state == S.APPROVED
    assert flagged.reservation.hold_id == flagged.offer_hold_id
    assert_never_over_capacity(east_pool)


def test_a_request_waitlisted_only_for_capacity_is_still_booked_on_acceptance(
    policy_warns_above_48, full_pool, new_request, member, east_pool
):
    plain = checked(new_request(gpu_count=32, waitlist_if_unavailable=True))
    assert plain.flagged  # "no capacity" flags it, but that is what the offer answers
    assert not request_needs_decision(plain)
    free_up(full_pool, member, east_pool)
    plain.refresh_from_db()
    hold_id = plain.offer_hold_id
    capacity_request_accept_offer(capacity_request=plain, actor=member)
    plain.refresh_from_db()
    assert plain.state == S.APPROVED
    assert plain.reservation.hold_id == hold_id
    assert_never_over_capacity(east_pool)


def test_above_the_threshold_at_acceptance_both_approvers_decide_on_the_held_offer(
    settings, full_pool, new_request, member, account_manager, capacity_planner, east_pool
):
    waiting = checked(new_request(gpu_count=64, waitlist_if_unavailable=True))
    free_up(full_pool, member, east_pool)
    waiting.refresh_from_db()
    hold_id = waiting.offer_hold_id
    settings.QUOTAS_SECOND_APPROVAL_GPUS = 32  # the threshold now applies to it
    capacity_request_accept_offer(capacity_request=waiting, actor=member)
    waiting.refresh_from_db()
    assert waiting.state == S.PENDING_APPROVAL
    capacity_request_approve(capacity_request=waiting, actor=account_manager)
    waiting.refresh_from_db()
    assert waiting.state == S.PENDING_SECOND_APPROVAL
    assert CapacityHold.all_objects.get(pk=hold_id).released_at is None
    assert Notification.objects.filter(
        recipient=capacity_planner, event="request.approval_needed"
    ).exists()
    capacity_request_approve(capacity_request=waiting, actor=capacity_planner)
    waiting.refresh_from_db()
    assert waiting.state == S.APPROVED and waiting.reservation.hold_id == hold_id
    assert_never_over_capacity(east_pool)


def test_withdrawing_or_expiring_a_held_request_releases_its_hold(
    policy_warns_above_48, full_pool, new_request, member, east_pool
):
    first = checked(new_request(gpu_count=32, starts_at=soon(3), waitlist_if_unavailable=True))
    second = checked(new_request(gpu_count=32, starts_at=soon(3), waitlist_if_unavailable=True))
    for capacity_request in (first, second):
        capacity_request.flagged = True
        capacity_request.save(update_fields=["flagged"])
        capacity_request.checks.filter(name="policy").update(outcome="warn")
    free_up(full_pool, member, east_pool)
    for capacity_request in (first, second):
        capacity_request.refresh_from_db()
        capacity_request_accept_offer(capacity_request=capacity_request, actor=member)
        capacity_request.refresh_from_db()
        assert capacity_request.state == S.PENDING_APPROVAL

    capacity_request_withdraw(capacity_request=first, actor=member)
    assert capacity_request_expire(request_id=second.pk, now=second.starts_at)

    for capacity_request in (first, second):
        capacity_request.refresh_from_db()
        hold = CapacityHold.all_objects.get(pk=capacity_request.offer_hold_id)
        assert hold.released_at is not None
    assert first.state == S.WITHDRAWN and second.state == S.EXPIRED
    assert pool_free_min(pool=east_pool, **window(first)) == 64


def test_a_held_request_cannot_go_back_to_the_waitlist(
    policy_warns_above_48, full_pool, new_request, member, east_pool
):
    flagged = checked(new_request(gpu_count=64, waitlist_if_unavailable=True))
    free_up(full_pool, member, east_pool)
    flagged.refresh_from_db()
    capacity_request_accept_offer(capacity_request=flagged, actor=member)
    with pytest.raises(DomainError):
        capacity_request_waitlist(capacity_request=flagged, actor=member)
    flagged.refresh_from_db()
    assert flagged.state == S.PENDING_APPROVAL


def test_the_held_capacity_goes_to_no_one_else_while_the_approvers_decide(
    policy_warns_above_48, full_pool, new_request, member, account_manager, east_pool
):
    """Why the hold is kept: the GPUs are still there when the approval comes."""
    flagged = checked(new_request(gpu_count=64, waitlist_if_unavailable=True))
    free_up(full_pool, member, east_pool)
    flagged.refresh_from_db()
    capacity_request_accept_offer(capacity_request=flagged, actor=member)
    flagged.refresh_from_db()
    other = checked(new_request(gpu_count=8, starts_at=flagged.starts_at + timedelta(hours=1)))
    with pytest.raises(InsufficientCapacity):
        capacity_request_approve(capacity_request=other, actor=account_manager)
    capacity_request_approve(capacity_request=flagged, actor=account_manager)
    flagged.refresh_from_db()
    assert flagged.state == S.APPROVED


def test_auto_accept_tells_the_tenant_its_capacity_is_held_while_the_approvers_decide(
    policy_warns_above_48, org, owner, admin, full_pool, new_request, member, east_pool
):
    approval_policy_set(organization=org, actor=owner, auto_accept_waitlist_offers=True)
    flagged = checked(new_request(gpu_count=64, waitlist_if_unavailable=True))

    free_up(full_pool, member, east_pool)

    flagged.refresh_from_db()
    assert flagged.state == S.PENDING_APPROVAL
    held = Notification.objects.filter(event="request.offer_held", url__contains=str(flagged.pk))
    assert set(held.values_list("recipient", flat=True)) == {member.pk, owner.pk, admin.pk}
    notice = held.get(recipient=member)
    assert "accepted automatically" in notice.body and "64 GPUs" in notice.body
    assert "account manager" in notice.body
    # Repeating the scan neither offers again nor notifies twice.
    waitlist_offer_for_pool(pool_id=east_pool.pk)
    assert held.count() == 3


def test_a_suspended_organization_is_passed_over_and_stays_waitlisted(
    full_pool, new_request, member, east_pool, request_in_state
):
    suspended_org = OrganizationFactory(name="Globex", slug="globex")
    first_in_line = request_in_state(
        S.WAITLISTED,
        organization=suspended_org,
        requested_by=make_member(suspended_org, Role.OWNER, email="owner@globex.example"),
        submitted_at=LONG_AGO,
    )
    suspended_org.status = Organization.Status.SUSPENDED
    suspended_org.save(update_fields=["status"])
    next_in_line = checked(new_request(gpu_count=32, waitlist_if_unavailable=True))
    assert next_in_line.state == S.WAITLISTED

    assert free_up(full_pool, member, east_pool) == [next_in_line.pk]

    first_in_line.refresh_from_db()
    assert first_in_line.state == S.WAITLISTED and first_in_line.offer_hold_id is None
    # Once the suspension is lifted it is offered what is still free.
    suspended_org.status = Organization.Status.ACTIVE
    suspended_org.save(update_fields=["status"])
    assert waitlist_offer_for_pool(pool_id=east_pool.pk) == [first_in_line.pk]
