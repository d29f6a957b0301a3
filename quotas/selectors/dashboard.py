"""The dashboard's money and usage figures: this month's GPU-hours and spend, and the burn-down
of the contract in force. Composed from the usage, charge and burn-down selectors, so the
dashboard shows exactly what the usage, statement and contract pages show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.utils import timezone

from accounts.models import Organization
from contracts.charges import (
    ChargeSource,
    charge_lines,
    charge_lines_from,
    lines_total,
    month_start,
    next_month,
    utc_midnight,
)
from contracts.models import Contract, StatementLine
from contracts.selectors import contract_active_for
from contracts.selectors.spend import BurnDown, contract_burn_down, contract_burn_down_source
from contracts.selectors.statements import statement_currency
from usage.selectors import usage_aggregate_rows

ZERO_HOURS = Decimal("0")


@dataclass(frozen=True)
class DashboardFigures:
    month: date  # first day of the current UTC month
    as_of: datetime
    gpu_hours: Decimal  # GPU-hours metered this month so far
    spend: Decimal | None  # this month's charges so far (usage and reservations); None: hidden
    currency: str  # of ``spend``: the statements' currency, which every contract is in
    contract: Contract | None  # the contract in force now
    burn_down: BurnDown | None


def month_spend(
    *, organization: Organization, now: datetime, source: ChargeSource | None = None
) -> Decimal:
    """The usage and reservation charges of the UTC month holding ``now``, to ``now``: the
    open statement's ``usage_total + reservation_total`` (``statement_get``; the month has not
    ended, so no statement of it is issued), without the adjustments of earlier months and
    without reading the catalog for its rows. Priced from ``source`` when it holds the month
    to now (the burn-down's does whenever the contract's term began by the 1st), else read."""
    start = utc_midnight(month_start(now.date()))
    if source is not None and source.start <= start and now <= source.end:
        lines = charge_lines_from(source, start=start, end=now)
    else:
        lines = charge_lines(organization=organization, start=start, end=now)
    kinds = (StatementLine.Kind.USAGE, StatementLine.Kind.RESERVATION)
    return lines_total(line for line in lines if line.kind in kinds)


def dashboard_figures_get(
    *, organization: Organization, include_billing: bool, now: datetime | None = None
) -> DashboardFigures:
    """Month-to-date GPU-hours (UTC month, from the rollups); with ``include_billing``, the
    month's spend to date (the open statement's usage and reservation charges, without
    adjustments of earlier months) and the burn-down of the contract in force, in its currency.
    A constant number of queries: the month's usage, the contract, and what its burn-down
    reads (the month's charges come from the same read)."""
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
        source = None
        if contract is not None:
            contract.organization = organization  # read already: not again for the burn-down
            source = contract_burn_down_source(contract=contract, now=now)
            burn_down = contract_burn_down(contract=contract, now=now, source=source)
            currency = contract.currency
        spend = month_spend(organization=organization, now=now, source=source)
    return DashboardFigures(
        month=month,
        as_of=now,
        gpu_hours=gpu_hours,
        spend=spend,
        currency=currency,
        contract=contract,
        burn_down=burn_down,
    )
