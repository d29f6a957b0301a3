"""The availability answer's statements (free minimum, earliest start, other regions) are
prepared once per connection, and give the same answers when a transaction pooler rules
prepared statements out."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from quotas.selectors.availability import (
    pool_alternatives,
    pool_earliest_start,
    pool_free_min,
)
from tests.factories import CapacityPoolFactory, GpuSkuFactory, RegionFactory
from tests.quotas.test_availability import add_change, add_hold, hours


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements ORDER BY prepare_time")
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def pools(org):
    sku = GpuSkuFactory()
    made = [
        CapacityPoolFactory(region=RegionFactory(code=code), sku=sku)
        for code in ("us-east-1", "us-west-1", "eu-west-2")
    ]
    for n, pool in enumerate(made):
        add_change(pool, 64 * (n + 1), 0)
        add_hold(pool, org, 40, 2, 6)
    return made


def _answer(pool):
    window = {"starts_at": hours(0), "ends_at": hours(8)}
    return (
        pool_free_min(pool=pool, **window),
        pool_earliest_start(
            pool=pool,
            gpu_count=48,
            duration=timedelta(hours=8),
            not_before=hours(0),
            horizon=timedelta(days=30),
        ),
        [
            (a.region.code, a.free_min)
            for a in pool_alternatives(sku=pool.sku, gpu_count=48, exclude_pool=pool, **window)
        ],
    )


def test_the_statements_are_prepared_once_per_connection(pools):
    before = _prepared_statements()
    assert _answer(pools[0]) == (24, hours(6), [("eu-west-2", 152), ("us-west-1", 88)])
    prepared = _prepared_statements()
    new = prepared[len(before) :]
    # free minimum (which the earliest start asks first too), the earliest start's search, other
    # regions
    assert len(new) == 3
    assert sum("candidates AS MATERIALIZED" in statement for statement in new) == 1
    assert _answer(pools[0]) == (24, hours(6), [("eu-west-2", 152), ("us-west-1", 88)])
    assert _prepared_statements() == prepared  # used again, not prepared again


def test_the_answers_are_the_same_without_prepared_statements(pools, monkeypatch):
    """Behind a transaction pooler (DISABLE_SERVER_SIDE_CURSORS) statements are not prepared."""
    prepared_answers = [_answer(pool) for pool in pools]
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    before = _prepared_statements()
    with CaptureQueriesContext(connection) as queries:
        plain_answers = [_answer(pool) for pool in pools]
    assert plain_answers == prepared_answers
    assert all("$1" not in query["sql"] for query in queries.captured_queries)
    assert _prepared_statements() == before  # nothing new prepared
