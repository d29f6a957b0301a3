from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from portal.errors import ConflictError, DomainError
from quotas.capacity import (
    InsufficientCapacity,
    capacity_change_add,
    hold_confirm_offer,
    hold_place,
    hold_release,
    hold_resize,
)
from quotas.models import CapacityChange, CapacityHold
from quotas.selectors.availability import pool_capacity_at, pool_free_min
from quotas.signals import capacity_freed, holds_at_risk
from tests.factories import CapacityPoolFactory, GpuSkuFactory, RegionFactory

BASE = datetime(2031, 3, 2, tzinfo=UTC)


def hours(n: int) -> datetime:
    return BASE + timedelta(hours=n)


@pytest.fixture
def pool(db):
    pool = CapacityPoolFactory(
        region=RegionFactory(code="us-east-1"),
        sku=GpuSkuFactory(code="h100-sxm", name="H100 SXM 80GB"),
    )
    capacity_change_add(
        pool=pool, gpus_delta=64, effective_at=hours(0), reason="hall A", actor=None
    )
    return pool


@pytest.fixture
def received():
    """Collect what the capacity signals send."""
    seen = {"freed": [], "at_risk": []}

    def on_freed(sender, pool_id, **kwargs):
        seen["freed"].append(pool_id)

    def on_at_risk(sender, hold_ids, **kwargs):
        seen["at_risk"].append(list(hold_ids))

    capacity_freed.connect(on_freed, dispatch_uid="test-freed")
    holds_at_risk.connect(on_at_risk, dispatch_uid="test-at-risk")
    yield seen
    capacity_freed.disconnect(dispatch_uid="test-freed")
    holds_at_risk.disconnect(dispatch_uid="test-at-risk")


def place(pool, org, count, start, end, **kwargs):
    kwargs.setdefault("kind", "reservation")
    return hold_place(
        pool=pool,
        organization=org,
        gpu_count=count,
        starts_at=hours(start),
        ends_at=hours(end),
        **kwargs,
    )


# --- hold_place ------------------------------------------------------------------------------
def test_hold_place_holds_gpus_and_records_audit(pool, org, owner):
    hold = place(pool, org, 48, 0, 10, actor=owner)
    assert pool_free_min(pool=pool, starts_at=hours(0), ends_at=hours(10)) == 16
    event = AuditEvent.all_objects.get(action="capacity.hold_placed")
    assert event.organization == org
    assert event.actor == owner
    assert event.target_id == str(hold.pk)
    assert event.changes["gpu_count"] == 48


def test_hold_place_refuses_what_does_not_fit_and_names_the_free_figure(pool, org):
    place(pool, org, 48, 0, 10)
    with pytest.raises(InsufficientCapacity) as error:
        place(pool, org, 24, 5, 20)
    assert error.value.free == 16
    assert error.value.field == "gpu_count"
    assert "Only 16 H100 SXM 80GB GPUs are free in us-east-1" in error.value.message
    assert isinstance(error.value, ConflictError)
    assert CapacityHold.all_objects.count() == 1


def test_hold_place_fits_exactly_back_to_back(pool, org):
    place(pool, org, 64, 0, 10)
    place(pool, org, 64, 10, 20)
    assert CapacityHold.all_objects.count() == 2


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"gpu_count": 0}, "gpu_count"),
        ({"gpu_count": 12}, "gpu_count"),  # not whole nodes of 8
        ({"ends_at": hours(0)}, "ends_at"),
        ({"kind": "lease"}, "kind"),
        ({"kind": "offer"}, "expires_at"),  # an offer needs an expiry
        ({"expires_at": hours(1)}, "expires_at"),  # a reservation does not expire
    ],
)
def test_hold_place_bad_input_names_the_field_and_writes_nothing(pool, org, overrides, field):
    kwargs = {
        "pool": pool,
        "organization": org,
        "gpu_count": 8,
        "starts_at": hours(0),
        "ends_at": hours(10),
        "kind": "reservation",
    }
    with pytest.raises(DomainError) as error:
        hold_place(**{**kwargs, **overrides})
    assert error.value.field == field
    assert not CapacityHold.all_objects.exists()
    assert not AuditEvent.all_objects.filter(action="capacity.hold_placed").exists()


def test_hold_place_refuses_an_inactive_pool(pool, org):
    pool.active = False
    pool.save()
    with pytest.raises(DomainError) as error:
        place(pool, org, 8, 0, 10)
    assert error.value.field == "pool"


