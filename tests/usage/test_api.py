from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from usage.models import UsageRecord

from ..api.conftest import bearer
from .conftest import JAN, as_csv, as_json, as_ndjson, hours, ingest, record

pytestmark = pytest.mark.django_db

INGEST = "/api/v1/usage/ingest"


@pytest.fixture
def catalog(org, other_org, h100, east, a100, west):
    return org


def post_batch(client, body: bytes, content_type="application/x-ndjson", **extra):
    return client.generic("POST", INGEST, body, content_type=content_type, **extra)


@pytest.mark.parametrize(
    ("encode", "content_type"),
    [(as_json, "application/json"), (as_ndjson, "application/x-ndjson"), (as_csv, "text/csv")],
)
def test_provider_key_with_ingest_scope_ingests(catalog, ingest_key, encode, content_type):
    batch = [record(hour=h) for h in hours(JAN, 3)]

    response = post_batch(bearer(ingest_key.key), encode(batch), content_type)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "received": 3,
        "inserted": 3,
        "replaced": 0,
        "unchanged": 0,
        "duplicates": 0,
    }
    again = post_batch(bearer(ingest_key.key), encode(batch), content_type)
    assert again.json()["unchanged"] == 3


def test_only_ingest_provider_keys_may_ingest(catalog, owner, org_key, approvals_key, api):
    body = as_ndjson([record()])
    session = APIClient()
    session.force_login(owner)
    assert post_batch(bearer(org_key.key), body).status_code == 403
    assert post_batch(bearer(approvals_key.key), body).status_code == 403
    assert post_batch(session, body).status_code == 403
    assert post_batch(api, body).status_code == 401
    assert UsageRecord.objects.unscoped_for_staff().count() == 0


