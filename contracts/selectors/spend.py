"""Spend against a contract: consumed to date, by month, and the burn-down forecast."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from django.utils import timezone

from accounts.models import Organization
from quotas.pricing import round_money

from ..charges import (
    ChargeLine,
    ChargeSource,
    charge_lines_from,
    day_after_last,
    month_start,
    next_month,
    reservation_charge_rows,
    utc_midnight,
)
from ..models import Contract
from .charge_sums import charges_by_month

RUN_RATE_DAYS = 30
ZERO = Decimal("0.00")


def _term_window(contract: Contract, now: datetime) -> tuple[datetime, datetime]:
    start = utc_midnight(contract.term_start)
    return start, max(start, min(now, utc_midnight(contract.term_end)))


def contract_spend_lines(
    *, contract: Contract, now: datetime | None = None, source: ChargeSource | None = None
) -> list[ChargeLine]:
    """The organization's charges inside the contract's term, up to ``now``: what burns the
    commitment down (take-or-pay: all spend in the term counts, whatever priced it)."""
    if contract.status == Contract.Status.DRAFT:
        return []
    now = now or timezone.now()
    start, end = _term_window(contract, now)
    if source is None:
        source = _spend_source(organization=contract.organization, windows=[(start, end)])
    return charge_lines_from(source, start=start, end=end)


def _spend_source(
    *, organization: Organization, windows: list[tuple[datetime, datetime]]
) -> ChargeSource:
    """What the charges of each of ``windows`` (UTC midnight to any instant) need, read once
    over their span: the months every window holds whole or not at all from the monthly
    rollups, the months a window starts or ends inside of day by day. Each window is priced
    from it exactly as from ``charge_source``."""
    from usage.costing import usage_cost_days_and_months

    split = set()
    for start, end in windows:
        if start.astimezone(UTC).day != 1:
            split.add(month_start(start.astimezone(UTC).date()))
        # The month the window ends inside of, this month's partial days included.
        if end.astimezone(UTC) != utc_midnight(month_start(end.astimezone(UTC).date())):
            split.add(month_start(end.astimezone(UTC).date()))
    start, end = min(start for start, _ in windows), max(end for _, end in windows)
    if end <= start:
        return ChargeSource(start=start, end=end, usage_days=[], reservations=[])
    usage_days = usage_cost_days_and_months(
        organization=organization,
        start=start.astimezone(UTC).date(),
        end=day_after_last(end),
        daily_from=date.max,
        daily_months=split,
    )
    rows = reservation_charge_rows(organization=organization, start=start, end=end)
    return ChargeSource(start=start, end=end, usage_days=usage_days, reservations=rows)


def contract_consumed_spend_many(
    *, organization: Organization, contracts: Iterable[Contract], now: datetime | None = None
) -> dict[int, Decimal]:
    """Consumed spend of several contracts of one organization, from one read of the charges
    (a constant number of queries, however many contracts)."""
    now = now or timezone.now()
    contracts = [c for c in contracts if c.status != Contract.Status.DRAFT]
    consumed = {}
    if contracts:
        source = _spend_source(
            organization=organization, windows=[_term_window(c, now) for c in contracts]
        )
        for contract in contracts:
            consumed[contract.pk] = sum(
                (
                    line.amount
                    for line in contract_spend_lines(contract=contract, now=now, source=source)
                ),
                ZERO,
            )
    return consumed


@dataclass(frozen=True)
class BurnDownMonth:
    month: date
    committed: Decimal
    consumed: Decimal | None  # cumulative to the month's end (to now for this month); None: future
    forecast: Decimal | None  # cumulative forecast at the month's end; None: past months

    def as_dict(self) -> dict[str, str | None]:
        return {
            "month": self.month.strftime("%Y-%m"),
            "committed": str(self.committed),
            "consumed": None if self.consumed is None else str(self.consumed),
            "forecast": None if self.forecast is None else str(self.forecast),
        }


@dataclass(frozen=True)
class BurnDown:
    """Committed vs consumed by month, a forecast from the trailing run rate to the term's end
    and what it projects: under-use (committed minus forecast, when positive) or overage."""

    contract_id: int
    currency: str
    committed: Decimal
    consumed: Decimal
    remaining: Decimal
    consumed_percent: Decimal
    run_rate_days: int
    run_rate_per_day: Decimal  # shown rounded to the cent; the forecast uses the exact figure
    forecast_at_term_end: Decimal
    projected_underuse: Decimal  # > 0: under-use at term end; < 0: overage
    as_of: datetime
    months: list[BurnDownMonth]

    @property
    def projected_overage(self) -> Decimal:
        return -self.projected_underuse if self.projected_underuse < 0 else ZERO

    @property
    def summary(self) -> str:
        if self.projected_underuse > 0:
            return (
                f"At the current run rate, {self.projected_underuse:,} {self.currency} of the "
                f"commitment will be left unused at the end of the term."
            )
        if self.projected_underuse < 0:
            return (
                f"At the current run rate, spending will pass the commitment by "
                f"{self.projected_overage:,} {self.currency} by the end of the term."
            )
        return "At the current run rate, spending will meet the commitment exactly."

    def as_dict(self) -> dict:
        return {
            "currency": self.currency,
            "committed": str(self.committed),
            "consumed": str(self.consumed),
            "remaining": str(self.remaining),
            "consumed_percent": str(self.consumed_percent),
            "run_rate_days": self.run_rate_days,
            "run_rate_per_day": str(self.run_rate_per_day),
            "forecast_at_term_end": str(self.forecast_at_term_end),
            "projected_underuse": str(self.projected_underuse),
            "as_of": self.as_of.isoformat(),
            "months": [month.as_dict() for month in self.months],
        }


def _run_rate_window(contract: Contract, now: datetime) -> tuple[datetime, datetime]:
    """The last 30 whole UTC days inside the term and before now (fewer near its start)."""
    term_start_at, term_end_at = utc_midnight(contract.term_start), utc_midnight(contract.term_end)
    rate_end = min(utc_midnight(now.date()), term_end_at)
    return max(rate_end - timedelta(days=RUN_RATE_DAYS), term_start_at), rate_end


def contract_burn_down_windows(
    *, contract: Contract, now: datetime
) -> list[tuple[datetime, datetime]]:
    """The windows whose charges per month the burn-down of ``contract`` as of ``now`` sums:
    its term to now, then the run-rate window (``charge_sums.charges_by_month`` of them)."""
    return [_term_window(contract, now), _run_rate_window(contract, now)]


def contract_burn_down(
    *,
    contract: Contract,
    now: datetime | None = None,
    charges: list[dict[date, Decimal]] | None = None,
) -> BurnDown:
    """The burn-down of ``contract`` as of ``now``. Three queries, whatever the records: the
    usage and reservation charges per month of its term to now and of the run-rate window,
    summed in the database (``charge_sums.charges_by_month``, each line rounded as its
    statement line); none when given ``charges``, those sums for the windows of
    ``contract_burn_down_windows`` as of the same ``now``.

    Run rate: the charges of the last 30 whole UTC days inside the term (fewer when the term
    began less than 30 days ago), per day. Forecast at a month's end: consumed to now plus the
    run rate times the time from now to that month's end (or the term's end), rounded once.
    """
    now = now or timezone.now()
    term_start_at, term_end_at = utc_midnight(contract.term_start), utc_midnight(contract.term_end)
    rate_start, rate_end = _run_rate_window(contract, now)
    by_month: dict[date, Decimal] = {}
    days = max((rate_end - rate_start).days, 0)
    per_day = Fraction(0)
    if contract.status != Contract.Status.DRAFT:
        if charges is None:
            charges = charges_by_month(
                organization=contract.organization_id,
                windows=contract_burn_down_windows(contract=contract, now=now),
            )
        by_month = charges[0]
        if days:
            per_day = Fraction(sum(charges[1].values(), ZERO)) / days
    consumed = sum(by_month.values(), ZERO)

    def forecast_at(instant: datetime) -> Decimal:
        ahead = max(instant - max(now, term_start_at), timedelta(0))
        return consumed + round_money(per_day * Fraction(ahead.total_seconds()) / 86_400)

    forecast_end = forecast_at(term_end_at) if now < term_end_at else consumed
    months: list[BurnDownMonth] = []
    cumulative = ZERO
    month = month_start(contract.term_start)
    while month < contract.term_end:
        month_end_at = min(utc_midnight(next_month(month)), term_end_at)
        started = utc_midnight(month) <= now
        if started:
            cumulative += by_month.get(month, ZERO)
        months.append(
            BurnDownMonth(
                month=month,
                committed=contract.committed_spend,
                consumed=cumulative if started else None,
                forecast=forecast_at(month_end_at) if month_end_at > now else None,
            )
        )
        month = next_month(month)

    committed = contract.committed_spend
    return BurnDown(
        contract_id=contract.pk,
        currency=contract.currency,
        committed=committed,
        consumed=consumed,
        remaining=committed - consumed,
        consumed_percent=(
            (consumed * 100 / committed).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
            if committed
            else Decimal("0")
        ),
        run_rate_days=days,
        run_rate_per_day=round_money(per_day),
        forecast_at_term_end=forecast_end,
        projected_underuse=committed - forecast_end,
        as_of=now,
        months=months,
    )
