"""Notifications stay inside the organization: a requester who left (or was removed) is no
longer told about the organization's requests and reservations."""

from accounts.models import Membership
from notifications.models import Notification
from quotas.services import capacity_request_approve, capacity_request_reject
from quotas.workflow import RequestState as S
from quotas.workflow import ReservationState as V

from .conftest import soon


def test_a_requester_who_left_hears_nothing_more_about_the_request(
    org, member, owner, catalog, account_manager, request_in_state
):
    capacity_request = request_in_state(S.PENDING_APPROVAL)
    Membership.all_objects.filter(organization=org, user=member).delete()
    capacity_request_reject(
        capacity_request=capacity_request, actor=account_manager, reason="No room."
    )
    assert Notification.objects.filter(recipient=owner, event="request.rejected").exists()
    assert not Notification.objects.filter(recipient=member).exists()


def test_a_requester_who_left_hears_nothing_about_the_reservation(
    org, member, owner, catalog, account_manager, request_in_state
):
    from quotas.services import reservation_cancel

    capacity_request = request_in_state(S.PENDING_APPROVAL, gpu_count=8, starts_at=soon(5))
    capacity_request_approve(capacity_request=capacity_request, actor=account_manager)
    Membership.all_objects.filter(organization=org, user=member).delete()
    Notification.objects.all().delete()
    reservation = reservation_cancel(
        reservation=capacity_request.reservation, actor=owner, reason=""
    )
    assert reservation.state == V.CANCELLED
    assert Notification.objects.filter(event="reservation.cancelled").exists()
    assert not Notification.objects.filter(recipient=member).exists()
