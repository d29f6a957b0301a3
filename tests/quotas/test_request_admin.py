"""The admin shows capacity requests and reservations to provider staff and never edits them:
their state, holds and prices move only through the workflow services."""

from datetime import timedelta

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from quotas.checks import capacity_request_run_checks
from quotas.models import CapacityHold, CapacityRequest, Reservation
from quotas.services import capacity_request_approve
from quotas.workflow import RequestState as S
from tests.conftest import enable_totp
from tests.factories import UserFactory

from .conftest import soon

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(db):
    user = UserFactory(email="root@provider.example", is_superuser=True)
    enable_totp(user)
    return user


@pytest.fixture
def booked(catalog, new_request, account_manager):
    """``booked(n)``: n requests, every other one approved (a reservation), the rest pending."""

    def make(count):
        made = []
        for i in range(count):
            capacity_request = new_request(gpu_count=8, starts_at=soon(3 + i))
            capacity_request_run_checks(request_id=capacity_request.pk)
            if i % 2 == 0:
                capacity_request_approve(capacity_request=capacity_request, actor=account_manager)
            capacity_request.refresh_from_db()
            made.append(capacity_request)
        return made

    return make


def page_queries(client, url, django_assert_max_num_queries, limit):
    with django_assert_max_num_queries(limit) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries), response


@pytest.mark.parametrize("model", ["capacityrequest", "reservation"])
def test_list_pages_load_for_a_superuser_in_a_fixed_number_of_queries(
    client, superuser, booked, model, django_assert_max_num_queries
):
    booked(2)
    client.force_login(superuser)
    url = reverse(f"admin:quotas_{model}_changelist")
    few, _ = page_queries(client, url, django_assert_max_num_queries, 20)
    booked(6)
    many, response = page_queries(client, url, django_assert_max_num_queries, 20)
    assert many == few  # no query per row
    expected = 8 if model == "capacityrequest" else 4
    assert response.context["cl"].result_count == expected


def test_request_detail_shows_everything_read_only(
    client, superuser, booked, django_assert_max_num_queries
):
    capacity_request = booked(1)[0]
    client.force_login(superuser)
    url = reverse("admin:quotas_capacityrequest_change", args=[capacity_request.pk])
    _, response = page_queries(client, url, django_assert_max_num_queries, 30)
    body = response.content.decode()
    assert capacity_request.reference in body and "Approved" in body
    assert "Offer and its hold" in body and "timeline" in body.lower()
    assert not response.context["has_change_permission"]
    assert "state" not in response.context["adminform"].form.fields
    assert 'name="state"' not in body
    assert 'name="_save"' not in body  # no save button at all


def test_reservation_detail_shows_its_hold_read_only(
    client, superuser, booked, django_assert_max_num_queries
):
    reservation = booked(1)[0].reservation
    client.force_login(superuser)
    url = reverse("admin:quotas_reservation_change", args=[reservation.pk])
    _, response = page_queries(client, url, django_assert_max_num_queries, 20)
    assert reservation.reference in response.content.decode()
    assert {"state", "hold", "gpu_count"}.isdisjoint(response.context["adminform"].form.fields)


def test_no_admin_post_changes_a_request_or_a_reservation(client, superuser, booked, east_pool):
    capacity_request = booked(1)[0]
    reservation = capacity_request.reservation
    client.force_login(superuser)
    audits = AuditEvent.all_objects.count()
    posts = [
        (
            reverse("admin:quotas_capacityrequest_change", args=[capacity_request.pk]),
            {"state": S.CANCELLED, "gpu_count": "64"},
        ),
        (
            reverse("admin:quotas_reservation_change", args=[reservation.pk]),
            {"state": "cancelled", "gpu_count": "64", "hold": ""},
        ),
        (
            reverse("admin:quotas_capacityrequest_delete", args=[capacity_request.pk]),
            {"post": "yes"},
        ),
        (reverse("admin:quotas_reservation_delete", args=[reservation.pk]), {"post": "yes"}),
        (reverse("admin:quotas_capacityrequest_add"), {"state": S.APPROVED}),
        (
            reverse("admin:quotas_capacityrequest_changelist"),
            {"action": "delete_selected", "_selected_action": [capacity_request.pk]},
        ),
    ]
    for url, data in posts[:-1]:
        response = client.post(url, data)
        assert response.status_code == 403, (url, response.status_code)
    # The list offers no bulk action at all: the request is answered "no action selected".
    assert client.post(*posts[-1]).status_code in (200, 302)
    capacity_request.refresh_from_db()
    reservation.refresh_from_db()
    assert capacity_request.state == S.APPROVED and capacity_request.version >= 1
    assert (reservation.state, reservation.gpu_count) == ("scheduled", 8)
    assert CapacityHold.all_objects.get(pk=reservation.hold_id).released_at is None
    assert CapacityRequest.all_objects.count() == 1 and Reservation.all_objects.count() == 1
    assert AuditEvent.all_objects.count() == audits


def test_search_finds_a_request_by_its_reference_and_a_reservation_by_its_request(
    client, superuser, booked
):
    first, second = booked(2)[:1] + booked(1)
    client.force_login(superuser)
    found = client.get(
        reverse("admin:quotas_capacityrequest_changelist"), {"q": second.reference}
    ).context["cl"]
    assert list(found.queryset) == [second]
    found = client.get(
        reverse("admin:quotas_reservation_changelist"), {"q": first.reference}
    ).context["cl"]
    assert list(found.queryset) == [first.reservation]


def test_account_manager_sees_only_the_requests_of_the_organizations_they_manage(
    client, booked, account_manager, other_org, other_owner, h100, east
):
    mine = booked(1)[0]
    theirs = CapacityRequest.all_objects.create(
        organization=other_org,
        sku=h100,
        region=east,
        gpu_count=8,
        starts_at=soon(4),
        ends_at=soon(4) + timedelta(days=1),
        requested_by=other_owner,
    )
    client.force_login(account_manager)
    listed = client.get(reverse("admin:quotas_capacityrequest_changelist")).context["cl"]
    assert list(listed.queryset) == [mine]
    other = reverse("admin:quotas_capacityrequest_change", args=[theirs.pk])
    assert client.get(other).status_code == 302  # "does not exist", like an unknown id
