from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.errors import DomainError
from quotas.models import CapacityChange, CapacityHold
from quotas.selectors.availability import (
    pool_alternatives,
    pool_capacity_at,
    pool_earliest_start,
    pool_fits,
    pool_free_min,
    pool_held_at,
    pool_levels,
    pool_summary_list,
    pool_timeline,
)
from tests.factories import CapacityPoolFactory, GpuSkuFactory, RegionFactory

BASE = datetime(2031, 3, 2, tzinfo=UTC)


def hours(n: int) -> datetime:
    return BASE + timedelta(hours=n)


def add_change(pool, delta, start, end=None):
    return CapacityChange.objects.create(
        pool=pool,
        gpus_delta=delta,
        effective_at=hours(start),
        ends_at=None if end is None else hours(end),
        reason="test",
    )


def add_hold(pool, organization, count, start, end, *, state="reservation"):
    """state: reservation, offer (live), lapsed (offer past its expiry), released."""
    now = timezone.now()
    return CapacityHold.all_objects.create(
        pool=pool,
        organization=organization,
        kind="reservation" if state in ("reservation", "released") else "offer",
        gpu_count=count,
        starts_at=hours(start),
        ends_at=hours(end),
        expires_at={"offer": now + timedelta(days=1), "lapsed": now - timedelta(minutes=1)}.get(
            state
        ),
        released_at=now if state == "released" else None,
    )


@pytest.fixture
def pool(db):
    return CapacityPoolFactory(region=RegionFactory(code="us-east-1"), sku=GpuSkuFactory())


def test_free_min_counts_capacity_steps_and_live_holds_only(pool, org):
    add_change(pool, 100, 0)
    add_change(pool, -40, 10, 20)  # maintenance
    add_hold(pool, org, 30, 5, 15)
    add_hold(pool, org, 50, 5, 15, state="released")
    add_hold(pool, org, 50, 5, 15, state="lapsed")
    add_hold(pool, org, 8, 12, 14, state="offer")

    assert pool_free_min(pool=pool, starts_at=hours(0), ends_at=hours(5)) == 100
    assert pool_free_min(pool=pool, starts_at=hours(0), ends_at=hours(11)) == 30
    assert pool_free_min(pool=pool, starts_at=hours(0), ends_at=hours(30)) == 22
    assert pool_free_min(pool=pool, starts_at=hours(20), ends_at=hours(30)) == 100


def test_window_edges_are_half_open(pool, org):
    add_change(pool, 64, 0)
    add_hold(pool, org, 64, 10, 20)
    # A hold ending at the window start, or starting at its end, does not overlap it.
    assert pool_free_min(pool=pool, starts_at=hours(20), ends_at=hours(30)) == 64
    assert pool_free_min(pool=pool, starts_at=hours(0), ends_at=hours(10)) == 64
    assert pool_free_min(pool=pool, starts_at=hours(19), ends_at=hours(21)) == 0
    # Capacity arriving at the window end is not there during the window.
    add_change(pool, 16, 30)
    assert pool_free_min(pool=pool, starts_at=hours(25), ends_at=hours(30)) == 64
    assert pool_free_min(pool=pool, starts_at=hours(30), ends_at=hours(31)) == 80


def test_free_before_any_capacity_is_zero(pool):
    add_change(pool, 64, 10)
    assert pool_free_min(pool=pool, starts_at=hours(0), ends_at=hours(20)) == 0
    assert not pool_fits(pool=pool, gpu_count=1, starts_at=hours(0), ends_at=hours(20))
    assert pool_fits(pool=pool, gpu_count=64, starts_at=hours(10), ends_at=hours(20))


def test_exclude_hold_ids_ignores_those_holds(pool, org):
    add_change(pool, 64, 0)
    hold = add_hold(pool, org, 48, 0, 10)
    assert not pool_fits(pool=pool, gpu_count=32, starts_at=hours(0), ends_at=hours(12))
    assert pool_fits(
        pool=pool,
        gpu_count=64,
        starts_at=hours(0),
        ends_at=hours(12),
        exclude_hold_ids=[hold.pk],
    )


