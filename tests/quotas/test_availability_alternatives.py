"""``pool_alternatives`` picks the SKU's other pools inside the statement that reads their
levels and builds the pools from its rows. Here it is held to what it did as two queries: the
pools from the ORM (active pool, region and SKU of that SKU, less the excluded one), each one's
free minimum from the brute-force model, the fitting ones most free first, then by region."""

from datetime import timedelta

from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quotas.models import CapacityPool
from quotas.selectors.availability import pool_alternatives
from tests.factories import CapacityPoolFactory, RegionFactory
from tests.quotas.test_availability import (
    GRID,
    add_change,
    add_hold,
    brute_free_min,
    changes_st,
    holds_st,
    hours,
)

REGIONS = ("us-east-1", "us-west-1", "eu-central-1", "eu-west-2", "ap-south-1")

pool_st = st.tuples(
    st.booleans(),  # region active
    st.booleans(),  # pool active
    st.sampled_from([0, 1]),  # which SKU
    st.integers(0, 80),  # installed from hour 0, so that most pools have room to offer
    changes_st,
    holds_st,
)


def make_pools(skus, org, pools):
    """Each drawn pool in a region of its own (REGIONS in order) with its capacity changes and
    holds; (pool, changes, holds) for each, the changes with the base capacity first."""
    made = []
    for code, (region_active, pool_active, sku_index, base, changes, holds) in zip(
        REGIONS, pools, strict=False
    ):
        if base:
            changes = [(0, None, base), *changes]
        region = RegionFactory(code=code, active=region_active)
        pool = CapacityPoolFactory(region=region, sku=skus[sku_index], active=pool_active)
        for eff, dur, delta in changes:
            add_change(pool, delta, eff, None if dur is None else eff + dur)
        for start, dur, gpus, state, _ in holds:
            add_hold(pool, org, gpus, start, start + dur, state=state)
        made.append((pool, changes, holds))
    return made


def expected_alternatives(*, sku, gpu_count, starts, ends, exclude_pool, model):
    """The two-query answer: the ORM's pools, the model's free minimum for each."""
    pools = CapacityPool.objects.filter(
        sku=sku, active=True, region__active=True, sku__active=True
    ).select_related("region", "sku")
    if exclude_pool is not None:
        pools = pools.exclude(pk=exclude_pool.pk)
    fitting = []
    for pool in pools:
        changes, holds = model[pool.pk]
        free = brute_free_min(changes, holds, starts, ends)
        if free >= gpu_count:
            fitting.append((pool, free))
    fitting.sort(key=lambda pf: (-pf[1], pf[0].region.code))
    return fitting


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    pools=st.lists(pool_st, min_size=1, max_size=len(REGIONS)),
    second_sku_active=st.booleans(),
    window_start=st.integers(0, GRID),
    window_length=st.integers(1, 30),
    gpu_count=st.integers(1, 60),
    excluded=st.one_of(st.none(), st.integers(0, len(REGIONS) - 1)),
)
def test_alternatives_match_the_two_query_answer(
    skus,
    org,
    django_assert_num_queries,
    pools,
    second_sku_active,
    window_start,
    window_length,
    gpu_count,
    excluded,
):
    with transaction.atomic():
        skus[1].active = second_sku_active
        skus[1].save()
        built = make_pools(skus, org, pools)
        made = [pool for pool, _, _ in built]
        # Alternatives take no exclusions of holds: model every hold as counted.
        model = {
            pool.pk: (changes, [(s, d, g, st_, False) for s, d, g, st_, _ in holds])
            for pool, changes, holds in built
        }
        exclude_pool = made[excluded] if excluded is not None and excluded < len(made) else None
        window_end = window_start + window_length

        for sku in skus:
            with django_assert_num_queries(1):
                found = pool_alternatives(
                    sku=sku,
                    gpu_count=gpu_count,
                    starts_at=hours(window_start),
                    ends_at=hours(window_end),
                    exclude_pool=exclude_pool,
                )
            expected = expected_alternatives(
                sku=sku,
                gpu_count=gpu_count,
                starts=window_start,
                ends=window_end,
                exclude_pool=exclude_pool,
                model=model,
            )
            assert [(a.pool, a.free_min) for a in found] == expected
            # The pools come with their region and SKU, as select_related gave them.
            with django_assert_num_queries(0):
                for a, (pool, _) in zip(found, expected, strict=True):
                    assert (a.region.code, a.region.name, a.region.active) == (
                        pool.region.code,
                        pool.region.name,
                        pool.region.active,
                    )
                    assert a.sku == sku
                    assert a.sku.list_price_per_gpu_hour == pool.sku.list_price_per_gpu_hour
                    assert a.pool.active is True
        transaction.set_rollback(True)


def test_an_id_excludes_its_pool_as_the_pool_does(skus, org):
    pools = [
        CapacityPoolFactory(region=RegionFactory(code=code), sku=skus[0])
        for code in ("us-east-1", "us-west-1")
    ]
    for pool in pools:
        add_change(pool, 64, 0)
    window = {"starts_at": hours(0), "ends_at": hours(0) + timedelta(hours=5)}
    by_pool = pool_alternatives(sku=skus[0], gpu_count=8, exclude_pool=pools[0], **window)
    by_id = pool_alternatives(sku=skus[0].pk, gpu_count=8, exclude_pool=pools[0].pk, **window)
    assert [a.pool for a in by_pool] == [a.pool for a in by_id] == [pools[1]]
