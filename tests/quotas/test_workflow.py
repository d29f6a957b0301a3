from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from notifications.models import Notification
from portal.errors import ConflictError, DomainError, IllegalTransition, NotAllowed
from quotas.capacity import InsufficientCapacity, capacity_change_add
from quotas.checks import capacity_request_run_checks
from quotas.models import (
    CapacityHold,
    CapacityRequest,
    OnDemandQuota,
    RequestEvent,
    Reservation,
)
from quotas.selectors.availability import pool_free_min
from quotas.services import (
    approval_policy_set,
    capacity_request_accept_offer,
    capacity_request_approve,
    capacity_request_counter_offer,
    capacity_request_create,
    capacity_request_decline_offer,
    capacity_request_reject,
    capacity_request_sign_off,
    capacity_request_waitlist,
    capacity_request_withdraw,
    request_comment_add,
    reservation_cancel,
    reservation_extend,
    reservation_release_early,
)
from quotas.services.waitlist import waitlist_offer_for_pool
from quotas.workflow import RequestState as S
from quotas.workflow import ReservationState as V

from .conftest import soon

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


# --- Validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"gpu_count": 0}, "gpu_count"),
        ({"gpu_count": 12}, "gpu_count"),  # not whole nodes of 8
        ({"starts_at": timezone.now() + timedelta(minutes=5)}, "starts_at"),
        ({"ends_at": soon(3) - timedelta(hours=1)}, "ends_at"),
        ({"ends_at": soon(3) + timedelta(days=2000)}, "ends_at"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(catalog, new_request, change, field):
    kwargs = {"starts_at": soon(3)}
    kwargs.update(change)
    with pytest.raises(DomainError) as excinfo:
        new_request(**kwargs)
    assert excinfo.value.field == field
    assert not CapacityRequest.all_objects.exists()
    assert not AuditEvent.all_objects.filter(action__startswith="capacity_request").exists()


def test_inactive_sku_and_unknown_pool_are_refused(catalog, new_request, h100, h200, east):
    with pytest.raises(DomainError) as excinfo:
        new_request(sku=h200)  # no H200 pool in us-east-1
    assert excinfo.value.field == "region"
    h100.active = False
    h100.save()
    with pytest.raises(DomainError) as excinfo:
        new_request()
    assert excinfo.value.field == "sku"


def test_viewer_cannot_create(catalog, org, new_request):
    from accounts.models import Role
    from tests.conftest import make_member

    viewer = make_member(org, Role.VIEWER)
    with pytest.raises(NotAllowed):
        new_request(actor=viewer)


# --- Submit and checks -----------------------------------------------------------------------
@pytest.fixture
def dispatched(monkeypatch):
    """The checks tasks sent to the broker, as (request id, organization id)."""
    from quotas import tasks

    sent = []
    monkeypatch.setattr(tasks.run_checks_task, "delay", lambda *args: sent.append(args))
    return sent


def test_submit_enqueues_checks_after_commit(
    catalog, new_request, dispatched, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        capacity_request = new_request()
    assert capacity_request.state == S.SUBMITTED
    assert dispatched == [], "nothing is sent before the commit"
    for callback in callbacks:
        callback()
    assert dispatched == [(capacity_request.pk, capacity_request.organization_id)]
    assert states(capacity_request) == [S.DRAFT, S.SUBMITTED]


def test_broker_outage_does_not_fail_the_submit(
    catalog, new_request, monkeypatch, django_capture_on_commit_callbacks
):
    from quotas import tasks

    calls = []

    def broken(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.run_checks_task, "delay", broken)
    with django_capture_on_commit_callbacks(execute=True):
        capacity_request = new_request()
    assert len(calls) == 1, "the checks task was dispatched after commit"
    assert CapacityRequest.all_objects.get(pk=capacity_request.pk).state == S.SUBMITTED


def test_request_that_passes_goes_to_the_account_manager_with_a_due_time(
    catalog, new_request, account_manager
):
    capacity_request = checked(new_request())
    assert capacity_request.state == S.PENDING_APPROVAL
    assert not capacity_request.flagged
    assert capacity_request.decision_due_at > timezone.now()
    assert states(capacity_request) == [S.DRAFT, S.SUBMITTED, S.CHECKING, S.PENDING_APPROVAL]
    assert Notification.objects.filter(
        recipient=account_manager, event="request.approval_needed"
    ).exists()


def test_suspended_organization_is_rejected_by_the_checks(catalog, org, new_request):
    capacity_request = new_request()
    org.status = "suspended"
    org.save()
    capacity_request = checked(capacity_request)
    assert capacity_request.state == S.REJECTED
    assert "suspended" in capacity_request.decision_reason


def test_soft_policy_failure_goes_to_review_flagged(catalog, new_request, settings):
    settings.QUOTAS_POLICY_MAX_GPUS = 8
    capacity_request = checked(new_request())
    assert capacity_request.state == S.PENDING_APPROVAL
    assert capacity_request.flagged


def test_no_capacity_waits_for_a_decision_and_the_requester_may_waitlist(
    catalog, new_request, member
):
    capacity_request = checked(new_request(gpu_count=128))
    assert capacity_request.state == S.PENDING_APPROVAL
    assert capacity_request.flagged and capacity_request.capacity_available is False
    capacity_request_waitlist(capacity_request=capacity_request, actor=member)
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.WAITLISTED


def test_no_capacity_with_auto_waitlist_joins_the_waitlist(catalog, new_request):
    capacity_request = checked(new_request(gpu_count=128, waitlist_if_unavailable=True))
    assert capacity_request.state == S.WAITLISTED


def test_checks_pick_an_alternative_region_that_fits(
    catalog, new_request, account_manager, west, west_pool
):
    first = checked(new_request(gpu_count=48, alternative_regions=[west]))
    assert first.capacity_available and first.pool_id != west_pool.pk  # the requested pool
    capacity_request_approve(capacity_request=first, actor=account_manager)
    second = checked(new_request(gpu_count=32, alternative_regions=[west]))
    assert second.pool_id == west_pool.pk
    assert second.flagged  # warned: only the alternative fits
    check = second.checks.get(name="capacity")
    assert check.outcome == "warn"
    assert {p["free_min"] for p in check.figures["pools"]} == {16, 32}


# --- Sign-off --------------------------------------------------------------------------------
def test_member_request_needs_sign_off_when_the_organization_asks(
    catalog, org, owner, admin, member, new_request, dispatched, django_capture_on_commit_callbacks
):
    approval_policy_set(organization=org, actor=owner, signoff_for_members=True)
    with django_capture_on_commit_callbacks(execute=True):
        capacity_request = new_request()
    assert capacity_request.state == S.PENDING_INTERNAL_APPROVAL
    assert dispatched == [], "no checks before the sign-off"
    assert Notification.objects.filter(recipient=admin, event="request.sign_off_needed").exists()
    with pytest.raises(NotAllowed):
        capacity_request_sign_off(capacity_request=capacity_request, actor=member, approve=True)
    with django_capture_on_commit_callbacks(execute=True):
        capacity_request_sign_off(capacity_request=capacity_request, actor=admin, approve=True)
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.SUBMITTED
    assert capacity_request.signed_off_by == admin
    assert dispatched == [(capacity_request.pk, org.pk)]


def test_sign_off_above_a_value_and_refusal_needs_a_reason(catalog, org, owner, admin, new_request):
    approval_policy_set(organization=org, actor=owner, signoff_above_value=Decimal("1000"))
    small = new_request(gpu_count=8, ends_at=soon(3, hours=10))  # 8 x 10h x 2.00 = 160
    assert small.state == S.SUBMITTED
    big = new_request(gpu_count=16)  # a week: well above 1000
    assert big.state == S.PENDING_INTERNAL_APPROVAL
    with pytest.raises(DomainError) as excinfo:
        capacity_request_sign_off(capacity_request=big, actor=admin, approve=False, reason=" ")
    assert excinfo.value.field == "reason"
    capacity_request_sign_off(capacity_request=big, actor=admin, approve=False, reason="Budget")
    big.refresh_from_db()
    assert big.state == S.REJECTED


def test_owner_request_is_its_own_sign_off(catalog, org, owner, new_request):
    approval_policy_set(organization=org, actor=owner, signoff_for_members=True)
    capacity_request = new_request(actor=owner)
    assert capacity_request.state == S.SUBMITTED
    assert capacity_request.signed_off_by == owner


def test_tenant_cannot_set_auto_approval(catalog, org, owner, account_manager):
    with pytest.raises(NotAllowed):
        approval_policy_set(organization=org, actor=owner, auto_approve_max_gpus=64)
    policy = approval_policy_set(organization=org, actor=account_manager, auto_approve_max_gpus=64)
    assert policy.auto_approve_max_gpus == 64


# --- Auto-approval ---------------------------------------------------------------------------
def test_small_request_within_policy_is_approved_at_once_with_its_hold(
    catalog, org, account_manager, new_request, east_pool
):
    approval_policy_set(
        organization=org,
        actor=account_manager,
        auto_approve_max_gpus=16,
        auto_approve_max_value=Decimal("100000"),
    )
    capacity_request = checked(new_request(gpu_count=16))
    assert capacity_request.state == S.APPROVED
    reservation = capacity_request.reservation
    assert reservation.state == V.SCHEDULED
    assert reservation.hold.kind == CapacityHold.Kind.RESERVATION
    assert reservation.rate_per_gpu_hour == Decimal("2.0000")  # the contract rate, frozen
    assert reservation.total == Decimal("16") * 7 * 24 * Decimal("2.00")
    assert capacity_request.quote_total == reservation.total
    free = pool_free_min(
        pool=east_pool, starts_at=reservation.starts_at, ends_at=reservation.ends_at
    )
    assert free == 64 - 16


def test_auto_approval_stops_above_the_policy(catalog, org, account_manager, new_request):
    approval_policy_set(
        organization=org,
        actor=account_manager,
        auto_approve_max_gpus=8,
        auto_approve_max_value=Decimal("100000"),
    )
    assert checked(new_request(gpu_count=16)).state == S.PENDING_APPROVAL


def test_auto_approval_needs_a_contract_when_the_policy_says_so(
    catalog, org, account_manager, contract, new_request
):
    approval_policy_set(
        organization=org,
        actor=account_manager,
        auto_approve_max_gpus=64,
        auto_approve_max_value=Decimal("1000000"),
    )
    contract.status = "expired"
    contract.save()
    capacity_request = checked(new_request(gpu_count=8))
    assert capacity_request.state == S.PENDING_APPROVAL
    assert capacity_request.flagged


# --- Decisions -------------------------------------------------------------------------------
def test_account_manager_approves_and_capacity_is_held_in_the_same_transaction(
    catalog, new_request, account_manager, member, east_pool
):
    capacity_request = checked(new_request(gpu_count=48))
    capacity_request_approve(capacity_request=capacity_request, actor=account_manager)
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.APPROVED
    assert capacity_request.reservation.gpu_count == 48
    assert Notification.objects.filter(recipient=member, event="request.approved").exists()
    # A second request that no longer fits: approval refused, nothing written.
    other = checked(new_request(gpu_count=32))
    with pytest.raises(InsufficientCapacity):
        capacity_request_approve(capacity_request=other, actor=account_manager)
    other.refresh_from_db()
    assert other.state == S.PENDING_APPROVAL
    assert not Reservation.all_objects.filter(request=other).exists()


def test_member_and_other_account_manager_cannot_approve(catalog, new_request, member, other_org):
    from accounts.models import StaffRole
    from tests.factories import UserFactory

    stranger = UserFactory(staff_role=StaffRole.ACCOUNT_MANAGER)
    capacity_request = checked(new_request())
    for actor in (member, stranger):
        with pytest.raises(NotAllowed):
            capacity_request_approve(capacity_request=capacity_request, actor=actor)


def test_large_request_needs_a_capacity_planner_too(
    catalog, new_request, account_manager, capacity_planner, settings
):
    settings.QUOTAS_SECOND_APPROVAL_GPUS = 16
    capacity_request = checked(new_request(gpu_count=24))
    capacity_request_approve(capacity_request=capacity_request, actor=account_manager)
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.PENDING_SECOND_APPROVAL
    assert not Reservation.all_objects.filter(request=capacity_request).exists()
    assert Notification.objects.filter(
        recipient=capacity_planner, event="request.approval_needed"
    ).exists()
    with pytest.raises(NotAllowed):
        capacity_request_approve(capacity_request=capacity_request, actor=account_manager)
    capacity_request_approve(capacity_request=capacity_request, actor=capacity_planner)
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.APPROVED
    assert capacity_request.first_approved_by == account_manager
    assert capacity_request.decided_by == capacity_planner


def test_second_approval_by_value(catalog, new_request, account_manager, settings):
    settings.QUOTAS_SECOND_APPROVAL_VALUE = "1000"
    capacity_request = checked(new_request(gpu_count=8))
    capacity_request_approve(capacity_request=capacity_request, actor=account_manager)
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.PENDING_SECOND_APPROVAL


def test_reject_requires_a_reason(catalog, new_request, account_manager, member):
    capacity_request = checked(new_request())
    with pytest.raises(DomainError) as excinfo:
        capacity_request_reject(capacity_request=capacity_request, actor=account_manager, reason="")
    assert excinfo.value.field == "reason"
    capacity_request_reject(
        capacity_request=capacity_request, actor=account_manager, reason="Not this quarter"
    )
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.REJECTED
    assert capacity_request.decision_reason == "Not this quarter"
    assert Notification.objects.filter(recipient=member, event="request.rejected").exists()


def test_approver_picks_an_alternative_pool(catalog, new_request, account_manager, west, west_pool):
    capacity_request = checked(new_request(gpu_count=16, alternative_regions=[west]))
    capacity_request_approve(
        capacity_request=capacity_request, actor=account_manager, pool=west_pool
    )
    capacity_request.refresh_from_db()
    assert capacity_request.reservation.pool == west_pool


def test_approver_cannot_pick_a_pool_the_tenant_did_not_accept(
    catalog, new_request, account_manager, west_pool
):
    capacity_request = checked(new_request())
    with pytest.raises(DomainError) as excinfo:
        capacity_request_approve(
            capacity_request=capacity_request, actor=account_manager, pool=west_pool
        )
    assert excinfo.value.field == "pool"


# --- Counter-offers --------------------------------------------------------------------------
def test_counter_offer_holds_capacity_and_acceptance_books_it(
    catalog, new_request, account_manager, member, east_pool
):
    capacity_request = checked(new_request(gpu_count=48))
    capacity_request_counter_offer(
        capacity_request=capacity_request, actor=account_manager, gpu_count=32, note="32 now"
    )
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.COUNTER_OFFERED
    hold = capacity_request.offer_hold
    assert hold.kind == CapacityHold.Kind.OFFER and hold.gpu_count == 32
    assert hold.expires_at <= timezone.now() + timedelta(hours=48, minutes=1)
    window = {"starts_at": capacity_request.starts_at, "ends_at": capacity_request.ends_at}
    assert pool_free_min(pool=east_pool, **window) == 32
    assert Notification.objects.filter(recipient=member, event="request.counter_offered").exists()
    capacity_request_accept_offer(capacity_request=capacity_request, actor=member)
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.APPROVED
    reservation = capacity_request.reservation
    assert reservation.gpu_count == 32 and reservation.hold_id == hold.pk
    assert pool_free_min(pool=east_pool, **window) == 32


def test_counter_offer_must_fit_and_change_something(catalog, new_request, account_manager):
    capacity_request = checked(new_request(gpu_count=16))
    with pytest.raises(InsufficientCapacity):
        capacity_request_counter_offer(
            capacity_request=capacity_request, actor=account_manager, gpu_count=128
        )
    with pytest.raises(DomainError):
        capacity_request_counter_offer(capacity_request=capacity_request, actor=account_manager)
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.PENDING_APPROVAL
    assert not CapacityHold.all_objects.exists()


def test_counter_offer_in_another_region_and_window(
    catalog, new_request, account_manager, west, west_pool
):
    capacity_request = checked(new_request(gpu_count=16))
    later = capacity_request.starts_at + timedelta(days=1)
    capacity_request_counter_offer(
        capacity_request=capacity_request,
        actor=account_manager,
        region=west,
        starts_at=later,
        ends_at=later + timedelta(days=3),
    )
    capacity_request.refresh_from_db()
    assert capacity_request.offer_pool == west_pool
    assert capacity_request.offer_hold.starts_at == later


def test_declining_an_offer_releases_its_capacity(
    catalog, new_request, account_manager, member, east_pool
):
    capacity_request = checked(new_request(gpu_count=48))
    capacity_request_counter_offer(
        capacity_request=capacity_request, actor=account_manager, gpu_count=40
    )
    capacity_request_decline_offer(capacity_request=capacity_request, actor=member)
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.WITHDRAWN
    assert capacity_request.offer_hold.released_at is not None
    window = {"starts_at": capacity_request.starts_at, "ends_at": capacity_request.ends_at}
    assert pool_free_min(pool=east_pool, **window) == 64


def test_lapsed_offer_cannot_be_accepted(catalog, new_request, account_manager, member):
    capacity_request = checked(new_request(gpu_count=48))
    capacity_request_counter_offer(
        capacity_request=capacity_request, actor=account_manager, gpu_count=40
    )
    CapacityRequest.all_objects.filter(pk=capacity_request.pk).update(
        offer_expires_at=timezone.now() - timedelta(minutes=1)
    )
    with pytest.raises(ConflictError):
        capacity_request_accept_offer(capacity_request=capacity_request, actor=member)


# --- Waitlist --------------------------------------------------------------------------------
def test_freed_capacity_is_offered_to_the_first_fitting_waitlisted_request(
    catalog, org, new_request, account_manager, member, east_pool
):
    big = checked(new_request(gpu_count=64))
    capacity_request_approve(capacity_request=big, actor=account_manager)
    first = checked(new_request(gpu_count=32, waitlist_if_unavailable=True))
    second = checked(new_request(gpu_count=16, waitlist_if_unavailable=True))
    assert first.state == second.state == S.WAITLISTED
    assert waitlist_offer_for_pool(pool_id=east_pool.pk) == []
    big.refresh_from_db()
    reservation_cancel(reservation=big.reservation, actor=member)
    offered = waitlist_offer_for_pool(pool_id=east_pool.pk)
    assert offered == [first.pk, second.pk]
    first.refresh_from_db()
    assert first.state == S.OFFERED
    assert first.offer_hold.kind == CapacityHold.Kind.OFFER
    assert Notification.objects.filter(recipient=member, event="request.offered").exists()
    # Running again offers nothing twice.
    assert waitlist_offer_for_pool(pool_id=east_pool.pk) == []


def test_waitlist_offer_is_booked_at_once_when_the_organization_opted_in(
    catalog, org, owner, new_request, account_manager, member, east_pool
):
    approval_policy_set(organization=org, actor=owner, auto_accept_waitlist_offers=True)
    big = checked(new_request(gpu_count=64))
    capacity_request_approve(capacity_request=big, actor=account_manager)
    waiting = checked(new_request(gpu_count=32, waitlist_if_unavailable=True))
    big.refresh_from_db()
    reservation_cancel(reservation=big.reservation, actor=member)
    waitlist_offer_for_pool(pool_id=east_pool.pk)
    waiting.refresh_from_db()
    assert waiting.state == S.APPROVED
    assert waiting.reservation.hold.kind == CapacityHold.Kind.RESERVATION
    assert states(waiting)[-2:] == [S.OFFERED, S.APPROVED]


def test_extension_is_offered_before_waitlisted_newcomers(
    catalog,
    org,
    new_request,
    account_manager,
    member,
    east_pool,
    django_capture_on_commit_callbacks,
):
    start = soon(3)
    running = checked(new_request(gpu_count=32, starts_at=start, ends_at=start + timedelta(days=2)))
    capacity_request_approve(capacity_request=running, actor=account_manager)
    blocker = checked(
        new_request(
            gpu_count=64, starts_at=start + timedelta(days=2), ends_at=start + timedelta(days=4)
        )
    )
    capacity_request_approve(capacity_request=blocker, actor=account_manager)
    newcomer = checked(
        new_request(
            gpu_count=32,
            starts_at=start + timedelta(days=2),
            ends_at=start + timedelta(days=3),
            waitlist_if_unavailable=True,
        )
    )
    running.refresh_from_db()
    extension = reservation_extend(
        reservation=running.reservation, actor=member, ends_at=start + timedelta(days=3)
    )
    assert extension.starts_at == running.reservation.ends_at
    extension = checked(extension)
    capacity_request_waitlist(capacity_request=extension, actor=member)
    # Free 32 GPUs only: one of the two fits, and the extension goes first.
    blocker.refresh_from_db()
    from quotas.capacity import hold_resize

    hold_resize(hold=blocker.reservation.hold, gpu_count=32)
    waitlist_offer_for_pool(pool_id=east_pool.pk)
    extension.refresh_from_db()
    newcomer.refresh_from_db()
    assert extension.state == S.OFFERED
    assert newcomer.state == S.WAITLISTED


# --- Withdraw, cancel, release, comments ----------------------------------------------------
def test_withdraw_by_the_requester(catalog, new_request, member):
    capacity_request = checked(new_request())
    capacity_request_withdraw(capacity_request=capacity_request, actor=member, reason="Not needed")
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.WITHDRAWN


def test_other_member_cannot_withdraw(catalog, org, new_request):
    from tests.conftest import make_member

    colleague = make_member(org)
    capacity_request = new_request()
    with pytest.raises(NotAllowed):
        capacity_request_withdraw(capacity_request=capacity_request, actor=colleague)


def test_cancel_scheduled_reservation_frees_its_capacity(
    catalog, new_request, account_manager, member, east_pool
):
    capacity_request = checked(new_request(gpu_count=32))
    capacity_request_approve(capacity_request=capacity_request, actor=account_manager)
    capacity_request.refresh_from_db()
    reservation = capacity_request.reservation
    reservation_cancel(reservation=reservation, actor=member, reason="Plans changed")
    reservation.refresh_from_db()
    capacity_request.refresh_from_db()
    assert reservation.state == V.CANCELLED
    assert capacity_request.state == S.CANCELLED
    assert reservation.hold.released_at is not None
    with pytest.raises(IllegalTransition) as excinfo:
        reservation_cancel(reservation=reservation, actor=member)
    assert excinfo.value.current == V.CANCELLED


def test_release_early_keeps_the_used_part(
    catalog, new_request, account_manager, member, east_pool
):
    from quotas.services import reservation_activate

    capacity_request = checked(new_request(gpu_count=32))
    capacity_request_approve(capacity_request=capacity_request, actor=account_manager)
    capacity_request.refresh_from_db()
    reservation = capacity_request.reservation
    with pytest.raises(IllegalTransition):
        reservation_release_early(reservation=reservation, actor=member)
    in_window = reservation.starts_at + timedelta(days=1)
    assert reservation_activate(reservation_id=reservation.pk, now=in_window)
    reservation_release_early(reservation=reservation, actor=member, at=in_window)
    reservation.refresh_from_db()
    assert reservation.state == V.RELEASED_EARLY
    assert reservation.hold.ends_at == in_window
    later = {"starts_at": in_window, "ends_at": reservation.ends_at}
    assert pool_free_min(pool=east_pool, **later) == 64


def test_comment_by_member_and_account_manager(
    catalog, new_request, member, account_manager, other_owner
):
    capacity_request = new_request()
    request_comment_add(capacity_request=capacity_request, author=member, body="Urgent please")
    request_comment_add(capacity_request=capacity_request, author=account_manager, body="On it")
    assert capacity_request.comments.count() == 2
    with pytest.raises(NotAllowed):
        request_comment_add(capacity_request=capacity_request, author=other_owner, body="Hi")
    assert Notification.objects.filter(
        recipient=account_manager, event="request.commented"
    ).exists()


# --- On-demand quota -------------------------------------------------------------------------
def test_quota_increase_raises_the_on_demand_limit(
    catalog, org, member, h100, east, account_manager
):
    capacity_request = capacity_request_create(
        organization=org,
        actor=member,
        kind=CapacityRequest.Kind.QUOTA_INCREASE,
        sku=h100,
        region=east,
        on_demand_limit=24,
        justification="CI",
    )
    capacity_request = checked(capacity_request)
    assert capacity_request.state == S.PENDING_APPROVAL
    capacity_request_approve(capacity_request=capacity_request, actor=account_manager)
    quota = OnDemandQuota.objects.for_organization(org).get(sku=h100, region=east)
    assert quota.gpu_limit == 24


def test_audit_event_for_every_transition(catalog, new_request, account_manager):
    capacity_request = checked(new_request())
    capacity_request_approve(capacity_request=capacity_request, actor=account_manager)
    actions = set(
        AuditEvent.all_objects.filter(
            target_type="quotas.CapacityRequest", target_id=str(capacity_request.pk)
        ).values_list("action", flat=True)
    )
    assert {
        "capacity_request.created",
        "capacity_request.submitted",
        "capacity_request.checking",
        "capacity_request.pending_approval",
        "capacity_request.approved",
    } <= actions


def test_capacity_reduction_tells_the_account_manager_of_reservations_at_risk(
    catalog, new_request, account_manager, capacity_planner, east_pool
):
    capacity_request = checked(new_request(gpu_count=48))
    capacity_request_approve(capacity_request=capacity_request, actor=account_manager)
    capacity_request.refresh_from_db()
    reservation = capacity_request.reservation
    from quotas.receivers import on_holds_at_risk

    capacity_change_add(
        pool=east_pool,
        gpus_delta=-32,
        effective_at=reservation.starts_at,
        ends_at=reservation.starts_at + timedelta(days=1),
        reason="maintenance",
        actor=capacity_planner,
        mode="flag",
    )
    reservation.hold.refresh_from_db()
    assert reservation.hold.at_risk
    # The signal is sent on commit (the test transaction never commits): deliver it as it would.
    on_holds_at_risk(sender=None, hold_ids=[reservation.hold_id])
    assert Notification.objects.filter(recipient=account_manager, event="capacity.at_risk").exists()
    assert Notification.objects.filter(
        recipient=capacity_planner, event="capacity.at_risk"
    ).exists()
