from datetime import timedelta

import pytest

from quotas.checks import capacity_request_run_checks
from quotas.models import CapacityRequest
from quotas.selectors.quotas import organization_quota_at, organization_quota_history
from quotas.services import (
    capacity_request_approve,
    capacity_request_create,
    reservation_activate,
    reservation_release_early,
)
from quotas.workflow import RequestState as S

pytestmark = pytest.mark.django_db


def approve(capacity_request, account_manager):
    capacity_request_run_checks(request_id=capacity_request.pk)
    capacity_request_approve(capacity_request=capacity_request, actor=account_manager)
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.APPROVED
    return capacity_request


def test_quota_is_running_reservations_plus_on_demand_limit(
    catalog,
    org,
    other_org,
    member,
    h100,
    east,
    new_request,
    account_manager,
    django_assert_num_queries,
):
    first = approve(new_request(gpu_count=16), account_manager).reservation
    second = approve(
        new_request(
            gpu_count=8,
            starts_at=first.starts_at + timedelta(days=2),
            ends_at=first.starts_at + timedelta(days=3),
        ),
        account_manager,
    ).reservation
    approve(
        capacity_request_create(
            organization=org,
            actor=member,
            kind=CapacityRequest.Kind.QUOTA_INCREASE,
            sku=h100,
            region=east,
            on_demand_limit=4,
        ),
        account_manager,
    )
    before = first.starts_at - timedelta(seconds=1)
    with django_assert_num_queries(2):
        lines = organization_quota_at(organization=org, at=before)
    # The limit was raised now, before the window: only the on-demand part counts.
    assert [(q.reserved, q.on_demand, q.total) for q in lines] == [(0, 4, 4)]
    (line,) = organization_quota_at(organization=org, at=first.starts_at)
    assert (line.reserved, line.total) == (16, 20)
    (line,) = organization_quota_at(organization=org, at=second.starts_at)
    assert (line.reserved, line.total) == (24, 28)
    (line,) = organization_quota_at(organization=org, at=second.ends_at)  # half-open
    assert line.reserved == 16
    assert organization_quota_at(organization=other_org, at=second.starts_at) == []


def test_quota_history_steps_and_early_release(catalog, org, member, new_request, account_manager):
    reservation = approve(new_request(gpu_count=16), account_manager).reservation
    since = reservation.starts_at - timedelta(days=1)
    until = reservation.ends_at + timedelta(days=1)
    points = organization_quota_history(
        organization=org,
        sku=reservation.pool.sku,
        region=reservation.pool.region,
        since=since,
        until=until,
    )
    assert [(p.at, p.total) for p in points] == [
        (since, 0),
        (reservation.starts_at, 16),
        (reservation.ends_at, 0),
    ]
    release_at = reservation.starts_at + timedelta(days=1)
    reservation_activate(reservation_id=reservation.pk, now=release_at)
    reservation_release_early(reservation=reservation, actor=member, at=release_at)
    points = organization_quota_history(
        organization=org,
        sku=reservation.pool.sku,
        region=reservation.pool.region,
        since=since,
        until=until,
    )
    assert [(p.at, p.total) for p in points] == [
        (since, 0),
        (reservation.starts_at, 16),
        (release_at, 0),
    ]
