"""The dashboard's money and usage figures: this month's GPU-hours and spend, and the burn-down
of the contract in force. Composed from the usage, statement and burn-down selectors, so the
dashboard shows exactly what the usage, statement and contract pages show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.utils import timezone

from accounts.models import Organization
from contracts.charges import month_start, next_month
from contracts.models import Contract
from contracts.selectors import contract_active_for
from contracts.selectors.spend import BurnDown, contract_burn_down, contract_burn_down_source
from contracts.selectors.statements import statement_currency, statement_get
from usage.selectors import usage_series

ZERO_HOURS = Decimal("0")
ZERO_MONEY = Decimal("0.00")


@dataclass(frozen=True)
class DashboardFigures:
    month: date  # first day of the current UTC month
    as_of: datetime
    gpu_hours: Decimal  # GPU-hours metered this month so far
    spend: Decimal | None  # this month's charges so far (usage and reservations); None: hidden
    currency: str  # of ``spend``: the statements' currency, which every contract is in
    contract: Contract | None  # the contract in force now
    burn_down: BurnDown | None


def dashboard_figures_get(
    *, organization: Organization, include_billing: bool, now: datetime | None = None
) -> DashboardFigures:
    """Month-to-date GPU-hours (UTC month, from the rollups); with ``include_billing``, the
    month's spend to date (the open statement's usage and reservation charges, without
    adjustments of earlier months) and the burn-down of the contract in force, in its currency.
    A constant number of queries."""
    now = now or timezone.now()
    month = month_start(now.date())
    rows = usage_series(
        organization=organization, start=month, end=next_month(month), granularity="month"
    )
    gpu_hours = sum((row.gpu_hours for row in rows), ZERO_HOURS)
    spend = contract = burn_down = None
    currency = statement_currency(organization)
    if include_billing:
        contract = contract_active_for(organization=organization, at=now)
        # The month's charges are read once: the burn-down's source holds them (the contract
        # is in force now; its term to now covers the month to now unless it began in it).
        source = None
        if contract is not None:
            source = contract_burn_down_source(contract=contract, now=now)
        statement = statement_get(organization=organization, month=month, now=now, source=source)
        spend = statement.usage_total + statement.reservation_total if statement else ZERO_MONEY
        if contract is not None:
            burn_down = contract_burn_down(contract=contract, now=now, source=source)
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
