"""The consumed spend read lean (reservation charges summed in the database, usage as the
statement lines price it) equals the sum of the statement lines, to the cent: on random-ish
reservations (windows to the microsecond across month ends, odd rates, half-cent ties,
cancelled and released ones) and on usage priced by contracts that start and stop mid-month."""

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from contracts.charges import Kind, charge_lines, lines_total, reservation_charges_total
from contracts.models import Contract
from contracts.selectors import contract_consumed_spend
from contracts.selectors.charge_sums import usage_charges_total
from contracts.selectors.spend import contract_spend_lines
from quotas.workflow import ReservationState
from tests.factories import ContractFactory

from .conftest import at, make_reservation
from .test_costing_fast_path import history  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


def _reservation_total(organization, start, end):
    lines = charge_lines(organization=organization, start=start, end=end)
    return lines_total(line for line in lines if line.kind == Kind.RESERVATION)


@pytest.fixture
def reservations(org, h100, a100, east, west):
    rng = random.Random(20261125)
    made = []
    for n in range(40):
        starts_at = at(2026, 1, 1) + timedelta(
            days=rng.randrange(0, 330), seconds=rng.randrange(0, 86_400), microseconds=n * 37
        )
        ends_at = starts_at + timedelta(
            hours=rng.randrange(1, 24 * 75), minutes=rng.randrange(0, 60), microseconds=n * 11
        )
        state = rng.choice(
            [ReservationState.ACTIVE, ReservationState.SCHEDULED, ReservationState.COMPLETED]
            + [ReservationState.CANCELLED] * (n % 5 == 0)
        )
        reservation = make_reservation(
            org,
            rng.choice([h100, a100]),
            rng.choice([east, west]),
            starts_at,
            ends_at,
            gpu_count=rng.choice([1, 3, 8, 64, 1000]),
            rate=f"{rng.randrange(0, 90_000) / 10_000:.4f}",
            state=state,
        )
        if n % 7 == 3:
            reservation.hold.released_at = starts_at + timedelta(hours=1)
            reservation.hold.save()
        made.append(reservation)
    # Half-cent ties: 1 GPU-hour at 1.0050 is 1.005, half-up 1.01 (half-even would give 1.00).
    made.append(
        make_reservation(
            org, h100, east, at(2026, 2, 3), at(2026, 2, 3, 1), gpu_count=1, rate="1.0050"
        )
    )
    made.append(
        make_reservation(
            org, h100, east, at(2026, 2, 4), at(2026, 2, 4, 3), gpu_count=1, rate="0.0005"
        )
    )
    return made


@pytest.mark.parametrize(
    "start, end",
    [
        (at(2026, 1, 1), at(2027, 1, 1)),
        (at(2026, 2, 3), at(2026, 2, 4)),
        (at(2026, 3, 17), at(2026, 7, 14, 10) + timedelta(minutes=30, microseconds=7)),
        (at(2026, 6, 1), at(2026, 6, 1)),
        (at(2025, 1, 1), at(2025, 6, 1)),
    ],
)
def test_reservation_charges_total_equals_the_sum_of_the_lines(org, reservations, start, end):
    expected = _reservation_total(org, start, end)
    assert reservation_charges_total(organization=org, start=start, end=end) == expected
    assert reservation_charges_total(organization=org.pk, start=start, end=end) == expected


def test_a_half_cent_is_rounded_up_once_per_line(org, h100, east):
    make_reservation(org, h100, east, at(2026, 2, 3), at(2026, 2, 3, 1), gpu_count=1, rate="1.0050")
    make_reservation(org, h100, east, at(2026, 2, 4), at(2026, 2, 4, 1), gpu_count=1, rate="1.0050")
    total = reservation_charges_total(organization=org, start=at(2026, 2, 1), end=at(2026, 3, 1))
    assert total == Decimal("2.02")


def test_reservation_charges_total_refuses_a_start_that_is_not_midnight(org):
    with pytest.raises(ValueError, match="UTC midnight"):
        reservation_charges_total(organization=org, start=at(2026, 2, 1, 5), end=at(2026, 3, 1))


@pytest.mark.parametrize(
    "now",
    [
        at(2026, 7, 14, 10) + timedelta(minutes=30),
        at(2026, 3, 17, 6),
        at(2026, 5, 1),
        at(2025, 10, 1),
        at(2028, 1, 1),
    ],
)
def test_consumed_spend_equals_the_sum_of_the_spend_lines(history, reservations, now):  # noqa: F811
    expected = lines_total(contract_spend_lines(contract=history, now=now))
    assert contract_consumed_spend(contract=history, now=now) == expected


@pytest.mark.parametrize(
    "start, end",
    [
        (at(2025, 9, 1), at(2026, 8, 1)),
        (at(2025, 10, 1), at(2026, 7, 15)),
        (at(2026, 3, 17), at(2026, 5, 21)),
        (at(2026, 5, 20), at(2026, 5, 21)),
        (at(2027, 1, 1), at(2027, 2, 1)),
    ],
)
def test_usage_charges_total_equals_the_sum_of_the_lines(org, history, start, end):  # noqa: F811
    lines = charge_lines(organization=org, start=start, end=end)
    expected = lines_total(line for line in lines if line.kind != Kind.RESERVATION)
    assert expected or start.year == 2027
    got = usage_charges_total(organization=org, start=start.date(), end=end.date())
    assert got == expected


def test_a_draft_contract_has_consumed_nothing(org, reservations):
    draft = ContractFactory(organization=org, status=Contract.Status.DRAFT)
    assert contract_consumed_spend(contract=draft, now=timezone.now()) == Decimal("0.00")
