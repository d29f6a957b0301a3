import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from contracts.selectors.spend import contract_burn_down
from contracts.services import contract_document_add, statement_issue
from tests.factories import ContractFactory, ContractRateFactory

from .conftest import at, make_reservation, record_usage


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def march_issued(org, contract, h100, east):
    record_usage(org, h100, east, at(2026, 3, 10), "10")
    statement, _ = statement_issue(organization=org, month=date(2026, 3, 1), now=at(2026, 4, 1))
    return statement


@pytest.mark.django_db
def test_contract_detail_has_rates_documents_and_burn_down(
    org, owner, account_manager, contract, h100, east
):
    record_usage(org, h100, east, at(2026, 2, 3), "100")
    contract_document_add(
        contract=contract,
        uploaded_file=SimpleUploadedFile("s.pdf", b"%PDF-1.4 x"),
        title="Signed",
        kind="signed_contract",
        actor=account_manager,
    )
    body = client_for(owner).get(f"/api/v1/orgs/acme/contracts/{contract.pk}/").json()
    burn = contract_burn_down(contract=contract)
    assert body["consumed_spend"] == str(burn.consumed) == "193.33"
    assert body["remaining_commitment"] == "9806.67"
    assert body["burn_down"]["months"][1] == {
        "month": "2026-02",
        "committed": "10000.00",
        "consumed": "193.33",
        "forecast": None,
    }
    assert body["burn_down"]["projected_underuse"] == str(burn.projected_underuse)
    assert body["documents"][0]["download_path"].endswith(
        f"/contracts/{contract.pk}/documents/{body['documents'][0]['id']}"
    )
    assert {"sku": "h100-sxm", "region": "us-east-1"}.items() <= body["rates"][1].items()
    assert body["rates"][1]["list_price_per_gpu_hour"] == "2.5000"
    listed = client_for(owner).get("/api/v1/orgs/acme/contracts/").json()["results"]
    assert listed[0]["consumed_spend"] == "193.33"


@pytest.mark.django_db
def test_statement_list_detail_and_csv(org, owner, march_issued):
    client = client_for(owner)
    listed = client.get("/api/v1/orgs/acme/statements/").json()["results"]
    assert {"month": "2026-03", "status": "issued", "total": "19.33"}.items() <= listed[-1].items()
    detail = client.get("/api/v1/orgs/acme/statements/2026-03/").json()
    assert (detail["status"], detail["total"], detail["usage_total"]) == (
        "issued",
        "19.33",
        "19.33",
    )
    assert detail["lines"][0] == {
        "kind": "usage",
        "adjusts": "",
        "month": "2026-03",
        "sku": "h100-sxm",
        "region": "us-east-1",
        "reservation_id": None,
        "gpu_hours": "10.000000",
        "rate_per_gpu_hour": "1.9333",
        "price_source": "contract",
        "contract_id": march_issued.lines.get().contract_id,
        "amount": "19.33",
    }
    response = client.get("/api/v1/orgs/acme/statements/2026-03/", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][0] == "kind" and rows[-1] == [
        "total", "", "2026-03", "", "", "", "", "", "", "19.33", "USD",
    ]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["contracts/", "contracts/{contract}/", "statements/", "statements/2026-03/"]
)
def test_other_organization_gets_404_and_billingless_roles_403(
    org, other_owner, member, viewer, contract, march_issued, path
):
    path = "/api/v1/orgs/acme/" + path.format(contract=contract.pk)
    assert client_for(other_owner).get(path).status_code == 404
    assert client_for(member).get(path).status_code == 403
    assert client_for(viewer).get(path).status_code == 403


@pytest.mark.django_db
def test_other_organizations_contract_under_own_slug_is_404(org, other_owner, contract):
    response = client_for(other_owner).get(f"/api/v1/orgs/globex/contracts/{contract.pk}/")
    assert response.status_code == 404


@pytest.mark.django_db
def test_unknown_or_future_month_is_404(org, owner):
    client = client_for(owner)
    future = (timezone.now().date().replace(day=1) + timedelta(days=40)).strftime("%Y-%m")
    assert client.get(f"/api/v1/orgs/acme/statements/{future}/").status_code == 404
    assert client.get("/api/v1/orgs/acme/statements/2026-13/").status_code == 404


def _count(client, url):
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.django_db
def test_api_query_counts_stay_flat_as_records_grow(org, owner, h100, east):
    today = timezone.now().date()
    client = client_for(owner)

    def grow(n, offset):
        now = timezone.now().replace(minute=0, second=0, microsecond=0)
        for i in range(offset, offset + n):
            contract = ContractFactory(
                organization=org,
                status="expired" if i else "active",
                term_start=today - timedelta(days=400 + i),
                term_end=today + timedelta(days=10),
            )
            ContractRateFactory(contract=contract, sku=h100)
            record_usage(org, h100, east, now - timedelta(days=2 + i), "1.25")
            make_reservation(org, h100, east, now - timedelta(days=9 + i), now - timedelta(days=3))

    grow(2, 0)
    first = ContractFactory._meta.model.all_objects.filter(organization=org).first()
    urls = [
        "/api/v1/orgs/acme/contracts/",
        f"/api/v1/orgs/acme/contracts/{first.pk}/",
        "/api/v1/orgs/acme/statements/",
        f"/api/v1/orgs/acme/statements/{today:%Y-%m}/",
    ]
    small = [_count(client, url) for url in urls]
    grow(8, 2)
    assert [_count(client, url) for url in urls] == small
    assert Decimal(client.get(urls[0]).json()["results"][0]["consumed_spend"]) > 0


@pytest.mark.django_db
def test_csv_accepting_client_gets_problem_details_for_a_missing_month(org, owner):
    response = client_for(owner).get(
        "/api/v1/orgs/acme/statements/2026-13/", HTTP_ACCEPT="text/csv"
    )
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 404
