"""``pool_availability`` gives the availability API's three answers (free minimum, earliest
start, other regions) from one statement when the GPUs fit at once. Here it is held to the
three selectors it replaced (``pool_free_min``, ``pool_earliest_start``,
``pool_alternatives``) on random pools, capacity changes and holds."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.errors import DomainError
from quotas.selectors.availability import (
    pool_alternatives,
    pool_availability,
    pool_earliest_start,
    pool_free_min,
)
from tests.factories import CapacityPoolFactory, RegionFactory
from tests.quotas.test_availability import GRID, add_change, add_hold, hours
from tests.quotas.test_availability_alternatives import REGIONS, make_pools, pool_st
from tests.quotas.test_availability_prepared import _prepared_statements as prepared_statements


def three_call_answer(*, pool, gpu_count, starts_at, ends_at, horizon):
    """What the availability API answered with three selectors, one statement each (the
    earliest start two when the start itself fits, since it asks the free minimum first)."""
    return (
        pool_free_min(pool=pool, starts_at=starts_at, ends_at=ends_at),
        pool_earliest_start(
            pool=pool,
            gpu_count=gpu_count,
            duration=ends_at - starts_at,
            not_before=starts_at,
            horizon=horizon,
        ),
        [
            (a.pool, a.free_min, a.region.code, a.sku.code)
            for a in pool_alternatives(
                sku=pool.sku,
                gpu_count=gpu_count,
                starts_at=starts_at,
                ends_at=ends_at,
                exclude_pool=pool,
            )
        ],
    )


def one_call_answer(**kwargs):
    answer = pool_availability(**kwargs)
    return (
        answer.free_min,
        answer.earliest_start,
        [(a.pool, a.free_min, a.region.code, a.sku.code) for a in answer.alternatives],
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    pools=st.lists(pool_st, min_size=1, max_size=len(REGIONS)),
    asked=st.integers(0, len(REGIONS) - 1),
    window_start=st.integers(0, GRID),
    window_length=st.integers(1, 30),
    gpu_count=st.integers(1, 60),
    horizon=st.integers(1, 40),
)
def test_the_answer_is_the_three_selectors_answers(
    skus, org, pools, asked, window_start, window_length, gpu_count, horizon
):
    with transaction.atomic():
        made = [pool for pool, _, _ in make_pools(skus, org, pools)]
        # The asked pool may be inactive, in an inactive region, or alone with its SKU.
        pool = made[asked % len(made)]
        ask = {
            "pool": pool,
            "gpu_count": gpu_count,
            "starts_at": hours(window_start),
            "ends_at": hours(window_start + window_length),
            "horizon": timedelta(hours=horizon),
        }
        expected = three_call_answer(**ask)
        with CaptureQueriesContext(connection) as queries:
            assert one_call_answer(**ask) == expected
        # One statement when the GPUs fit at once; otherwise the search's own statements.
        fits = expected[0] >= gpu_count
        assert (len(queries) == 1) == fits
        transaction.set_rollback(True)


def test_fits_at_once_in_one_statement(skus, org, django_assert_num_queries):
    pool = CapacityPoolFactory(region=RegionFactory(code="us-east-1"), sku=skus[0])
    other = CapacityPoolFactory(region=RegionFactory(code="us-west-1"), sku=skus[0])
    add_change(pool, 64, 0)
    add_change(other, 128, 0)
    add_hold(pool, org, 40, 2, 6)
    ask = {"pool": pool, "starts_at": hours(0), "ends_at": hours(8), "horizon": timedelta(days=30)}
    with django_assert_num_queries(1):
        answer = pool_availability(gpu_count=16, **ask)
    assert (answer.free_min, answer.earliest_start) == (24, hours(0))
    assert [(a.pool, a.free_min) for a in answer.alternatives] == [(other, 128)]
    # Short at once: the search finds the start after the hold, in its own statement.
    with django_assert_num_queries(2):
        answer = pool_availability(gpu_count=48, **ask)
    assert (answer.free_min, answer.earliest_start) == (24, hours(6))
    assert [(a.pool, a.free_min) for a in answer.alternatives] == [(other, 128)]


def test_bad_asks_are_refused_as_the_selectors_refuse_them(skus):
    pool = CapacityPoolFactory(region=RegionFactory(code="us-east-1"), sku=skus[0])
    window = {"starts_at": hours(0), "ends_at": hours(8), "horizon": timedelta(days=1)}
    with pytest.raises(DomainError, match="at least one GPU"):
        pool_availability(pool=pool, gpu_count=0, **window)
    with pytest.raises(DomainError, match="end must be after"):
        pool_availability(pool=pool, gpu_count=1, **{**window, "ends_at": hours(0)})
    with pytest.raises(DomainError, match="horizon must be positive"):
        pool_availability(pool=pool, gpu_count=1, **{**window, "horizon": timedelta(0)})


def test_the_statement_is_prepared_once_and_answers_alike_without(skus, org, monkeypatch):
    pool = CapacityPoolFactory(region=RegionFactory(code="us-east-1"), sku=skus[0])
    CapacityPoolFactory(region=RegionFactory(code="us-west-1"), sku=skus[0])
    add_change(pool, 64, 0)
    add_hold(pool, org, 40, 2, 6)
    ask = {
        "pool": pool,
        "gpu_count": 16,
        "starts_at": hours(0),
        "ends_at": hours(8),
        "horizon": timedelta(days=30),
    }
    before = prepared_statements()
    prepared = one_call_answer(**ask)
    assert len(prepared_statements()) == len(before) + 1
    assert one_call_answer(**ask) == prepared
    assert len(prepared_statements()) == len(before) + 1  # used again, not prepared again
    # Behind a transaction pooler (DISABLE_SERVER_SIDE_CURSORS) nothing is prepared.
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    assert one_call_answer(**ask) == prepared
    assert len(prepared_statements()) == len(before) + 1


def test_a_search_told_the_free_minimum_does_not_ask_it_again(skus, org, django_assert_num_queries):
    pool = CapacityPoolFactory(region=RegionFactory(code="us-east-1"), sku=skus[0])
    add_change(pool, 64, 0)
    add_hold(pool, org, 40, 2, 6)
    search = {
        "pool": pool,
        "gpu_count": 48,
        "duration": timedelta(hours=8),
        "not_before": hours(0),
        "horizon": timedelta(hours=20),
    }
    with django_assert_num_queries(2):
        assert pool_earliest_start(**search) == hours(6)
    with django_assert_num_queries(1):
        assert pool_earliest_start(**search, free_min=24) == hours(6)
    with django_assert_num_queries(0):
        assert pool_earliest_start(**{**search, "gpu_count": 16}, free_min=24) == hours(0)