def test_earliest_start_waits_for_a_hold_to_end(pool, org):
    add_change(pool, 64, 0)
    add_hold(pool, org, 48, 0, 10)
    add_hold(pool, org, 32, 14, 20)
    kwargs = {"pool": pool, "not_before": hours(0), "horizon": timedelta(days=2)}
    assert pool_earliest_start(gpu_count=16, duration=timedelta(hours=30), **kwargs) == hours(0)
    # 32 GPUs for 4 hours: only the gap [10, 14) or after 20 works; the gap is exactly 4 hours.
    assert pool_earliest_start(gpu_count=32, duration=timedelta(hours=4), **kwargs) == hours(10)
    assert pool_earliest_start(gpu_count=48, duration=timedelta(hours=5), **kwargs) == hours(20)
    assert pool_earliest_start(gpu_count=65, duration=timedelta(hours=1), **kwargs) is None


def test_earliest_start_searches_past_its_first_steps(pool, org):
    """The search looks at the asked start, then a month, then the horizon: an answer in each
    stretch, and one right after a step's end, is still the earliest."""
    add_change(pool, 64, 0)
    month = 31 * 24
    add_hold(pool, org, 64, 0, 10)
    add_hold(pool, org, 64, 12, month + 1)
    add_hold(pool, org, 64, month + 3, 60 * 24)
    kwargs = {"pool": pool, "not_before": hours(0), "horizon": timedelta(days=365)}
    assert pool_earliest_start(gpu_count=8, duration=timedelta(hours=2), **kwargs) == hours(10)
    assert pool_earliest_start(gpu_count=8, duration=timedelta(hours=3), **kwargs) == hours(60 * 24)
    assert pool_earliest_start(
        gpu_count=8, duration=timedelta(hours=2), **{**kwargs, "not_before": hours(11)}
    ) == hours(month + 1)


def test_earliest_start_stays_inside_the_horizon(pool, org):
    add_change(pool, 64, 0)
    add_hold(pool, org, 64, 0, 10)
    common = {"pool": pool, "gpu_count": 8, "duration": timedelta(hours=1)}
    assert pool_earliest_start(not_before=hours(0), horizon=timedelta(hours=10), **common) is None
    assert pool_earliest_start(not_before=hours(0), horizon=timedelta(hours=11), **common) == hours(
        10
    )


def test_earliest_start_with_a_one_instant_horizon_looks_at_not_before_alone(pool, org):
    add_change(pool, 64, 0)
    add_hold(pool, org, 64, 2, 4)
    common = {"pool": pool, "gpu_count": 8, "horizon": timedelta(microseconds=1)}
    assert pool_earliest_start(not_before=hours(0), duration=timedelta(hours=2), **common) == (
        hours(0)
    )
    # A microsecond more and the window reaches the hold; the next candidate (hour 4) is
    # outside the horizon.
    late = timedelta(hours=2, microseconds=1)
    assert pool_earliest_start(not_before=hours(0), duration=late, **common) is None
    assert pool_earliest_start(
        not_before=hours(0), duration=late, **{**common, "horizon": timedelta(hours=5)}
    ) == hours(4)
    # not_before inside the hold: it does not fit, and nothing else is a candidate.
    assert pool_earliest_start(not_before=hours(3), duration=timedelta(hours=1), **common) is None


def test_capacity_and_held_at_an_instant(pool, org):
    add_change(pool, 100, 0)
    add_change(pool, -40, 10, 20)
    add_hold(pool, org, 30, 5, 15)
    assert pool_capacity_at(pool=pool, at=hours(10)) == 60
    assert pool_capacity_at(pool=pool, at=hours(20)) == 100
    assert pool_held_at(pool=pool, at=hours(14)) == 30
    assert pool_held_at(pool=pool, at=hours(15)) == 0