def test_a_lapsed_offer_holds_nothing(pool, org):
    offer = place(
        pool, org, 64, 0, 10, kind="offer", expires_at=timezone.now() + timedelta(hours=1)
    )
    with pytest.raises(InsufficientCapacity):
        place(pool, org, 8, 0, 10)
    CapacityHold.all_objects.filter(pk=offer.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    place(pool, org, 64, 0, 10)


# --- hold_release ----------------------------------------------------------------------------
def test_hold_release_frees_the_gpus_once_and_signals_after_commit(
    pool, org, received, django_capture_on_commit_callbacks
):
    hold = place(pool, org, 64, 0, 10)
    with django_capture_on_commit_callbacks(execute=True):
        hold_release(hold=hold)
    assert received["freed"] == [pool.pk]
    hold.refresh_from_db()
    assert hold.released_at is not None
    assert pool_free_min(pool=pool, starts_at=hours(0), ends_at=hours(10)) == 64

    released_at = hold.released_at
    with django_capture_on_commit_callbacks(execute=True):
        again = hold_release(hold=hold)
    assert again.released_at == released_at
    assert received["freed"] == [pool.pk]
    assert AuditEvent.all_objects.filter(action="capacity.hold_released").count() == 1


def test_signals_wait_for_the_commit(pool, org, received, django_capture_on_commit_callbacks):
    hold = place(pool, org, 64, 0, 10)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        hold_release(hold=hold)
    assert received["freed"] == []
    assert len(callbacks) == 1


# --- hold_confirm_offer ----------------------------------------------------------------------
def test_confirming_a_live_offer_makes_it_a_reservation(pool, org):
    offer = place(
        pool, org, 32, 0, 10, kind="offer", expires_at=timezone.now() + timedelta(hours=1)
    )
    hold = hold_confirm_offer(hold=offer)
    assert (hold.kind, hold.expires_at) == ("reservation", None)
    assert hold_confirm_offer(hold=hold).kind == "reservation"
    assert AuditEvent.all_objects.filter(action="capacity.offer_confirmed").count() == 1


def test_confirming_a_lapsed_or_released_offer_is_refused(pool, org):
    offer = place(
        pool, org, 32, 0, 10, kind="offer", expires_at=timezone.now() + timedelta(hours=1)
    )
    CapacityHold.all_objects.filter(pk=offer.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(ConflictError, match="lapsed"):
        hold_confirm_offer(hold=offer)
    other = place(
        pool, org, 32, 0, 10, kind="offer", expires_at=timezone.now() + timedelta(hours=1)
    )
    hold_release(hold=other)
    with pytest.raises(ConflictError, match="withdrawn"):
        hold_confirm_offer(hold=other)
    assert set(CapacityHold.all_objects.values_list("kind", flat=True)) == {"offer"}


# --- hold_resize -----------------------------------------------------------------------------
def test_extension_is_checked_against_the_pool_without_the_hold_itself(pool, org):
    hold = place(pool, org, 48, 0, 10)
    place(pool, org, 32, 12, 20)
    hold = hold_resize(hold=hold, ends_at=hours(12))  # fits: the hold does not block itself
    assert hold.ends_at == hours(12)
    with pytest.raises(InsufficientCapacity) as error:
        hold_resize(hold=hold, ends_at=hours(14))
    assert error.value.free == 32
    hold.refresh_from_db()
    assert hold.ends_at == hours(12)


def test_early_end_and_fewer_gpus_free_capacity(
    pool, org, received, django_capture_on_commit_callbacks
):
    hold = place(pool, org, 48, 0, 10)
    with django_capture_on_commit_callbacks(execute=True):
        hold_resize(hold=hold, gpu_count=16, ends_at=hours(6))
    assert received["freed"] == [pool.pk]
    assert pool_free_min(pool=pool, starts_at=hours(0), ends_at=hours(6)) == 48
    assert pool_free_min(pool=pool, starts_at=hours(6), ends_at=hours(10)) == 64
    event = AuditEvent.all_objects.get(action="capacity.hold_resized")
    assert event.changes["gpu_count"] == [48, 16]


def test_resize_refuses_released_holds_and_bad_windows(pool, org):
    hold = place(pool, org, 8, 0, 10)
    with pytest.raises(DomainError) as error:
        hold_resize(hold=hold, ends_at=hours(0))
    assert error.value.field == "ends_at"
    hold_release(hold=hold)
    with pytest.raises(ConflictError, match="released"):
        hold_resize(hold=hold, ends_at=hours(5))


# --- capacity_change_add ---------------------------------------------------------------------
def test_adding_capacity_signals_capacity_freed(
    pool, received, capacity_planner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        change = capacity_change_add(
            pool=pool,
            gpus_delta=256,
            effective_at=hours(100),
            reason="hall B online",
            actor=capacity_planner,
        )
    assert received["freed"] == [pool.pk]
    assert change.created_by == capacity_planner
    assert pool_capacity_at(pool=pool, at=hours(100)) == 320
    event = AuditEvent.all_objects.get(action="capacity.changed", target_id=str(change.pk))
    assert event.organization is None
    assert event.changes["gpus_delta"] == 256


def test_a_reduction_below_what_is_held_is_refused(pool, org, capacity_planner):
    place(pool, org, 48, 10, 20)
    with pytest.raises(InsufficientCapacity) as error:
        capacity_change_add(
            pool=pool,
            gpus_delta=-32,
            effective_at=hours(15),
            ends_at=hours(30),
            reason="maintenance",
            actor=capacity_planner,
        )
    assert error.value.free == 16
    assert error.value.field == "gpus_delta"
    assert CapacityChange.objects.count() == 1
    # The same reduction after the hold ends is fine.
    capacity_change_add(
        pool=pool,
        gpus_delta=-32,
        effective_at=hours(20),
        ends_at=hours(30),
        reason="maintenance",
        actor=capacity_planner,
    )
    assert pool_capacity_at(pool=pool, at=hours(25)) == 32
    assert pool_capacity_at(pool=pool, at=hours(30)) == 64


def test_a_permanent_reduction_is_checked_to_the_end_of_time(pool, org, capacity_planner):
    place(pool, org, 64, 5000, 5010)
    with pytest.raises(InsufficientCapacity):
        capacity_change_add(
            pool=pool, gpus_delta=-8, effective_at=hours(0), reason="decommission", actor=None
        )


def test_flag_mode_applies_the_reduction_and_flags_newest_holds_first(
    pool, org, other_org, capacity_planner, received, django_capture_on_commit_callbacks
):
    first = place(pool, org, 32, 0, 20)
    second = place(pool, other_org, 16, 0, 20)
    third = place(pool, org, 16, 0, 20)
    outside = place(pool, org, 64, 30, 40)
    with django_capture_on_commit_callbacks(execute=True):
        capacity_change_add(
            pool=pool,
            gpus_delta=-24,
            effective_at=hours(5),
            ends_at=hours(10),
            reason="power work",
            actor=capacity_planner,
            mode="flag",
        )
    flagged = set(CapacityHold.all_objects.filter(at_risk=True).values_list("pk", flat=True))
    # 24 GPUs short: the newest hold (16) is not enough, the one before it (16) covers it.
    assert flagged == {third.pk, second.pk}
    assert first.pk not in flagged and outside.pk not in flagged
    assert [sorted(ids) for ids in received["at_risk"]] == [sorted([second.pk, third.pk])]
    assert received["freed"] == []
    events = AuditEvent.all_objects.filter(action="capacity.hold_at_risk")
    assert {(e.organization_id, e.target_id) for e in events} == {
        (other_org.pk, str(second.pk)),
        (org.pk, str(third.pk)),
    }
    assert pool_capacity_at(pool=pool, at=hours(5)) == 40


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"gpus_delta": 0}, "gpus_delta"),
        ({"ends_at": hours(0)}, "ends_at"),
        ({"reason": "  "}, "reason"),
        ({"mode": "force"}, "mode"),
    ],
)
def test_capacity_change_bad_input_names_the_field(pool, overrides, field):
    kwargs = {
        "pool": pool,
        "gpus_delta": 8,
        "effective_at": hours(0),
        "reason": "x",
        "actor": None,
    }
    with pytest.raises(DomainError) as error:
        capacity_change_add(**{**kwargs, **overrides})
    assert error.value.field == field
    assert CapacityChange.objects.count() == 1


