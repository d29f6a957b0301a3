"""The dashboard's money and usage figures: this month's GPU-hours and spend, and the burn-down
of the contract in force. Composed from the usage, charge and burn-down selectors, so the
dashboard shows exactly what the usage, statement and contract pages show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.utils import timezone

from accounts.models import Organization
from contracts.charges import month_start, next_month, utc_midnight
from contracts.models import Contract
from contracts.selectors import contract_active_for
from contracts.selectors.charge_sums import charges_by_month
from contracts.selectors.spend import BurnDown, contract_burn_down, contract_burn_down_windows
from contracts.selectors.statements import statement_currency
from usage.selectors import usage_aggregate_rows

ZERO_HOURS = Decimal("0")
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class DashboardFigures:
    month: date  # first day of the current UTC month
    as_of: datetime
    gpu_hours: Decimal  # GPU-hours metered this month so far
    spend: Decimal | None  # this month's charges so far (usage and reservations); None: hidden
    currency: str  # of ``spend``: the statements' currency, which every contract is in
    contract: Contract | None  # the contract in force now
    burn_down: BurnDown | None


def month_spend(*, organization: Organization, now: datetime) -> Decimal:
    """The usage and reservation charges of the UTC month holding ``now``, to ``now``: the
    open statement's ``usage_total + reservation_total`` (``statement_get``; the month has not
    ended, so no statement of it is issued), without the adjustments of earlier months.
    Three queries (``charges_by_month``)."""
    window = (utc_midnight(month_start(now.date())), now)
    return sum(charges_by_month(organization=organization, windows=[window])[0].values(), ZERO)


def dashboard_figures_get(
    *, organization: Organization, include_billing: bool, now: datetime | None = None
) -> DashboardFigures:
    """Month-to-date GPU-hours (UTC month, from the rollups); with ``include_billing``, the
    month's spend to date (the open statement's usage and reservation charges, without
    adjustments of earlier months) and the burn-down of the contract in force, in its currency.
    Five queries: the month's usage, the contract, and the charges per month of the burn-down's
    windows and of this month, summed in the database (``charges_by_month``)."""
    now = now or timezone.now()
    month = month_start(now.date())
    rows = usage_aggregate_rows(
        organization=organization, start=month, end=next_month(month), granularity="month"
    )
    gpu_hours = sum((row.gpu_hours for row in rows), ZERO_HOURS)
    spend = contract = burn_down = None
    currency = statement_currency(organization)
    if include_billing:
        contract = contract_active_for(organization=organization, at=now)
        if contract is None:
            spend = month_spend(organization=organization, now=now)
        else:
            # The month's charges are one more window of the burn-down's read.
            windows = contract_burn_down_windows(contract=contract, now=now)
            windows.append((utc_midnight(month), now))
            charges = charges_by_month(organization=organization, windows=windows)
            burn_down = contract_burn_down(contract=contract, now=now, charges=charges[:-1])
            spend = sum(charges[-1].values(), ZERO)
            currency = contract.currency
    return DashboardFigures(
        month=month,
        as_of=now,
        gpu_hours=gpu_hours,
        spend=spend,
        currency=currency,
        contract=contract,
        burn_down=burn_down,
    )
