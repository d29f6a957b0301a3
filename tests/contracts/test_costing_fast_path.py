"""Consumed spend and the burn-down read whole months of one rate from the monthly rollups and
the rest day by day: their figures, and statements priced from the same read, equal those
priced day by day to the cent, across contracts that start, stop and are terminated
mid-month."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from contracts.charges import charge_lines_from, charge_source, utc_midnight
from contracts.models import Contract
from contracts.selectors import contract_remaining_commitment
from contracts.selectors.spend import (
    _spend_source,
    _term_window,
    contract_burn_down,
    contract_burn_down_windows,
    contract_consumed_spend_many,
    contract_spend_lines,
)
from contracts.selectors.statements import statement_get
from tests.factories import ContractFactory, ContractRateFactory
from usage.costing import usage_cost_days_and_months, usage_cost_lines

from .conftest import at, ingest, make_reservation

pytestmark = pytest.mark.django_db

NOW = at(2026, 7, 14, 10) + timedelta(minutes=30)


@pytest.fixture
def history(org, h100, a100, east, west):
    """A two-year contract from 1 October 2025 (H100 2.0000, 1.9333 in us-east-1, no A100
    rate: list 1.7700), a newer contract from 17 March 2026 (H100 1.7777) terminated on
    20 May 2026 at noon, daily usage of odd fractions in both regions (some inside a
    reservation) from September 2025 to after now."""
    main = ContractFactory(
        organization=org,
        term_start=date(2025, 10, 1),
        term_end=date(2027, 10, 1),
        committed_spend=Decimal("25000.00"),
    )
    ContractRateFactory(contract=main, sku=h100, price_per_gpu_hour=Decimal("2.0000"))
    ContractRateFactory(contract=main, sku=h100, region=east, price_per_gpu_hour=Decimal("1.9333"))
    newer = ContractFactory(
        organization=org,
        status=Contract.Status.TERMINATED,
        term_start=date(2026, 3, 17),
        term_end=date(2026, 9, 1),
    )
    Contract.all_objects.filter(pk=newer.pk).update(terminated_at=at(2026, 5, 20, 12))
    ContractRateFactory(contract=newer, sku=h100, price_per_gpu_hour=Decimal("1.7777"))
    reservation = make_reservation(
        org, h100, west, at(2026, 4, 3), at(2026, 4, 9), gpu_count=2, rate="2.1111"
    )
    rows = []
    day = date(2025, 9, 20)
    n = 0
    while day < date(2026, 7, 20):
        hour = utc_midnight(day) + timedelta(hours=n % 24)
        rows.append((org, h100, east, hour, Decimal("1.0003") + Decimal(n % 7) / 1000))
        if n % 3 == 0:
            inside = at(2026, 4, 3) <= hour < at(2026, 4, 9)
            rows.append((org, h100, west, hour, "0.3337", reservation if inside else None))
        if n % 2 == 0:
            rows.append((org, a100, east, hour, "2.0049"))
        day += timedelta(days=1)
        n += 1
    ingest(rows)
    return main


def _daily_source(contract, now):
    start, end = _term_window(contract, now)
    return charge_source(organization=contract.organization, start=start, end=end)


def _burn_down_day_by_day(contract, now):
    """The burn-down on its windows' charges summed from the lines priced day by day."""
    charges = []
    for start, end in contract_burn_down_windows(contract=contract, now=now):
        months = {}
        if end > start:
            source = charge_source(organization=contract.organization, start=start, end=end)
            for line in charge_lines_from(source, start=start, end=end):
                months[line.period] = months.get(line.period, Decimal("0.00")) + line.amount
        charges.append(months)
    return contract_burn_down(contract=contract, now=now, charges=charges)


@pytest.mark.parametrize(
    "now",
    [NOW, at(2026, 5, 20, 18), at(2026, 6, 1), at(2026, 3, 17, 1), at(2025, 11, 2, 7)],
)
def test_burn_down_equals_the_day_by_day_pricing(history, now):
    fast = contract_burn_down(contract=history, now=now)
    assert fast == _burn_down_day_by_day(history, now)
    assert fast.consumed > 0 and fast.run_rate_per_day > 0


