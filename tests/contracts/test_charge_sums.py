"""The usage and reservation charges per month summed in the database (``charge_sums``) equal
the sums of the statement lines ``charge_lines`` builds day by day, to the cent: across
contracts that start, stop and are terminated mid-month, a SKU without a contract rate, usage
inside a reservation, windows that start or end inside months, and reservations of odd rates
(the fixtures of ``test_costing_fast_path`` and ``test_charges_total``)."""

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest

from contracts.charges import Kind, charge_lines, utc_midnight
from contracts.selectors.charge_sums import charges_by_month, usage_charges_by_month
from contracts.selectors.spend import contract_burn_down, contract_burn_down_windows

from .conftest import at
from .test_charges_total import reservations  # noqa: F401  (fixture)
from .test_costing_fast_path import NOW, history  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

WINDOWS = [
    (at(2025, 9, 1), NOW),
    (at(2025, 10, 1), at(2026, 7, 1)),
    (at(2026, 3, 17), at(2026, 5, 20, 12)),
    (at(2026, 2, 3), at(2026, 2, 4)),
    (at(2026, 5, 21), at(2026, 7, 14, 10) + timedelta(minutes=30, microseconds=7)),
    (at(2026, 4, 1), at(2026, 4, 9)),
    (at(2026, 6, 1), at(2026, 6, 1)),
    (at(2026, 7, 1), at(2026, 6, 1)),
    (at(2024, 1, 1), at(2025, 1, 1)),
    (at(2025, 12, 1), at(2027, 1, 1)),
]


def line_charges_by_month(*, organization, windows) -> list[dict[date, Decimal]]:
    """What the sums stand for: per window, the usage and reservation lines of
    ``charge_lines`` (priced day by day, in Python) summed per month."""
    result = []
    for start, end in windows:
        months = defaultdict(lambda: Decimal("0.00"))
        if end > start:
            for line in charge_lines(organization=organization, start=start, end=end):
                if line.kind in (Kind.USAGE, Kind.RESERVATION):
                    months[line.period] += line.amount
        result.append(dict(months))
    return result


def _nonzero(months: dict) -> dict:
    return {month: amount for month, amount in months.items() if amount}


def test_each_months_charges_equal_the_sum_of_its_lines(org, history, reservations):  # noqa: F811
    got = charges_by_month(organization=org, windows=WINDOWS)
    expected = line_charges_by_month(organization=org, windows=WINDOWS)
    assert len(got) == len(WINDOWS)
    for window, months, lines in zip(WINDOWS, got, expected, strict=True):
        assert _nonzero(months) == _nonzero(lines), window
    # Not trivial: usage and reservations in most months of the first window, and March and
    # May (a contract starts, then is terminated, inside them) have charges.
    assert len(_nonzero(got[0])) >= 10
    assert {date(2026, 3, 1), date(2026, 5, 1)} <= set(got[0])


def test_usage_alone_equals_the_usage_lines(org, history):  # noqa: F811
    windows = [(start, utc_midnight(end.date() + timedelta(days=1))) for start, end in WINDOWS]
    got = usage_charges_by_month(
        organization=org, windows=[(start.date(), end.date()) for start, end in windows]
    )
    for (start, end), months in zip(windows, got, strict=True):
        expected = defaultdict(lambda: Decimal("0.00"))
        if end > start:
            for line in charge_lines(organization=org, start=start, end=end):
                if line.kind == Kind.USAGE:
                    expected[line.period] += line.amount
        assert _nonzero(months) == _nonzero(expected), (start, end)
    assert len(got[0]) >= 10


def test_three_queries_for_all_windows(org, history, reservations, django_assert_num_queries):  # noqa: F811
    with django_assert_num_queries(3):
        charges_by_month(organization=org.pk, windows=WINDOWS)
    with django_assert_num_queries(0):
        assert charges_by_month(organization=org, windows=[WINDOWS[6]]) == [{}]


def test_a_start_that_is_not_midnight_is_refused(org):
    with pytest.raises(ValueError, match="UTC midnight"):
        charges_by_month(organization=org, windows=[(at(2026, 2, 1, 5), at(2026, 3, 1))])


@pytest.mark.parametrize(
    "now",
    [
        NOW,
        at(2026, 5, 20, 18),
        at(2026, 6, 1),
        at(2026, 3, 17, 1),
        at(2025, 11, 2, 7),
        at(2025, 9, 1),
        at(2028, 1, 1),
    ],
)
def test_burn_down_equals_the_burn_down_of_the_lines(history, reservations, now):  # noqa: F811
    from_lines = line_charges_by_month(
        organization=history.organization,
        windows=contract_burn_down_windows(contract=history, now=now),
    )
    burn = contract_burn_down(contract=history, now=now)
    assert burn == contract_burn_down(contract=history, now=now, charges=from_lines)
    if now > at(2026, 2, 1):
        assert burn.consumed > 0
    if at(2026, 2, 1) < now < at(2026, 7, 20):  # usage in the run-rate window
        assert burn.run_rate_per_day > 0
