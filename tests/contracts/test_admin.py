from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from contracts.models import Contract
from tests.factories import ContractFactory, ContractRateFactory, GpuSkuFactory


@pytest.fixture
def manager_client(client, account_manager):
    account_manager.is_staff = True  # the admin site itself lets in is_staff users only
    account_manager.save()
    client.force_login(account_manager)
    return client


def contract_form(contract, **overrides):
    data = {
        "organization": contract.organization_id,
        "number": contract.number,
        "status": contract.status,
        "term_start": contract.term_start.isoformat(),
        "term_end": contract.term_end.isoformat(),
        "currency": contract.currency,
        "committed_spend": str(contract.committed_spend),
        "payment_terms": "",
        "notes": "",
        "created_at_0": "2031-01-01",
        "created_at_1": "00:00:00",
        "rates-TOTAL_FORMS": "0",
        "rates-INITIAL_FORMS": "0",
        "rates-MIN_NUM_FORMS": "0",
        "rates-MAX_NUM_FORMS": "1000",
        "documents-TOTAL_FORMS": "0",
        "documents-INITIAL_FORMS": "0",
        "documents-MIN_NUM_FORMS": "0",
        "documents-MAX_NUM_FORMS": "1000",
    }
    return {**data, **overrides}


def test_account_manager_edits_a_contract_and_its_rates_audited(
    manager_client, org, account_manager
):
    contract = ContractFactory(organization=org, committed_spend=Decimal("1000000.00"))
    sku = GpuSkuFactory(code="h100-sxm")
    response = manager_client.post(
        reverse("admin:contracts_contract_change", args=[contract.pk]),
        contract_form(
            contract,
            committed_spend="2500000.00",
            **{
                "rates-TOTAL_FORMS": "1",
                "rates-0-sku": str(sku.pk),
                "rates-0-region": "",
                "rates-0-price_per_gpu_hour": "2.1500",
            },
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    contract.refresh_from_db()
    assert contract.committed_spend == Decimal("2500000.00")
    assert contract.rates.get().price_per_gpu_hour == Decimal("2.1500")
    actions = set(
        AuditEvent.all_objects.filter(organization=org, actor=account_manager).values_list(
            "action", flat=True
        )
    )
    assert actions == {"contract.changed", "contract.rates_changed"}


def test_bad_term_is_refused_with_nothing_written(manager_client, org):
    contract = ContractFactory(organization=org)
    response = manager_client.post(
        reverse("admin:contracts_contract_change", args=[contract.pk]),
        contract_form(contract, term_end=contract.term_start.isoformat()),
    )
    assert response.status_code == 200
    contract.refresh_from_db()
    assert contract.term_end != contract.term_start
    assert not AuditEvent.all_objects.filter(action__startswith="contract.").exists()


def test_account_manager_sees_only_the_contracts_of_their_organizations(
    manager_client, org, other_org
):
    mine = ContractFactory(organization=org, number="ACME-1")
    theirs = ContractFactory(organization=other_org, number="GLOBEX-1")
    ContractRateFactory(contract=theirs)
    listing = manager_client.get(reverse("admin:contracts_contract_changelist")).content.decode()
    assert mine.number in listing
    assert theirs.number not in listing
    response = manager_client.post(
        reverse("admin:contracts_contract_change", args=[theirs.pk]),
        contract_form(theirs, committed_spend="1.00"),
    )
    assert response.status_code in (302, 404)
    theirs.refresh_from_db()
    assert theirs.committed_spend != Decimal("1.00")
    assert Contract.all_objects.count() == 2


def test_a_second_overlapping_active_contract_is_refused(manager_client, org):
    current = ContractFactory(
        organization=org, number="ACME-1", term_start=date(2030, 1, 1), term_end=date(2033, 1, 1)
    )
    draft = ContractFactory(
        organization=org,
        number="ACME-2",
        status="draft",
        term_start=date(2032, 1, 1),
        term_end=date(2035, 1, 1),
    )
    url = reverse("admin:contracts_contract_change", args=[draft.pk])
    response = manager_client.post(url, contract_form(draft, status="active"))
    assert response.status_code == 200
    assert "ACME-1 already covers" in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == "draft"
    # Once the current one ends before the new term, the new one may be activated.
    current.term_end = date(2032, 1, 1)
    current.save()
    response = manager_client.post(url, contract_form(draft, status="active"))
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == "active"


@pytest.mark.django_db
def test_admin_refuses_an_illegal_status_move(manager_client, org):
    contract = ContractFactory(organization=org, status="expired")
    url = reverse("admin:contracts_contract_change", args=[contract.pk])
    response = manager_client.post(url, contract_form(contract, status="active"))
    assert response.status_code == 200
    assert "cannot move to active" in response.content.decode()
    contract.refresh_from_db()
    assert contract.status == "expired"


@pytest.mark.django_db
def test_admin_termination_records_when_the_contract_stopped_pricing(manager_client, org):
    contract = ContractFactory(organization=org)
    url = reverse("admin:contracts_contract_change", args=[contract.pk])
    response = manager_client.post(url, contract_form(contract, status="terminated"))
    assert response.status_code == 302
    contract.refresh_from_db()
    assert contract.status == "terminated"
    assert contract.terminated_at is not None
