"""Random sequences of use cases on a few competing requests (hypothesis): whatever happens,
every recorded move is in the transition table, each request's timeline is one unbroken chain,
approved requests have exactly one reservation, and the pool is never committed beyond its
capacity at any instant."""

from datetime import timedelta
from itertools import pairwise

import pytest
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from portal.errors import DomainError
from quotas import services
from quotas.checks import capacity_request_run_checks
from quotas.models import CapacityHold, CapacityRequest, RequestEvent, Reservation
from quotas.selectors.availability import pool_levels
from quotas.workflow import REQUEST_TRANSITIONS, RESERVATION_TRANSITIONS
from quotas.workflow import RequestState as S

from .conftest import soon

# Weighted towards the moves that lead somewhere, so walks reach offers and reservations.
ACTIONS = [
    *["approve"] * 3,
    *["second", "counter", "accept", "waitlist", "offer_waitlist", "cancel", "activate"] * 2,
    "checks",
    "reject",
    "decline",
    "withdraw",
    "expire",
    "release",
]


def apply(action, capacity_request, people, pool):
    member, manager, planner = people
    capacity_request.refresh_from_db()
    reservation = Reservation.all_objects.filter(request=capacity_request).first()
    start = capacity_request.starts_at
    match action:
        case "checks":
            capacity_request_run_checks(request_id=capacity_request.pk)
        case "approve":
            services.capacity_request_approve(capacity_request=capacity_request, actor=manager)
        case "second":
            services.capacity_request_approve(capacity_request=capacity_request, actor=planner)
        case "reject":
            services.capacity_request_reject(
                capacity_request=capacity_request, actor=manager, reason="No"
            )
        case "counter":
            services.capacity_request_counter_offer(
                capacity_request=capacity_request, actor=manager, gpu_count=8
            )
        case "accept":
            services.capacity_request_accept_offer(capacity_request=capacity_request, actor=member)
        case "decline":
            services.capacity_request_decline_offer(capacity_request=capacity_request, actor=member)
        case "waitlist":
            services.capacity_request_waitlist(capacity_request=capacity_request, actor=member)
        case "withdraw":
            services.capacity_request_withdraw(capacity_request=capacity_request, actor=member)
        case "offer_waitlist":
            services.waitlist_offer_for_pool(pool_id=pool.pk)
        case "expire":
            services.capacity_request_expire(request_id=capacity_request.pk, now=start)
        case "cancel" if reservation:
            services.reservation_cancel(reservation=reservation, actor=member)
        case "activate" if reservation:
            services.reservation_activate(
                reservation_id=reservation.pk, now=reservation.starts_at + timedelta(hours=1)
            )
        case "release" if reservation:
            services.reservation_release_early(
                reservation=reservation, actor=member, at=reservation.starts_at + timedelta(hours=2)
            )


def assert_invariants(requests, pool, window):
    for level in pool_levels(pool=pool, **window):
        assert level.held <= level.capacity
    for capacity_request in requests:
        capacity_request.refresh_from_db()
        events = list(
            RequestEvent.all_objects.filter(request=capacity_request, reservation=None).order_by(
                "at", "id"
            )
        )
        for before, after in pairwise(events):
            assert after.from_state == before.to_state
            assert after.to_state in REQUEST_TRANSITIONS[after.from_state]
        assert events[-1].to_state == capacity_request.state
        reservations = list(Reservation.all_objects.filter(request=capacity_request))
        granted = capacity_request.state in (S.APPROVED, S.CANCELLED)
        assert len(reservations) == (1 if granted else 0)
        for reservation in reservations:
            steps = list(
                RequestEvent.all_objects.filter(reservation=reservation).order_by("at", "id")
            )
            for before, after in pairwise(steps):
                assert after.to_state in RESERVATION_TRANSITIONS[before.to_state]
            live = reservation.hold.released_at is None
            assert live == (reservation.state != "cancelled")
        offer_live = CapacityHold.all_objects.filter(
            pk=capacity_request.offer_hold_id, released_at__isnull=True, kind="offer"
        ).exists()
        if offer_live:
            assert capacity_request.state in (S.COUNTER_OFFERED, S.OFFERED)


@pytest.mark.django_db
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    counts=st.lists(st.sampled_from([16, 32, 48, 64]), min_size=3, max_size=3),
    offsets=st.lists(st.integers(0, 4), min_size=3, max_size=3),
    steps=st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 2)), min_size=1, max_size=30),
)
def test_random_walks_keep_the_workflow_invariants(
    catalog, org, member, account_manager, capacity_planner, east_pool, counts, offsets, steps
):
    start = soon(3)
    window = {"starts_at": start, "ends_at": start + timedelta(days=12)}
    people = (member, account_manager, capacity_planner)
    with transaction.atomic():
        requests = [
            services.capacity_request_create(
                organization=org,
                actor=member,
                sku=east_pool.sku,
                region=east_pool.region,
                gpu_count=count,
                starts_at=start + timedelta(days=offset),
                ends_at=start + timedelta(days=offset + 7),
            )
            for count, offset in zip(counts, offsets, strict=True)
        ]
        for capacity_request in requests:  # what the checks task does right after submit
            capacity_request_run_checks(request_id=capacity_request.pk)
        for action, index in steps:
            try:
                with transaction.atomic():
                    apply(action, requests[index], people, east_pool)
            except DomainError:
                pass  # refused, and nothing written: the invariants below say so
            assert_invariants(requests, east_pool, window)
        for capacity_request in requests:
            event(f"a request ended {capacity_request.state}")
        transaction.set_rollback(True)
    assert not CapacityRequest.all_objects.exists()
