import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from accounts.models import AuditEvent
from quotas.models import CapacityHold, CapacityRequest, Reservation
from quotas.selectors.availability import pool_free_min
from quotas.workflow import RequestState, ReservationState

pytestmark = pytest.mark.django_db


def seed_all():
    return [import_string(dotted)() for dotted in settings.DEMO_SEEDERS]


def test_demo_shows_every_request_and_reservation_state_in_both_organizations():
    assert "quotas.demo_requests.seed" in settings.DEMO_SEEDERS
    seed_all()
    requests = CapacityRequest.objects.unscoped_for_staff()
    assert set(requests.values_list("state", flat=True)) == set(RequestState.values)
    assert set(requests.values_list("organization__slug", flat=True)) == {"acme", "globex"}
    assert requests.values("region").distinct().count() >= 4
    reservations = Reservation.objects.unscoped_for_staff()
    assert set(reservations.values_list("state", flat=True)) == set(ReservationState.values)
    # Every live hold of the demo fits its pool.
    for hold in CapacityHold.all_objects.filter(released_at__isnull=True).select_related("pool"):
        assert pool_free_min(pool=hold.pool, starts_at=hold.starts_at, ends_at=hold.ends_at) >= 0


def test_demo_requests_twice_change_nothing():
    seed_all()
    before = (
        CapacityRequest.objects.unscoped_for_staff().count(),
        Reservation.objects.unscoped_for_staff().count(),
        CapacityHold.all_objects.count(),
        AuditEvent.all_objects.count(),
    )
    assert import_string("quotas.demo_requests.seed")().startswith("0 demo requests added")
    after = (
        CapacityRequest.objects.unscoped_for_staff().count(),
        Reservation.objects.unscoped_for_staff().count(),
        CapacityHold.all_objects.count(),
        AuditEvent.all_objects.count(),
    )
    assert after == before
