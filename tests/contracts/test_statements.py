from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pytest

from contracts.models import Statement, StatementLine
from contracts.selectors.statements import statement_get
from contracts.services import statement_issue
from portal.errors import DomainError
from usage.models import UsageRecord

from .conftest import at, ingest, make_reservation, record_usage

CENT = Decimal("0.01")


def exact_cost(records, rate):
    """GPU-hours x rate in exact Decimal arithmetic (4 + 4 places fit the context)."""
    return sum((r.gpu_hours for r in records), Decimal("0")) * Decimal(rate)


def half_up(value):
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


@pytest.mark.django_db
def test_statement_reconciles_to_the_cent_with_raw_records(org, contract, h100, a100, east, west):
    odd = ["0.0001", "3.3333", "7.1249", "0.5", "12.9999", "1.0049"]
    ingest(
        (org, sku, region, at(2026, 3, day, i), amount)
        for day in range(1, 29)
        for i, amount in enumerate(odd)
        for sku, region in ((h100, east), (h100, west), (a100, east))
    )
    reservation = make_reservation(
        org,
        h100,
        east,
        at(2026, 2, 20, 6),
        at(2026, 4, 2, 13),
        gpu_count=3,
        rate="2.7777",
        contract=contract,
    )
    record_usage(org, h100, east, at(2026, 3, 5, 10), "2.5", reservation=reservation)

    statement, created = statement_issue(
        organization=org, month=date(2026, 3, 1), now=at(2026, 4, 2)
    )
    assert created

    march = UsageRecord.all_objects.filter(organization=org, hour__month=3, reservation=None)
    # The contract's east rate, its any-region rate for west, the list price for the A100.
    expected_usage = (
        half_up(exact_cost(march.filter(sku=h100, region=east), "1.9333"))
        + half_up(exact_cost(march.filter(sku=h100, region=west), "2.0"))
        + half_up(exact_cost(march.filter(sku=a100), "1.7700"))
    )
    # 3 GPUs for all 31 days of March at the frozen rate; the covered usage is not charged.
    expected_reservation = half_up(Decimal(3 * 31 * 24) * Decimal("2.7777"))
    assert statement.usage_total == expected_usage
    assert statement.reservation_total == expected_reservation
    assert statement.total == expected_usage + expected_reservation
    lines = StatementLine.all_objects.filter(statement=statement)
    assert sum(line.amount for line in lines) == statement.total
    usage_hours = sum(line.gpu_hours for line in lines if line.kind == "usage")
    assert usage_hours == sum(r.gpu_hours for r in march)
    covered = lines.get(kind="covered")
    assert (covered.gpu_hours, covered.amount, covered.reservation_id) == (
        Decimal("2.5"),
        Decimal("0"),
        reservation.pk,
    )


@pytest.mark.django_db
def test_reservation_is_prorated_by_its_hours_in_each_month(org, h100, east):
    reservation = make_reservation(
        org, h100, east, at(2026, 1, 31, 20), at(2026, 2, 1, 3), gpu_count=1, rate="0.0150"
    )
    january = statement_get(organization=org, month=date(2026, 1, 1), now=at(2026, 3, 1))
    february = statement_get(organization=org, month=date(2026, 2, 1), now=at(2026, 3, 1))
    assert [(r.reservation_id, r.gpu_hours, r.amount) for r in january.rows] == [
        (reservation.pk, Decimal("4"), Decimal("0.06"))
    ]
    # 3 hours x 0.0150 = 0.045 exactly: half-up gives 0.05.
    assert [r.amount for r in february.rows] == [Decimal("0.05")]


@pytest.mark.django_db
def test_cancelled_reservation_is_not_charged(org, h100, east):
    make_reservation(org, h100, east, at(2026, 1, 2), at(2026, 1, 3), state="cancelled")
    statement = statement_get(organization=org, month=date(2026, 1, 1), now=at(2026, 2, 1))
    assert statement.rows == [] and statement.total == Decimal("0.00")


@pytest.mark.django_db
def test_late_usage_is_an_adjustment_on_the_next_statement(org, contract, h100, east):
    record_usage(org, h100, east, at(2026, 3, 10), "10")
    march, _ = statement_issue(organization=org, month=date(2026, 3, 1), now=at(2026, 4, 1, 2))
    assert march.total == Decimal("19.33")

    # Metering sends more March usage after March was closed, and April usage.
    record_usage(org, h100, east, at(2026, 3, 31, 23), "0.0049")
    record_usage(org, h100, east, at(2026, 4, 3), "1")
    march_again = statement_get(organization=org, month=date(2026, 3, 1), now=at(2026, 5, 1))
    assert march_again.total == Decimal("19.33")  # issued statements never change

    april, _ = statement_issue(organization=org, month=date(2026, 4, 1), now=at(2026, 5, 1))
    adjustment = StatementLine.all_objects.get(statement=april, kind="adjustment")
    # 10.0049 x 1.9333 = 19.34247... -> 19.34 billed for March in all; 19.33 was billed.
    assert (adjustment.period, adjustment.adjusts) == (date(2026, 3, 1), "usage")
    assert (adjustment.gpu_hours, adjustment.amount) == (Decimal("0.0049"), Decimal("0.01"))
    assert april.adjustment_total == Decimal("0.01")
    assert april.usage_total == Decimal("1.93")
    assert april.total == Decimal("1.94")

    # Once billed, the correction is not charged again.
    may, _ = statement_issue(organization=org, month=date(2026, 5, 1), now=at(2026, 6, 1))
    assert may.adjustment_total == Decimal("0.00")
    assert not StatementLine.all_objects.filter(statement=may, kind="adjustment").exists()


@pytest.mark.django_db
def test_issuing_is_idempotent_and_refuses_a_running_month(org, contract, h100, east):
    record_usage(org, h100, east, at(2026, 3, 10), "1")
    first, created = statement_issue(organization=org, month=date(2026, 3, 1), now=at(2026, 4, 2))
    again, created_again = statement_issue(
        organization=org, month=date(2026, 3, 1), now=at(2026, 4, 3)
    )
    assert (created, created_again, first.pk) == (True, False, again.pk)
    with pytest.raises(DomainError) as error:
        statement_issue(organization=org, month=date(2026, 4, 1), now=at(2026, 4, 30, 23))
    assert error.value.field == "month"
    assert Statement.all_objects.filter(organization=org).count() == 1


@pytest.mark.django_db
def test_another_organizations_usage_is_not_on_the_statement(org, other_org, contract, h100, east):
    record_usage(other_org, h100, east, at(2026, 3, 10), "5")
    statement = statement_get(organization=org, month=date(2026, 3, 1), now=at(2026, 4, 1))
    assert statement.rows == []
