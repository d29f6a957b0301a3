"""A waitlist offer is booked without a decision (by the tenant, or at once when the
organization opted in). A request above the second-approval threshold must not get there: it
stays with its approvers, so a capacity planner still approves it."""

import pytest

from portal.errors import NotAllowed
from quotas.checks import capacity_request_run_checks
from quotas.services import approval_policy_set, capacity_request_waitlist
from quotas.services.waitlist import waitlist_offer_for_pool
from quotas.workflow import RequestState as S

from .conftest import with_capacity


def checked(capacity_request):
    capacity_request_run_checks(request_id=capacity_request.pk)
    capacity_request.refresh_from_db()
    return capacity_request


@pytest.fixture
def low_threshold(settings):
    settings.QUOTAS_SECOND_APPROVAL_GPUS = 64


def test_a_request_above_the_threshold_is_not_waitlisted_on_its_own(
    catalog, new_request, low_threshold
):
    capacity_request = checked(new_request(gpu_count=128, waitlist_if_unavailable=True))
    assert capacity_request.state == S.PENDING_APPROVAL
    assert capacity_request.flagged and capacity_request.capacity_available is False


def test_the_requester_cannot_move_a_request_above_the_threshold_to_the_waitlist(
    org, owner, catalog, new_request, member, east_pool, low_threshold
):
    capacity_request = checked(new_request(gpu_count=128))
    assert capacity_request.state == S.PENDING_APPROVAL
    with pytest.raises(NotAllowed):
        capacity_request_waitlist(capacity_request=capacity_request, actor=member)
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.PENDING_APPROVAL
    # Capacity arriving later books nothing behind the approvers' backs.
    approval_policy_set(organization=org, actor=owner, auto_accept_waitlist_offers=True)
    with_capacity(east_pool, 128)
    assert waitlist_offer_for_pool(pool_id=east_pool.pk) == []
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.PENDING_APPROVAL
