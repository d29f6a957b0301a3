"""The burn-down's reservation charges per month, summed in the database, equal the sums of
the reservation lines of each month to the cent (same random-ish reservations as
``test_charges_total``), and the burn-down built on them is the burn-down built on the lines."""

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest

from contracts.charges import Kind, charge_lines, reservation_charges_by_month
from contracts.selectors import charge_sums
from contracts.selectors.spend import contract_burn_down

from .conftest import at
from .test_charges_total import reservations  # noqa: F401  (fixture)
from .test_costing_fast_path import history  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

WINDOWS = [
    (at(2026, 1, 1), at(2027, 1, 1)),
    (at(2026, 2, 3), at(2026, 2, 4)),
    (at(2026, 3, 17), at(2026, 7, 14, 10) + timedelta(minutes=30, microseconds=7)),
    (at(2026, 6, 1), at(2026, 6, 1)),
    (at(2025, 1, 1), at(2025, 6, 1)),
    (at(2025, 10, 1), at(2026, 11, 30, 23) + timedelta(seconds=59, microseconds=999_999)),
]


def _line_months(organization, start, end) -> dict:
    """Per month, the sum of the reservation lines ``charge_lines`` builds (in Python)."""
    months = defaultdict(lambda: Decimal("0.00"))
    for line in charge_lines(organization=organization, start=start, end=end):
        if line.kind == Kind.RESERVATION:
            months[line.period] += line.amount
    return dict(months)


def test_each_months_total_equals_the_sum_of_its_lines(org, reservations):  # noqa: F811
    got = reservation_charges_by_month(organization=org, windows=WINDOWS)
    assert len(got) == len(WINDOWS)
    for (start, end), months in zip(WINDOWS, got, strict=True):
        expected = _line_months(org, start, end)
        assert {m: a for m, a in months.items() if a} == {m: a for m, a in expected.items() if a}
    # The data is not trivial: many months with charges in the year window.
    assert sum(1 for amount in got[0].values() if amount) >= 10


def test_one_query_for_all_windows(org, reservations, django_assert_num_queries):  # noqa: F811
    with django_assert_num_queries(1):
        reservation_charges_by_month(organization=org.pk, windows=WINDOWS)
    with django_assert_num_queries(0):
        assert reservation_charges_by_month(organization=org, windows=[WINDOWS[3]]) == [{}]


def test_a_start_that_is_not_midnight_is_refused(org):
    with pytest.raises(ValueError, match="UTC midnight"):
        reservation_charges_by_month(
            organization=org, windows=[(at(2026, 2, 1, 5), at(2026, 3, 1))]
        )


def _by_month_from_lines(*, organization, windows):
    """What the burn-down summed before: the Python reservation lines, per month."""
    return [_line_months(organization, start, end) for start, end in windows]


@pytest.mark.parametrize(
    "now",
    [
        at(2026, 7, 14, 10) + timedelta(minutes=30),
        at(2026, 3, 17, 6),
        at(2026, 5, 1),
        at(2026, 12, 31, 23),
        at(2025, 10, 1),
        at(2028, 1, 1),
    ],
)
def test_burn_down_is_unchanged_by_summing_reservations_in_the_database(
    history,  # noqa: F811
    reservations,  # noqa: F811
    monkeypatch,
    now,
):
    from_sql = contract_burn_down(contract=history, now=now)
    monkeypatch.setattr(charge_sums, "reservation_charges_by_month", _by_month_from_lines)
    from_lines = contract_burn_down(contract=history, now=now)
    assert from_sql.as_dict() == from_lines.as_dict()
    assert from_sql == from_lines
    if now > at(2026, 2, 1):
        assert from_sql.consumed > 0
