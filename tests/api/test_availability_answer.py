"""The availability endpoint answers from ``pool_availability``: the pool's free minimum and
the other regions in one statement, the earliest-start search only when the start is short."""

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext

from quotas.capacity import capacity_change_add
from tests.factories import CapacityPoolFactory, RegionFactory

from .conftest import LONG_AGO, soon

URL = "/api/v1/orgs/acme/availability/"


def ask(client, gpu_count):
    start = soon(10)
    params = {
        "sku": "h100-sxm",
        "region": "us-east-1",
        "gpu_count": gpu_count,
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=2)).isoformat(),
    }
    with CaptureQueriesContext(connection) as queries:
        response = client.get(URL, params)
    assert response.status_code == 200, response.content
    return response.json(), len(queries), start


def test_the_answer_and_its_queries(member_api, pool, reservation, h100):
    west = CapacityPoolFactory(sku=h100, region=RegionFactory(code="us-west-1"))
    capacity_change_add(
        pool=west, gpus_delta=128, effective_at=LONG_AGO, reason="installed", actor=None
    )
    ask(member_api, 8)  # the session, the organization and the statements' first use

    body, fitting_queries, start = ask(member_api, 8)
    assert (body["fits"], body["free_min"], body["earliest_start"]) == (
        True,
        56,
        start.isoformat().replace("+00:00", "Z"),
    )
    assert body["alternatives"] == [{"region": "us-west-1", "free_min": 128}]

    body, short_queries, _ = ask(member_api, 100)
    assert (body["fits"], body["free_min"], body["earliest_start"]) == (False, 56, None)
    assert body["alternatives"] == [{"region": "us-west-1", "free_min": 128}]
    # The session, user, organization, membership, SKU, region and pool, then one statement
    # for the answer when the GPUs fit (10 queries with the three selectors, the free minimum
    # read twice); when they do not, the search's own statements (its month, then the year).
    assert fitting_queries == 8
    assert short_queries == fitting_queries + 2
