"""The request selectors: scoped to one organization, and a fixed number of queries however
many rows they return."""

import pytest

from quotas.selectors.requests import (
    capacity_request_get,
    capacity_request_list,
    request_checks_latest,
    request_timeline,
    requests_awaiting_decision_for_staff,
    reservation_list,
)
from quotas.services import capacity_request_approve
from quotas.workflow import RequestState as S

pytestmark = pytest.mark.django_db


def render(requests):
    return [
        (r.sku.name, r.region.code, r.requested_by.email, r.pool and r.pool.region.code)
        for r in requests
    ]


@pytest.mark.parametrize("rows", [1, 6])
def test_request_list_query_count_is_flat(
    catalog, org, request_in_state, rows, django_assert_num_queries
):
    for _ in range(rows):
        request_in_state(S.PENDING_APPROVAL)
    with django_assert_num_queries(1):
        assert len(render(capacity_request_list(organization=org))) == rows


@pytest.mark.parametrize("rows", [1, 5])
def test_reservation_list_query_count_is_flat(
    catalog, org, request_in_state, account_manager, rows, django_assert_num_queries
):
    for _ in range(rows):
        capacity_request_approve(
            capacity_request=request_in_state(S.PENDING_APPROVAL, gpu_count=8),
            actor=account_manager,
        )
    with django_assert_num_queries(1):
        listed = [
            (r.pool.sku.name, r.pool.region.code, r.request.state)
            for r in reservation_list(organization=org)
        ]
    assert len(listed) == rows


@pytest.mark.parametrize("rows", [1, 5])
def test_staff_queue_query_count_is_flat(
    catalog, request_in_state, account_manager, rows, django_assert_num_queries
):
    for _ in range(rows):
        request_in_state(S.PENDING_APPROVAL)
    request_in_state(S.DRAFT)
    # organizations of the manager (subquery), requests, their checks
    with django_assert_num_queries(2):
        queue = [
            (r.organization.name, r.sku.name, list(r.checks.all()))
            for r in requests_awaiting_decision_for_staff(user=account_manager)
        ]
    assert len(queue) == rows


def test_lists_are_scoped_to_the_organization(catalog, org, other_org, request_in_state):
    mine = request_in_state(S.PENDING_APPROVAL)
    assert list(capacity_request_list(organization=other_org)) == []
    with pytest.raises(type(mine).DoesNotExist):
        capacity_request_get(organization=other_org, pk=mine.pk)
    assert capacity_request_get(organization=org, pk=mine.pk) == mine


def test_planner_queue_shows_second_approvals_of_every_organization(
    catalog, request_in_state, capacity_planner
):
    first = request_in_state(S.PENDING_APPROVAL)
    second = request_in_state(S.PENDING_SECOND_APPROVAL)
    queue = list(requests_awaiting_decision_for_staff(user=capacity_planner))
    assert queue == [second] and first not in queue


def test_timeline_and_latest_checks(catalog, request_in_state):
    from quotas.checks import capacity_request_run_checks

    capacity_request = request_in_state(S.SUBMITTED)
    capacity_request_run_checks(request_id=capacity_request.pk)
    steps = [e.to_state for e in request_timeline(capacity_request=capacity_request)]
    assert steps == [S.CHECKING, S.PENDING_APPROVAL]
    assert {c.name for c in request_checks_latest(capacity_request=capacity_request)} == {
        "standing",
        "capacity",
        "contract",
        "policy",
    }