def test_bad_batch_answers_422_problem_naming_rows(catalog, ingest_key):
    batch = [record(hour=h) for h in hours(JAN, 3)]
    batch[1]["hour"] = "2026-01-01T00:15:00Z"
    batch[2]["region"] = "mars-1"

    response = post_batch(bearer(ingest_key.key), as_ndjson(batch))

    assert response.status_code == 422
    assert response["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "usage_batch_rejected"
    assert problem["error_count"] == 2
    assert [(e["row"], e["line"], e["field"]) for e in problem["errors"]] == [
        (2, 2, "hour"),
        (3, 3, "region"),
    ]
    assert UsageRecord.objects.unscoped_for_staff().count() == 0


def test_unknown_content_type_is_refused(catalog, ingest_key):
    response = post_batch(bearer(ingest_key.key), b"<usage/>", "application/xml")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "content_type"


def test_records_are_listed_filtered_and_as_csv(catalog, read_key):
    ingest([record(hour=h, gpu_hours="2") for h in hours(JAN, 5)])
    ingest([record(hour=JAN, sku="a100-80", gpu_hours="1")])
    client = bearer(read_key.key)

    listed = client.get("/api/v1/orgs/acme/usage/").json()
    assert listed["count"] == 6
    assert listed["results"][0]["hour"] == "2026-01-01T04:00:00Z"

    filtered = client.get(
        "/api/v1/orgs/acme/usage/",
        {"sku": "a100-80", "from": JAN.isoformat(), "to": (JAN + timedelta(hours=1)).isoformat()},
    ).json()
    assert [(r["sku"], r["gpu_hours"]) for r in filtered["results"]] == [("a100-80", "1.0000")]

    as_text = client.get("/api/v1/orgs/acme/usage/", {"sku": "a100-80"}, HTTP_ACCEPT="text/csv")
    assert as_text["Content-Type"].startswith("text/csv")
    lines = as_text.content.decode().splitlines()
    assert lines[0].startswith("id,sku,region,reservation,hour,gpu_hours")
    assert len(lines) == 2


def test_aggregate_by_day_and_sku(catalog, read_key):
    ingest([record(hour=h, gpu_hours="1.5") for h in hours(JAN, 30)])
    ingest([record(hour=JAN, sku="a100-80", gpu_hours="4")])
    client = bearer(read_key.key)

    rows = client.get(
        "/api/v1/orgs/acme/usage/aggregate/",
        {"granularity": "day", "group_by": "sku", "from": "2026-01-01", "to": "2026-01-03"},
    ).json()

    assert rows == [
        {"period": "2026-01-01", "sku": "h100-sxm", "gpu_hours": "36.0000", "record_count": 24},
        {"period": "2026-01-01", "sku": "a100-80", "gpu_hours": "4.0000", "record_count": 1},
        {"period": "2026-01-02", "sku": "h100-sxm", "gpu_hours": "9.0000", "record_count": 6},
    ]
    monthly = client.get(
        "/api/v1/orgs/acme/usage/aggregate/",
        {"granularity": "month", "from": "2026-01-01", "to": "2026-02-01"},
        HTTP_ACCEPT="text/csv",
    )
    assert monthly.content.decode().splitlines() == [
        "period,gpu_hours,record_count",
        "2026-01-01,49.0000,31",
    ]
    hourly = client.get(
        "/api/v1/orgs/acme/usage/aggregate/",
        {"granularity": "hour", "group_by": "region", "from": "2026-01-01", "to": "2026-01-02"},
    ).json()
    assert hourly[0] == {
        "period": "2026-01-01T00:00:00+00:00",
        "region": "us-east-1",
        "gpu_hours": "5.5000",
        "record_count": 2,
    }


def test_aggregate_refuses_bad_parameters(catalog, read_key):
    client = bearer(read_key.key)
    url = "/api/v1/orgs/acme/usage/aggregate/"
    bad = [
        {"granularity": "week", "from": "2026-01-01", "to": "2026-02-01"},
        {"group_by": "color", "from": "2026-01-01", "to": "2026-02-01"},
        {"granularity": "month", "from": "2026-01-05", "to": "2026-02-01"},
        {"granularity": "hour", "from": "2026-01-01", "to": "2026-03-01"},
        {"from": "2026-02-01", "to": "2026-01-01"},
    ]
    for params in bad:
        response = client.get(url, params)
        assert response.status_code == 400, params


def test_other_organizations_usage_is_404(catalog, other_org_key, owner):
    ingest([record()])
    assert bearer(other_org_key.key).get("/api/v1/orgs/acme/usage/").status_code == 404
    assert (
        bearer(other_org_key.key)
        .get("/api/v1/orgs/acme/usage/aggregate/", {"from": "2026-01-01", "to": "2026-02-01"})
        .status_code
        == 404
    )


def test_records_list_query_count_is_flat(catalog, read_key, django_assert_num_queries):
    client = bearer(read_key.key)
    ingest([record(hour=h) for h in hours(JAN, 3)])
    client.get("/api/v1/orgs/acme/usage/")  # the key's last-used time is written once
    # key with its user, organization and role in one statement, count, page
    with django_assert_num_queries(3) as few:
        assert client.get("/api/v1/orgs/acme/usage/").status_code == 200
    ingest(
        [
            record(hour=h, region=region)
            for h in hours(JAN, 40)
            for region in ("us-east-1", "us-west-2")
        ]
    )
    with django_assert_num_queries(len(few.captured_queries)):
        assert client.get("/api/v1/orgs/acme/usage/").json()["count"] == 80


def test_csv_of_no_rows_is_its_header_line(catalog, read_key):
    client = bearer(read_key.key)

    records = client.get("/api/v1/orgs/acme/usage/", HTTP_ACCEPT="text/csv")
    assert records.status_code == 200
    assert records["Content-Type"].startswith("text/csv")
    assert records.content.decode().startswith("id,sku,region,reservation,hour,gpu_hours")

    aggregate = client.get(
        "/api/v1/orgs/acme/usage/aggregate/",
        {"granularity": "day", "group_by": "sku,region", "from": "2026-01-01", "to": "2026-01-02"},
        HTTP_ACCEPT="text/csv",
    )
    assert aggregate["Content-Type"].startswith("text/csv")
    assert aggregate.content.decode().splitlines() == ["period,sku,region,gpu_hours,record_count"]