def test_holds_in_one_pool_do_not_touch_another(pool, org):
    other = CapacityPoolFactory(region=RegionFactory(code="us-west-1"), sku=pool.sku)
    capacity_change_add(pool=other, gpus_delta=8, effective_at=hours(0), reason="x", actor=None)
    place(pool, org, 64, 0, 10)
    place(other, org, 8, 0, 10)
    assert pool_free_min(pool=pool, starts_at=hours(0), ends_at=hours(10)) == 0


def test_holds_at_risk_are_cleared_oldest_first_when_gpus_come_back(pool, org, capacity_planner):
    first = place(pool, org, 32, 0, 20)
    second = place(pool, org, 16, 0, 20)
    third = place(pool, org, 16, 0, 20)
    capacity_change_add(
        pool=pool,
        gpus_delta=-24,
        effective_at=hours(5),
        ends_at=hours(10),
        reason="power work",
        actor=capacity_planner,
        mode="flag",
    )

    def at_risk():
        return set(CapacityHold.all_objects.filter(at_risk=True).values_list("pk", flat=True))

    assert at_risk() == {second.pk, third.pk}

    # 8 GPUs back: room for the older of the two (16 = 48 - 32), not for both.
    capacity_change_add(
        pool=pool,
        gpus_delta=8,
        effective_at=hours(5),
        ends_at=hours(10),
        reason="spare rack",
        actor=capacity_planner,
    )
    assert at_risk() == {third.pk}
    assert AuditEvent.all_objects.filter(
        action="capacity.hold_backed", target_id=str(second.pk)
    ).exists()

    hold_release(hold=first)
    assert at_risk() == set()
