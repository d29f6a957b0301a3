"""Every legal move and the refusal of every illegal one, generated from the tables in
``quotas.workflow``: first the recorded move itself, then every use case from every state."""

from datetime import timedelta
from decimal import Decimal
from itertools import product

import pytest
from django.db import transaction

from accounts.models import AuditEvent
from portal.errors import IllegalTransition
from quotas import services
from quotas.checks import capacity_request_run_checks
from quotas.models import CapacityHold, RequestEvent, Reservation
from quotas.services._base import request_lock, request_move, reservation_lock, reservation_move
from quotas.workflow import (
    REQUEST_ACTION_TARGETS,
    REQUEST_ACTIONS,
    REQUEST_TRANSITIONS,
    RESERVATION_ACTION_TARGETS,
    RESERVATION_ACTIONS,
    RESERVATION_TRANSITIONS,
    RequestState,
    ReservationState,
)

pytestmark = pytest.mark.django_db

REQUEST_PAIRS = list(product(RequestState.values, RequestState.values))
RESERVATION_PAIRS = list(product(ReservationState.values, ReservationState.values))


def test_tables_cover_every_state_and_only_known_states():
    assert set(REQUEST_TRANSITIONS) == set(RequestState.values)
    assert set(RESERVATION_TRANSITIONS) == set(ReservationState.values)
    for targets in REQUEST_TRANSITIONS.values():
        assert targets <= set(RequestState.values)
    for targets in RESERVATION_TRANSITIONS.values():
        assert targets <= set(ReservationState.values)


def test_every_action_leads_somewhere_legal_from_every_state_it_starts_from():
    for action, froms in REQUEST_ACTIONS.items():
        for state in froms:
            reachable = set(REQUEST_TRANSITIONS[state]) | {state}
            # run_checks goes through "checking" first; its targets are legal from there.
            if action == "run_checks":
                reachable |= REQUEST_TRANSITIONS[RequestState.CHECKING]
            assert REQUEST_ACTION_TARGETS[action] & reachable, (action, state)
    for action, froms in RESERVATION_ACTIONS.items():
        for state in froms:
            targets = RESERVATION_ACTION_TARGETS[action]
            assert not targets or targets & RESERVATION_TRANSITIONS[state], (action, state)


@pytest.mark.parametrize(("current", "target"), REQUEST_PAIRS)
def test_request_move_follows_the_table(request_in_state, member, current, target):
    capacity_request = request_in_state(current)
    legal = target in REQUEST_TRANSITIONS[current]
    with transaction.atomic():
        locked = request_lock(capacity_request.pk)
        if legal:
            request_move(locked, to_state=target, actor=member, reason="because")
        else:
            with pytest.raises(IllegalTransition) as excinfo:
                request_move(locked, to_state=target, actor=member)
            assert excinfo.value.current == current
            assert current.replace("_", " ") in excinfo.value.message
    capacity_request.refresh_from_db()
    events = RequestEvent.all_objects.filter(request=capacity_request)
    audits = AuditEvent.all_objects.filter(
        target_type="quotas.CapacityRequest", target_id=str(capacity_request.pk)
    )
    if legal:
        assert capacity_request.state == target
        assert capacity_request.version == 2
        event = events.get()
        assert (event.from_state, event.to_state, event.actor, event.reason) == (
            current,
            target,
            member,
            "because",
        )
        assert audits.get().action == f"capacity_request.{target}"
    else:
        assert capacity_request.state == current
        assert capacity_request.version == 1
        assert not events.exists() and not audits.exists()


@pytest.fixture
def reservation_in_state(org, member, east_pool, request_in_state):
    def make(state):
        capacity_request = request_in_state(RequestState.APPROVED)
        hold = CapacityHold.all_objects.create(
            pool=east_pool,
            organization=org,
            kind=CapacityHold.Kind.RESERVATION,
            gpu_count=capacity_request.gpu_count,
            starts_at=capacity_request.starts_at,
            ends_at=capacity_request.ends_at,
        )
        return Reservation.all_objects.create(
            organization=org,
            request=capacity_request,
            pool=east_pool,
            gpu_count=capacity_request.gpu_count,
            starts_at=capacity_request.starts_at,
            ends_at=capacity_request.ends_at,
            hold=hold,
            state=state,
            currency="USD",
            rate_per_gpu_hour=Decimal("2"),
            gpu_hours=Decimal("2688"),
            total=Decimal("5376.00"),
            price_source="contract",
        )

    return make


@pytest.mark.parametrize(("current", "target"), RESERVATION_PAIRS)
def test_reservation_move_follows_the_table(reservation_in_state, current, target):
    reservation = reservation_in_state(current)
    legal = target in RESERVATION_TRANSITIONS[current]
    with transaction.atomic():
        locked = reservation_lock(reservation.pk)
        if legal:
            reservation_move(locked, to_state=target, actor=None)
        else:
            with pytest.raises(IllegalTransition) as excinfo:
                reservation_move(locked, to_state=target, actor=None)
            assert excinfo.value.current == current
    reservation.refresh_from_db()
    assert reservation.state == (target if legal else current)
    assert RequestEvent.all_objects.filter(reservation=reservation).exists() == legal