def test_timeline_shows_each_day_worst_instant(pool, org):
    add_change(pool, 100, 0)
    add_change(pool, -40, 30, 32)  # two hours of maintenance on day 2
    add_hold(pool, org, 30, 5, 50)
    days = pool_timeline(pool=pool, start=BASE.date(), end=date(2031, 3, 5))
    assert [(d.day.day, d.capacity, d.held, d.free) for d in days] == [
        (2, 100, 30, 70),
        (3, 60, 30, 30),
        (4, 100, 30, 70),
    ]


def test_alternatives_lists_other_regions_that_fit_most_free_first(pool, org):
    add_change(pool, 64, 0)
    roomy = CapacityPoolFactory(region=RegionFactory(code="us-west-1"), sku=pool.sku)
    add_change(roomy, 128, 0)
    tight = CapacityPoolFactory(region=RegionFactory(code="us-central-1"), sku=pool.sku)
    add_change(tight, 64, 0)
    add_hold(tight, org, 48, 0, 10)
    other_sku = CapacityPoolFactory(region=RegionFactory(code="us-east-2"), sku=GpuSkuFactory())
    add_change(other_sku, 512, 0)
    closed = CapacityPoolFactory(region=RegionFactory(code="us-west-2", active=False), sku=pool.sku)
    add_change(closed, 512, 0)

    found = pool_alternatives(
        sku=pool.sku, gpu_count=16, starts_at=hours(0), ends_at=hours(5), exclude_pool=pool
    )
    assert [(a.region.code, a.free_min) for a in found] == [
        ("us-west-1", 128),
        ("us-central-1", 16),
    ]
    found = pool_alternatives(sku=pool.sku, gpu_count=32, starts_at=hours(0), ends_at=hours(5))
    assert [a.region.code for a in found] == ["us-west-1", "us-east-1"]


def test_alternatives_take_a_fixed_number_of_queries(pool, django_assert_num_queries):
    for code in ("a-1", "a-2", "a-3", "a-4"):
        add_change(CapacityPoolFactory(region=RegionFactory(code=code), sku=pool.sku), 64, 0)
    with django_assert_num_queries(1):
        found = pool_alternatives(sku=pool.sku, gpu_count=8, starts_at=hours(0), ends_at=hours(5))
    with django_assert_num_queries(0):
        assert [(a.region.code, a.sku, a.free_min) for a in found] == [
            (code, pool.sku, 64) for code in ("a-1", "a-2", "a-3", "a-4")
        ]


def test_an_empty_window_is_refused(pool):
    with pytest.raises(DomainError) as error:
        pool_free_min(pool=pool, starts_at=hours(5), ends_at=hours(5))
    assert error.value.field == "ends_at"


# --- Property test against a brute-force model ----------------------------------------------
GRID = 48  # every generated time is a whole hour in [0, GRID + 30]

changes_st = st.lists(
    st.tuples(
        st.integers(0, GRID),  # effective hour
        st.one_of(st.none(), st.integers(1, 24)),  # duration, None = permanent
        st.integers(-30, 60).filter(bool),  # delta
    ),
    min_size=1,
    max_size=5,
)
holds_st = st.lists(
    st.tuples(
        st.integers(0, GRID - 1),  # start hour
        st.integers(1, 24),  # duration
        st.integers(1, 40),  # GPUs
        st.sampled_from(["reservation", "offer", "lapsed", "released"]),
        st.booleans(),  # excluded from the query
    ),
    max_size=6,
)


def brute_free(changes, holds, t):
    """Free GPUs at whole hour t, straight from the definition."""
    capacity = sum(
        delta for eff, dur, delta in changes if eff <= t and (dur is None or t < eff + dur)
    )
    held = sum(
        count
        for start, dur, count, state, excluded in holds
        if state in ("reservation", "offer") and not excluded and start <= t < start + dur
    )
    return capacity - held


def brute_day(changes, holds, day):
    """(least capacity, most held, least free) over the whole hours of one day, no exclusions."""
    holds = [(s, d, g, state, False) for s, d, g, state, _ in holds]
    levels = []
    for t in range(24 * day, 24 * day + 24):
        capacity = sum(
            delta for eff, dur, delta in changes if eff <= t and (dur is None or t < eff + dur)
        )
        levels.append((capacity, capacity - brute_free(changes, holds, t)))
    return (
        min(c for c, _ in levels),
        max(h for _, h in levels),
        min(c - h for c, h in levels),
    )


