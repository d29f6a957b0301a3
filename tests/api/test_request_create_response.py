"""Create-and-submit answers from the objects in hand: the same body as reading the request
back, in a fixed number of queries."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import GpuSkuFactory, RegionFactory

from .conftest import bearer
from .test_requests import create_body


def test_created_request_is_what_reading_it_back_gives(org, owner, pool, org_key):
    from tests.factories import CapacityPoolFactory

    h200 = GpuSkuFactory(code="h200-sxm", name="H200 SXM")
    west = RegionFactory(code="us-west-2")
    CapacityPoolFactory(sku=h200, region=pool.region)
    client = bearer(org_key.key)
    for body in (
        create_body(),
        create_body(alternative_skus=["h200-sxm"], alternative_regions=[west.code]),
        create_body(submit=False, justification="draft"),
    ):
        created = client.post("/api/v1/orgs/acme/requests/", body, format="json")
        assert created.status_code == 201, created.content
        again = client.get(f"/api/v1/orgs/acme/requests/{created.json()['id']}/")
        assert created.json() == again.json()
        assert created["ETag"] == again["ETag"]


def test_create_and_submit_takes_a_fixed_number_of_queries(org, owner, pool, org_key):
    client = bearer(org_key.key)
    client.get("/api/v1/orgs/acme/requests/")  # the key's first use records it
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/api/v1/orgs/acme/requests/", create_body(), format="json")
    assert response.status_code == 201
    assert response.json()["state"] == "submitted"
    # key with its user's role (API), SKU with region and pool (one statement), role
    # (service), the request inserted submitted, both steps' timeline and audit events in one
    # statement, webhooks (13 before the row went in submitted and the response kept the
    # timeline, 8 before the SKU, region and pool came together); plus the savepoint pair
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 6, "\n".join(s[:120] for s in statements)
