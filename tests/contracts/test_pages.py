from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contracts.models import ContractDocument
from contracts.services import contract_document_add, statement_issue
from tests.factories import ContractFactory

from .conftest import at, make_reservation, record_usage

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def url(org, path):
    return f"/o/{org.slug}/{path}"


@pytest.fixture
def document(contract, account_manager):
    return contract_document_add(
        contract=contract,
        uploaded_file=SimpleUploadedFile("signed.pdf", PDF),
        title="Signed agreement",
        kind="signed_contract",
        actor=account_manager,
    )


@pytest.mark.django_db
def test_owner_reads_contract_page_with_rates_and_burn_down(client, org, owner, contract):
    client.force_login(owner)
    response = client.get(url(org, f"contracts/{contract.pk}/"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "ACME-2026" in body and "burn-down-data" in body
    assert "22.7 %" in body  # 1.9333 vs a list price of 2.5
    assert "<script>" not in body


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "contracts/",
        "contracts/{contract}/",
        "contracts/{contract}/documents/{document}",
        "statements/",
        "statements/2026-03/",
        "statements/2026-03/csv",
        "statements/2026-03/pdf",
    ],
)
def test_other_organization_gets_404(client, org, other_owner, contract, document, path):
    client.force_login(other_owner)
    path = path.format(contract=contract.pk, document=document.pk)
    assert client.get(url(org, path)).status_code == 404


@pytest.mark.django_db
def test_other_organizations_contract_is_404_under_own_slug(
    client, org, other_org, other_owner, contract, document
):
    client.force_login(other_owner)
    assert client.get(url(other_org, f"contracts/{contract.pk}/")).status_code == 404
    path = f"contracts/{contract.pk}/documents/{document.pk}"
    assert client.get(url(other_org, path)).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "contracts/",
        "contracts/{contract}/documents/{document}",
        "statements/",
        "statements/2026-03/",
    ],
)
def test_roles_without_billing_get_403(client, org, member, viewer, contract, document, path):
    path = path.format(contract=contract.pk, document=document.pk)
    for user in (member, viewer):
        client.force_login(user)
        assert client.get(url(org, path)).status_code == 403


@pytest.mark.django_db
def test_billing_role_downloads_document_streamed_from_storage(
    client, org, billing, contract, document
):
    client.force_login(billing)
    response = client.get(url(org, f"contracts/{contract.pk}/documents/{document.pk}"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content) == PDF
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_account_manager_attaches_document_tenants_cannot(
    client, org, owner, account_manager, contract
):
    path = url(org, f"contracts/{contract.pk}/")
    client.force_login(owner)
    data = {"title": "Amendment", "kind": "amendment", "file": SimpleUploadedFile("a.pdf", PDF)}
    assert client.post(path, data).status_code == 403
    client.force_login(account_manager)
    data["file"] = SimpleUploadedFile("a.pdf", PDF)
    assert client.post(path, data).status_code == 302
    assert ContractDocument.all_objects.get(contract=contract).title == "Amendment"


@pytest.mark.django_db
def test_refused_document_shows_error_and_stores_nothing(
    client, org, account_manager, contract, settings, tmp_path
):
    client.force_login(account_manager)
    data = {
        "title": "Fake",
        "kind": "other",
        "file": SimpleUploadedFile("x.pdf", b"MZ\x90\x00 not a pdf"),
    }
    response = client.post(url(org, f"contracts/{contract.pk}/"), data)
    assert response.status_code == 400
    assert "Only PDF, PNG and JPEG" in response.content.decode()
    assert not ContractDocument.all_objects.exists()
    media = tmp_path / "media"
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


@pytest.mark.django_db
def test_statement_page_csv_and_pdf(client, org, owner, contract, h100, east):
    record_usage(org, h100, east, at(2026, 3, 10), "10")
    statement_issue(organization=org, month=date(2026, 3, 1), now=at(2026, 4, 1, 2))
    client.force_login(owner)
    page = client.get(url(org, "statements/2026-03/"))
    assert page.status_code == 200 and "19.33" in page.content.decode()
    csv_response = client.get(url(org, "statements/2026-03/csv"))
    rows = csv_response.content.decode().splitlines()
    assert rows[0].startswith("kind,adjusts,month")
    assert rows[-1] == "total,,2026-03,,,,,,,19.33,USD"
    pdf = client.get(url(org, "statements/2026-03/pdf"))
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")


@pytest.mark.django_db
def test_statement_of_a_month_not_begun_is_404(client, org, owner):
    client.force_login(owner)
    month = (timezone.now().date().replace(day=1) + timedelta(days=40)).strftime("%Y-%m")
    assert client.get(url(org, f"statements/{month}/")).status_code == 404
    assert client.get(url(org, "statements/2026-13/")).status_code == 404


def _grow(org, contract, h100, east, n, offset=0):
    today = timezone.now().replace(minute=0, second=0, microsecond=0)
    for i in range(offset, offset + n):
        hour = today - timedelta(days=3 + i, hours=i)
        record_usage(org, h100, east, hour, "1.5")
        make_reservation(
            org, h100, east, hour - timedelta(days=2), hour, gpu_count=1, contract=contract
        )
        ContractDocument.all_objects.create(
            organization=org,
            contract=contract,
            title=f"Doc {i}",
            kind="other",
            file=f"contracts/x/{i}",
            content_type="application/pdf",
            size=10,
        )


@pytest.mark.django_db
def test_contract_and_statement_pages_query_counts_stay_flat(
    client, org, owner, h100, east, django_assert_num_queries
):
    today = timezone.now().date()
    contract = ContractFactory(
        organization=org,
        term_start=today - timedelta(days=200),
        term_end=today + timedelta(days=200),
        committed_spend=Decimal("50000"),
    )
    client.force_login(owner)
    month = today.strftime("%Y-%m")
    pages = [f"contracts/{contract.pk}/", "contracts/", "statements/", f"statements/{month}/"]
    counts = {}
    _grow(org, contract, h100, east, 2)
    for page in pages:
        client.get(url(org, page))  # warm the session and the staff-access marker
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url(org, page)).status_code == 200
        counts[page] = len(ctx.captured_queries)
    # Session, user and membership, then the page's own reads (the burn-down sums the charges
    # per month in three queries: contracts in force, usage, reservations).
    assert counts == {
        f"contracts/{contract.pk}/": 12,
        "contracts/": 6,
        "statements/": 6,
        f"statements/{month}/": 14,
    }
    _grow(org, contract, h100, east, 12, offset=2)
    for page in pages:
        with django_assert_num_queries(counts[page]):
            assert client.get(url(org, page)).status_code == 200
