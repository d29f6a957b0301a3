"""Usage is priced by the contract that was in force at the time of use, not by the
contract's status today: late usage for a day of an expired contract's term gets its rate, a
terminated contract prices the days before its termination, and the next statement's
adjustment carries exactly the late usage at that rate."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from contracts.models import Contract, StatementLine
from contracts.services import contract_expire_due, contract_status_set, statement_issue
from tests.factories import ContractFactory, ContractRateFactory
from usage.costing import usage_cost_lines

from .conftest import at, record_usage

pytestmark = pytest.mark.django_db


@pytest.fixture
def q1_contract(org, h100, east):
    """Active for the first quarter of 2026: 1.9333 in us-east-1, 2.0000 elsewhere."""
    contract = ContractFactory(
        organization=org,
        number="ACME-Q1",
        term_start=date(2026, 1, 1),
        term_end=date(2026, 4, 1),
        committed_spend=Decimal("1000.00"),
    )
    ContractRateFactory(contract=contract, sku=h100, region=None, price_per_gpu_hour=Decimal("2"))
    ContractRateFactory(
        contract=contract, sku=h100, region=east, price_per_gpu_hour=Decimal("1.9333")
    )
    return contract


def priced(org, start, end):
    return [
        (line.bucket, line.source, line.rate_per_gpu_hour, line.gpu_hours, line.amount)
        for line in usage_cost_lines(organization=org, start=start, end=end, granularity="day")
    ]


def test_late_usage_of_an_expired_contracts_term_gets_its_rate(org, q1_contract, h100, east):
    record_usage(org, h100, east, at(2026, 3, 10), "10")
    march, _ = statement_issue(organization=org, month=date(2026, 3, 1), now=at(2026, 4, 1, 2))
    assert march.total == Decimal("19.33")  # 10 x 1.9333 = 19.333

    assert contract_expire_due(today=date(2026, 4, 1)) == 1
    q1_contract.refresh_from_db()
    assert q1_contract.status == Contract.Status.EXPIRED
    # March usage metered late, after the contract expired, and April usage (list: 2.50).
    record_usage(org, h100, east, at(2026, 3, 31, 23), "5")
    record_usage(org, h100, east, at(2026, 4, 2), "1")

    assert priced(org, date(2026, 3, 31), date(2026, 4, 3)) == [
        (date(2026, 3, 31), "contract", Decimal("1.9333"), Decimal("5.0000"), Decimal("9.67")),
        (date(2026, 4, 2), "list", Decimal("2.5000"), Decimal("1.0000"), Decimal("2.50")),
    ]
    april, _ = statement_issue(organization=org, month=date(2026, 4, 1), now=at(2026, 5, 1))
    # March in all: 15 x 1.9333 = 28.9995 -> 29.00; 19.33 was billed: one line of 9.67, not
    # the whole of March re-priced at list (-19.33 and +37.50).
    adjustments = list(
        StatementLine.all_objects.filter(statement=april, kind="adjustment").values_list(
            "period", "adjusts", "gpu_hours", "rate_per_gpu_hour", "price_source", "amount"
        )
    )
    assert adjustments == [
        (
            date(2026, 3, 1),
            "usage",
            Decimal("5.000000"),
            Decimal("1.9333"),
            "contract",
            Decimal("9.67"),
        )
    ]
    assert (april.adjustment_total, april.usage_total, april.total) == (
        Decimal("9.67"),
        Decimal("2.50"),
        Decimal("12.17"),
    )


def test_terminated_contract_prices_the_days_before_its_termination(org, q1_contract, h100, east):
    before = timezone.now()
    contract_status_set(contract=q1_contract, status=Contract.Status.TERMINATED, actor=None)
    q1_contract.refresh_from_db()
    assert before <= q1_contract.terminated_at <= timezone.now()
    # Terminated in the afternoon of 15 February: that day began under the contract.
    Contract.all_objects.filter(pk=q1_contract.pk).update(terminated_at=at(2026, 2, 15, 14))
    for day in (14, 15, 16):
        record_usage(org, h100, east, at(2026, 2, day, 20), "3")

    assert priced(org, date(2026, 2, 14), date(2026, 2, 17)) == [
        (date(2026, 2, 14), "contract", Decimal("1.9333"), Decimal("3.0000"), Decimal("5.80")),
        (date(2026, 2, 15), "contract", Decimal("1.9333"), Decimal("3.0000"), Decimal("5.80")),
        (date(2026, 2, 16), "list", Decimal("2.5000"), Decimal("3.0000"), Decimal("7.50")),
    ]
    february, _ = statement_issue(organization=org, month=date(2026, 2, 1), now=at(2026, 3, 1))
    # 6 x 1.9333 = 11.5998 -> 11.60 at the contract rate, 3 x 2.50 at list.
    assert february.usage_total == Decimal("19.10")


def test_termination_at_midnight_ends_with_the_day_before(org, q1_contract, h100, east):
    contract_status_set(contract=q1_contract, status=Contract.Status.TERMINATED, actor=None)
    Contract.all_objects.filter(pk=q1_contract.pk).update(terminated_at=at(2026, 2, 15))
    record_usage(org, h100, east, at(2026, 2, 14, 23), "1")
    record_usage(org, h100, east, at(2026, 2, 15), "1")

    assert [line[1] for line in priced(org, date(2026, 2, 14), date(2026, 2, 16))] == [
        "contract",
        "list",
    ]


def test_contract_terminated_as_a_draft_never_prices_usage(org, h100, east):
    draft = ContractFactory(
        organization=org,
        number="ACME-DRAFT",
        status=Contract.Status.DRAFT,
        term_start=date(2026, 1, 1),
        term_end=date(2026, 4, 1),
    )
    ContractRateFactory(contract=draft, sku=h100, region=None, price_per_gpu_hour=Decimal("1"))
    contract_status_set(contract=draft, status=Contract.Status.TERMINATED, actor=None)
    draft.refresh_from_db()
    assert draft.terminated_at is None
    record_usage(org, h100, east, at(2026, 2, 1), "2")

    assert priced(org, date(2026, 2, 1), date(2026, 2, 2)) == [
        (date(2026, 2, 1), "list", Decimal("2.5000"), Decimal("2.0000"), Decimal("5.00")),
    ]


def test_replacement_contract_prices_the_days_after_the_termination(org, q1_contract, h100, east):
    contract_status_set(contract=q1_contract, status=Contract.Status.TERMINATED, actor=None)
    Contract.all_objects.filter(pk=q1_contract.pk).update(terminated_at=at(2026, 2, 15, 9))
    successor = ContractFactory(
        organization=org,
        number="ACME-NEXT",
        term_start=date(2026, 2, 10),
        term_end=date(2026, 2, 10) + timedelta(days=365),
    )
    ContractRateFactory(
        contract=successor, sku=h100, region=None, price_per_gpu_hour=Decimal("1.5")
    )
    for day in (9, 16):
        record_usage(org, h100, east, at(2026, 2, day, 20), "2")

    assert priced(org, date(2026, 2, 9), date(2026, 2, 17)) == [
        (date(2026, 2, 9), "contract", Decimal("1.9333"), Decimal("2.0000"), Decimal("3.87")),
        (date(2026, 2, 16), "contract", Decimal("1.5000"), Decimal("2.0000"), Decimal("3.00")),
    ]


def test_contract_page_says_when_it_was_terminated(client, org, owner, q1_contract):
    contract_status_set(contract=q1_contract, status=Contract.Status.TERMINATED, actor=None)
    Contract.all_objects.filter(pk=q1_contract.pk).update(terminated_at=at(2026, 2, 15, 14))
    client.force_login(owner)

    page = client.get(f"/o/{org.slug}/contracts/{q1_contract.pk}/").content.decode()

    assert '<dd id="contract-terminated">2026-02-15 14:00 UTC;' in page
