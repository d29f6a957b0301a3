from datetime import date

import pytest

from accounts.models import AuditEvent
from contracts.models import Contract, Statement
from contracts.services import contract_expire_due, contract_status_set
from contracts.tasks import statements_close_task
from portal.errors import DomainError, IllegalTransition
from tests.factories import ContractFactory


@pytest.mark.django_db
def test_status_moves_along_the_table_and_is_audited(org, account_manager):
    contract = ContractFactory(organization=org, status="draft")
    contract = contract_status_set(contract=contract, status="active", actor=account_manager)
    assert contract.status == "active"
    with pytest.raises(IllegalTransition):
        contract_status_set(contract=contract, status="draft", actor=account_manager)
    contract_status_set(contract=contract, status="terminated", actor=account_manager, reason="x")
    with pytest.raises(IllegalTransition):
        contract_status_set(contract=contract, status="active", actor=account_manager)
    assert list(
        AuditEvent.all_objects.filter(action="contract.status_changed")
        .order_by("id")
        .values_list("changes__from", "changes__to")
    ) == [("draft", "active"), ("active", "terminated")]


@pytest.mark.django_db
def test_contracts_expire_at_term_end_once(org):
    ended = ContractFactory(
        organization=org, term_start=date(2025, 1, 1), term_end=date(2026, 1, 1)
    )
    running = ContractFactory(
        organization=org, term_start=date(2026, 1, 1), term_end=date(2027, 1, 1)
    )
    assert contract_expire_due(today=date(2026, 1, 1)) == 1
    assert contract_expire_due(today=date(2026, 1, 1)) == 0
    assert Contract.all_objects.get(pk=ended.pk).status == "expired"
    assert Contract.all_objects.get(pk=running.pk).status == "active"


@pytest.mark.django_db
def test_nightly_close_issues_last_month_for_every_organization_once(
    org, other_org, django_capture_on_commit_callbacks
):
    from portal.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        statements_close_task()
        statements_close_task()
    finally:
        app.conf.task_always_eager = previous
    assert Statement.all_objects.filter(organization__in=[org, other_org]).count() == 2


@pytest.mark.django_db
def test_activating_over_another_active_term_is_refused(org, account_manager):
    ContractFactory(organization=org, number="A", term_start=date(2026, 1, 1))
    draft = ContractFactory(
        organization=org, number="B", status="draft", term_start=date(2026, 6, 1)
    )
    with pytest.raises(DomainError) as error:
        contract_status_set(contract=draft, status="active", actor=account_manager)
    assert error.value.field == "term_start"
    assert Contract.all_objects.get(pk=draft.pk).status == "draft"