def test_whole_months_are_read_monthly_and_split_months_daily(org, history):
    lines = usage_cost_days_and_months(
        organization=org,
        start=date(2025, 10, 1),
        end=date(2026, 7, 15),
        daily_from=date(2026, 6, 1),
    )
    buckets = {line.bucket for line in lines}
    # October to February and April are whole months of one rate: one line per key, on the 1st.
    for month in (date(2025, 10, 1), date(2026, 1, 1), date(2026, 2, 1), date(2026, 4, 1)):
        assert month in buckets
        assert not any(b.replace(day=1) == month and b != month for b in buckets)
    # March (newer contract from the 17th), May (terminated on the 20th), June on: day by day.
    assert {date(2026, 3, 16), date(2026, 3, 17), date(2026, 5, 20), date(2026, 5, 21)} <= buckets
    assert date(2026, 6, 30) in buckets and date(2026, 7, 14) in buckets
    # A month line holds the month's GPU-hours at the rate the days have.
    by_month = usage_cost_lines(
        organization=org, start=date(2026, 1, 1), end=date(2026, 2, 1), granularity="month"
    )
    january = [line for line in lines if line.bucket == date(2026, 1, 1)]
    assert sorted(map(repr, january)) == sorted(map(repr, by_month))


def test_statements_priced_from_a_read_of_whole_months_equal_their_own(org, history):
    source = _spend_source(organization=org, windows=[_term_window(history, NOW)])
    assert any(cost.bucket == date(2026, 1, 1) for cost in source.usage_days)  # a month line
    shared = statement_get(organization=org, month=date(2026, 7, 1), now=NOW, source=source)
    own = statement_get(organization=org, month=date(2026, 7, 1), now=NOW)
    assert shared == own
    assert own.usage_total > 0
    # A past month of split rates, from the same read.
    may = statement_get(organization=org, month=date(2026, 5, 1), now=NOW, source=source)
    assert may == statement_get(organization=org, month=date(2026, 5, 1), now=NOW)


@pytest.fixture
def contracts(org, history, h100):
    """Besides the history's two: one terminated on 5 May 2026 whose term runs to 20 June
    2026, and one terminated before it ever was in force, from 10 December 2025 to
    15 February 2026 (their windows start or end inside months the others hold whole)."""
    june = ContractFactory(
        organization=org,
        status=Contract.Status.TERMINATED,
        term_start=date(2026, 4, 1),
        term_end=date(2026, 6, 20),
    )
    Contract.all_objects.filter(pk=june.pk).update(terminated_at=at(2026, 5, 5, 9))
    ContractRateFactory(contract=june, sku=h100, price_per_gpu_hour=Decimal("1.8123"))
    ContractFactory(
        organization=org,
        status=Contract.Status.TERMINATED,
        term_start=date(2025, 12, 10),
        term_end=date(2026, 2, 15),
    )
    return list(Contract.objects.for_organization(org).order_by("pk"))


def _consumed_day_by_day(contract, now):
    lines = contract_spend_lines(contract=contract, now=now, source=_daily_source(contract, now))
    return sum((line.amount for line in lines), Decimal("0.00"))


@pytest.mark.parametrize(
    "now",
    [NOW, at(2026, 6, 30, 23), at(2026, 6, 1), at(2026, 2, 20, 5), at(2025, 12, 31, 12)],
)
def test_consumed_spend_of_many_contracts_equals_the_day_by_day_pricing(
    org, history, contracts, now
):
    assert len(contracts) == 4
    consumed = contract_consumed_spend_many(organization=org, contracts=contracts, now=now)
    assert consumed == {c.pk: _consumed_day_by_day(c, now) for c in contracts}
    assert consumed[history.pk] > 0
    for contract in contracts:
        remaining = contract_remaining_commitment(contract=contract, now=now)
        assert remaining == contract.committed_spend - consumed[contract.pk]


def test_consumed_spend_reads_split_months_day_by_day(org, contracts):
    """The months a window starts or ends inside of are read day by day even where no
    contract starts or stops being in force in them."""
    never = next(c for c in contracts if c.term_start == date(2025, 12, 10))
    june = next(c for c in contracts if c.term_end == date(2026, 6, 20))
    source = _spend_source(
        organization=org,
        windows=[_term_window(c, NOW) for c in (contracts[0], never, june)],
    )
    buckets = {cost.bucket for cost in source.usage_days}
    assert {date(2025, 12, 10), date(2026, 2, 14), date(2026, 6, 19)} <= buckets
    assert date(2026, 1, 1) in buckets and date(2026, 1, 2) not in buckets
    # A single window: its own first and last months only.
    alone = _spend_source(organization=org, windows=[_term_window(never, NOW)])
    assert {cost.bucket for cost in alone.usage_days} >= {date(2025, 12, 31), date(2026, 2, 1)}
