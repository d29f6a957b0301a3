"""Many holds racing for one pool: the pool lock keeps every instant within capacity."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from quotas.capacity import InsufficientCapacity, capacity_change_add, hold_place
from quotas.models import CapacityHold
from quotas.selectors.availability import pool_fits, pool_levels
from tests.factories import CapacityPoolFactory, GpuSkuFactory, OrganizationFactory

BASE = datetime(2031, 3, 2, tzinfo=UTC)
RACERS = 50


def hours(n: int) -> datetime:
    return BASE + timedelta(hours=n)


def race(calls):
    """Run every call at once in its own thread and database connection; return the outcomes
    in the order of ``calls``: the hold, or the InsufficientCapacity raised."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=30)
            outcomes[index] = call()
        except InsufficientCapacity as refused:
            outcomes[index] = refused
        except Exception as unexpected:  # reported by the assertion below
            outcomes[index] = unexpected
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    unexpected = [o for o in outcomes if not isinstance(o, (CapacityHold, InsufficientCapacity))]
    assert unexpected == []
    return outcomes


def assert_never_over_capacity(pool, start, end):
    levels = pool_levels(pool=pool, starts_at=start, ends_at=end)
    over = [(lv.starts_at, lv.capacity, lv.held) for lv in levels if lv.held > lv.capacity]
    assert over == []


@pytest.fixture
def pool(transactional_db):
    pool = CapacityPoolFactory(sku=GpuSkuFactory(gpus_per_node=8))
    capacity_change_add(pool=pool, gpus_delta=160, effective_at=hours(0), reason="x", actor=None)
    return pool


@pytest.fixture
def organizations(transactional_db):
    return [OrganizationFactory(slug=f"racer-{n}") for n in range(5)]


def test_fifty_holds_for_one_window_grant_exactly_what_fits(pool, organizations):
    # 50 x 8 GPUs asked over the same window of a 160-GPU pool: exactly 20 fit.
    calls = [
        lambda org=organizations[n % 5]: hold_place(
            pool=pool,
            organization=org,
            gpu_count=8,
            starts_at=hours(10),
            ends_at=hours(20),
            kind="reservation",
        )
        for n in range(RACERS)
    ]
    outcomes = race(calls)
    granted = [o for o in outcomes if isinstance(o, CapacityHold)]
    refused = [o for o in outcomes if isinstance(o, InsufficientCapacity)]
    assert (len(granted), len(refused)) == (20, 30)
    assert CapacityHold.all_objects.filter(pool=pool).count() == 20
    assert {r.free for r in refused} == {0}
    assert_never_over_capacity(pool, hours(0), hours(40))


def test_fifty_overlapping_holds_never_overcommit_and_refusals_really_did_not_fit(
    pool, organizations
):
    # Staggered windows of different sizes: the result depends on the order, but no instant
    # may be over capacity, and every refused hold must not fit what was granted.
    asks = [(8 * (1 + n % 4), n % 12, n % 12 + 4 + n % 7) for n in range(RACERS)]
    calls = [
        lambda count=count, start=start, end=end, org=organizations[n % 5]: hold_place(
            pool=pool,
            organization=org,
            gpu_count=count,
            starts_at=hours(start),
            ends_at=hours(end),
            kind="reservation",
        )
        for n, (count, start, end) in enumerate(asks)
    ]
    outcomes = race(calls)
    granted = [o for o in outcomes if isinstance(o, CapacityHold)]
    assert 0 < len(granted) < RACERS
    assert_never_over_capacity(pool, hours(0), hours(40))
    for (count, start, end), outcome in zip(asks, outcomes, strict=True):
        if isinstance(outcome, InsufficientCapacity):
            assert not pool_fits(
                pool=pool, gpu_count=count, starts_at=hours(start), ends_at=hours(end)
            )