def brute_free_min(changes, holds, start, end):
    # Every event is on a whole hour, so free GPUs are constant between whole hours.
    return min(brute_free(changes, holds, t) for t in range(start, end))


def brute_earliest(changes, holds, count, duration, not_before, horizon):
    for start in range(not_before, not_before + horizon):
        if brute_free_min(changes, holds, start, start + duration) >= count:
            return start
    return None


@settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    changes=changes_st,
    holds=holds_st,
    window_start=st.integers(0, GRID),
    window_length=st.integers(1, 30),
    count=st.integers(1, 80),
    horizon=st.integers(1, 40),
)
def test_availability_matches_brute_force_model(
    pool, org, changes, holds, window_start, window_length, count, horizon
):
    with transaction.atomic():
        for eff, dur, delta in changes:
            add_change(pool, delta, eff, None if dur is None else eff + dur)
        excluded = []
        for start, dur, gpus, state, exclude in holds:
            hold = add_hold(pool, org, gpus, start, start + dur, state=state)
            if exclude:
                excluded.append(hold.pk)
        window_end = window_start + window_length

        expected = brute_free_min(changes, holds, window_start, window_end)
        window = {"starts_at": hours(window_start), "ends_at": hours(window_end)}
        assert pool_free_min(pool=pool, exclude_hold_ids=excluded, **window) == expected
        assert pool_fits(pool=pool, gpu_count=count, exclude_hold_ids=excluded, **window) == (
            expected >= count
        )

        levels = pool_levels(pool=pool, exclude_hold_ids=excluded, **window)
        for t in range(window_start, window_end):
            (level,) = [lv for lv in levels if lv.starts_at <= hours(t) < lv.ends_at]
            assert level.free == brute_free(changes, holds, t)

        # The timeline and earliest-start selectors take no exclusions: model them without.
        days = pool_timeline(pool=pool, start=BASE.date(), end=BASE.date() + timedelta(days=4))
        assert [(d.capacity, d.held, d.free) for d in days] == [
            brute_day(changes, holds, day) for day in range(4)
        ]

        unexcluded = [(s, d, g, st_, False) for s, d, g, st_, _ in holds]
        earliest = brute_earliest(changes, unexcluded, count, window_length, window_start, horizon)
        search = {
            "pool": pool,
            "gpu_count": count,
            "duration": timedelta(hours=window_length),
            "not_before": hours(window_start),
            "horizon": timedelta(hours=horizon),
        }
        expected_start = None if earliest is None else hours(earliest)
        assert pool_earliest_start(**search) == expected_start
        # The same search told the free minimum over its first window, as a caller that has
        # read it already tells it.
        known = brute_free_min(changes, unexcluded, window_start, window_end)
        assert pool_earliest_start(**search, free_min=known) == expected_start
        transaction.set_rollback(True)


def test_summary_list_gives_each_pool_its_start_and_worst_figures(
    pool, org, django_assert_num_queries
):
    add_change(pool, 100, 0)
    add_change(pool, -40, 10, 20)
    add_hold(pool, org, 30, 5, 15)
    other = CapacityPoolFactory(region=RegionFactory(code="us-west-1"), sku=pool.sku)
    add_change(other, 64, 0)
    CapacityPoolFactory(region=RegionFactory(code="us-west-2"), sku=pool.sku, active=False)
    with django_assert_num_queries(2):
        summaries = pool_summary_list(starts_at=hours(6), ends_at=hours(24))
    assert [
        (s.pool.region.code, s.capacity_at_start, s.held_at_start, s.capacity_min, s.held_max)
        for s in summaries
    ] == [("us-east-1", 100, 30, 60, 30), ("us-west-1", 64, 0, 64, 0)]
    assert [(s.free_at_start, s.free_min) for s in summaries] == [(70, 30), (64, 64)]
    only_west = pool_summary_list(starts_at=hours(6), ends_at=hours(24), region=other.region)
    assert [s.pool for s in only_west] == [other]