# --- Every use case from every state --------------------------------------------------------
def _actions(member, owner, admin, account_manager, capacity_planner):
    def approver(capacity_request):
        second = capacity_request.state == RequestState.PENDING_SECOND_APPROVAL
        return capacity_planner if second else account_manager

    def later(capacity_request):
        return capacity_request.starts_at + timedelta(days=1)

    return {
        "update": lambda r: services.capacity_request_update(
            capacity_request=r, actor=member, justification="edited"
        ),
        "submit": lambda r: services.capacity_request_submit(capacity_request=r, actor=member),
        "sign_off": lambda r: services.capacity_request_sign_off(
            capacity_request=r, actor=admin, approve=True
        ),
        "run_checks": lambda r: capacity_request_run_checks(request_id=r.pk) or _refuse(r),
        "approve": lambda r: services.capacity_request_approve(
            capacity_request=r, actor=approver(r)
        ),
        "reject": lambda r: services.capacity_request_reject(
            capacity_request=r, actor=approver(r), reason="No"
        ),
        "counter_offer": lambda r: services.capacity_request_counter_offer(
            capacity_request=r,
            actor=approver(r),
            starts_at=later(r),
            ends_at=later(r) + timedelta(days=1),
        ),
        "accept_offer": lambda r: services.capacity_request_accept_offer(
            capacity_request=r, actor=member
        ),
        "decline_offer": lambda r: services.capacity_request_decline_offer(
            capacity_request=r, actor=member
        ),
        "waitlist": lambda r: services.capacity_request_waitlist(capacity_request=r, actor=member),
        "withdraw": lambda r: services.capacity_request_withdraw(capacity_request=r, actor=member),
        "expire": lambda r: (
            services.capacity_request_expire(request_id=r.pk, now=r.starts_at) or _refuse(r)
        ),
        "waitlist_offer": lambda r: (
            services.waitlist_offer(request_id=r.pk, pool=r.pool or _pool(r)) or _refuse(r)
        ),
    }


def _pool(capacity_request):
    from quotas.models import CapacityPool

    return CapacityPool.objects.get(sku=capacity_request.sku, region=capacity_request.region)


def _refuse(capacity_request):
    """System actions answer False instead of raising: make that a refusal for the test."""
    capacity_request.refresh_from_db()
    raise IllegalTransition(
        obj_label="The request", current=capacity_request.state, target="(system)"
    )


@pytest.mark.parametrize(("action", "state"), list(product(REQUEST_ACTIONS, RequestState.values)))
def test_each_use_case_from_each_state(
    catalog,
    request_in_state,
    member,
    owner,
    admin,
    account_manager,
    capacity_planner,
    action,
    state,
    django_capture_on_commit_callbacks,
):
    capacity_request = request_in_state(state)
    if state == RequestState.PENDING_SECOND_APPROVAL:
        capacity_request.first_approved_by = account_manager
        capacity_request.save()
    act = _actions(member, owner, admin, account_manager, capacity_planner)[action]
    allowed = state in REQUEST_ACTIONS[action]
    events_before = RequestEvent.all_objects.filter(request=capacity_request).count()
    with django_capture_on_commit_callbacks():
        if allowed:
            act(capacity_request)
        else:
            with pytest.raises(IllegalTransition) as excinfo:
                act(capacity_request)
            assert excinfo.value.current == state
    capacity_request.refresh_from_db()
    events_after = RequestEvent.all_objects.filter(request=capacity_request).count()
    if allowed:
        reached = capacity_request.state
        assert reached in REQUEST_ACTION_TARGETS[action] | {state}, reached
        if action != "update":
            assert reached != state
            assert events_after > events_before
    else:
        assert capacity_request.state == state
        assert events_after == events_before


@pytest.mark.parametrize(
    ("action", "state"), list(product(RESERVATION_ACTIONS, ReservationState.values))
)
def test_each_reservation_use_case_from_each_state(
    catalog, reservation_in_state, member, action, state
):
    reservation = reservation_in_state(state)
    inside = reservation.starts_at + timedelta(hours=1)
    acts = {
        "activate": lambda: (
            services.reservation_activate(reservation_id=reservation.pk, now=inside)
            or _refuse_reservation(reservation)
        ),
        "complete": lambda: (
            services.reservation_complete(reservation_id=reservation.pk, now=reservation.ends_at)
            or _refuse_reservation(reservation)
        ),
        "cancel": lambda: services.reservation_cancel(reservation=reservation, actor=member),
        "release_early": lambda: services.reservation_release_early(
            reservation=reservation, actor=member, at=inside
        ),
        "extend": lambda: services.reservation_extend(
            reservation=reservation, actor=member, ends_at=reservation.ends_at + timedelta(days=1)
        ),
    }
    allowed = state in RESERVATION_ACTIONS[action]
    if allowed:
        acts[action]()
    else:
        with pytest.raises(IllegalTransition) as excinfo:
            acts[action]()
        assert excinfo.value.current == state
    reservation.refresh_from_db()
    targets = RESERVATION_ACTION_TARGETS[action]
    if allowed and targets:
        assert reservation.state in targets
    else:
        assert reservation.state == state


def _refuse_reservation(reservation):
    reservation.refresh_from_db()
    raise IllegalTransition(
        obj_label="The reservation", current=reservation.state, target="(system)"
    )
