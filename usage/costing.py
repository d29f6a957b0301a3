"""What metered usage costs: GPU-hours x rate, the one place that prices usage (history pages,
statements and the contract burn-down all call ``usage_cost_lines``).

Which rate, per UTC day of usage:

1. Usage tied to a reservation: the reservation's frozen rate and currency (source
   ``"reservation"``). The reservation itself is charged for its whole window, so these lines
   are **not billable** again (``billable=False``); they are shown to explain the figure.
2. Otherwise the organization's contract that was **in force** on the day: its rate for the
   SKU in the region, else its rate for the SKU in any region, in the contract's currency
   (source ``"contract"``), as ``contracts.selectors.contract_rate_for`` decides. In force
   means what held at the time of use, not the status today: an active or expired contract on
   the days of its term, a terminated one on the days of its term that began before its
   termination (``Contract.terminated_at``); a draft never, nor a contract terminated as a
   draft. Late usage for a day therefore gets the rate it would have had on time.
3. Otherwise the SKU's list price in USD (source ``"list"``).

Rounding (docs/pricing.md): the amount of a line is GPU-hours x rate computed exactly, rounded
once, half-up, to the cent. GPU-hours are exact (four decimals at most), never rounded.

The reads are constant in number: one rollup query, one for contracts and their rates, one for
SKU list prices, one for reservation rates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from django.db.models import Case, DateField, F, IntegerField, Q, Sum, Value, When
from django.db.models.functions import Trunc

from accounts.models import Organization
from contracts.models import Contract, ContractRate
from quotas.models import GpuSku, Reservation

from .models import UsageDaily, UsageMonthly

LIST_CURRENCY = "USD"
SOURCE_RESERVATION, SOURCE_CONTRACT, SOURCE_LIST = "reservation", "contract", "list"


@dataclass(frozen=True)
class CostLine:
    """GPU-hours of one SKU in one region (one bucket, one rate) and what they cost."""

    bucket: date | None  # start of the day / ISO week / month; None for the whole window
    sku_id: int
    region_id: int
    reservation_id: int | None
    contract_id: int | None
    source: str  # "reservation", "contract" or "list"
    currency: str
    rate_per_gpu_hour: Decimal
    gpu_hours: Decimal
    amount: Decimal  # rounded half-up to the cent, once
    billable: bool  # False for usage inside a reservation (the reservation is charged)


def round_money(amount: Fraction) -> Decimal:
    """Same rule as ``quotas.pricing.round_money`` (imported lazily there to avoid a cycle
    through ``contracts.selectors``, which prices consumed spend with this module)."""
    from quotas.pricing import round_money as pricing_round_money

    return pricing_round_money(amount)


IN_FORCE_STATUSES = (
    Contract.Status.ACTIVE,
    Contract.Status.EXPIRED,
    Contract.Status.TERMINATED,
)


def contract_in_force_until(contract: Contract) -> date:
    """The day after the last UTC day of use the contract prices: its term end, or for a
    terminated contract the day after the one its termination fell in (usage is priced per UTC
    day; a day that began while the contract was in force is its day). A contract terminated
    as a draft, never in force, ends where it starts."""
    if contract.status != Contract.Status.TERMINATED:
        return contract.term_end
    if contract.terminated_at is None:
        return contract.term_start
    terminated = contract.terminated_at.astimezone(UTC)
    last = (
        terminated.date()
        if terminated.timetz() == time.min.replace(tzinfo=UTC)
        else (terminated.date() + timedelta(days=1))
    )
    return max(contract.term_start, min(contract.term_end, last))


def _in_force(org_id: int, start: date, end: date) -> list[tuple[Contract, date]]:
    """The organization's contracts in force on some day of [start, end), with the day after
    their last day in force; the most recently started first (contract_active_for: it wins
    where terms overlap)."""
    return [
        (contract, until)
        for contract in Contract.objects.for_organization(org_id)
        .filter(status__in=IN_FORCE_STATUSES, term_start__lt=end, term_end__gt=start)
        .order_by("-term_start", "-pk")
        if (until := contract_in_force_until(contract)) > contract.term_start
    ]


def contract_for_day(contracts: list[tuple[Contract, date]], day: date) -> int | None:
    """The contract in force on ``day`` among ``contracts`` (each with the day it stops being
    in force, the most recently started first, as ``_in_force`` returns them): the first that
    covers the day."""
    for contract, until in contracts:
        if contract.term_start <= day < until:
            return contract.pk
    return None


def boundary_months(contracts: list[tuple[Contract, date]], start: date, end: date) -> set[date]:
    """The months (their 1sts) of [start, end) in which one of ``contracts`` starts or stops
    being in force on a day other than the 1st: the only months in which the rate of a key
    changes inside the month, so the only ones a monthly rollup cannot price."""
    months = set()
    for contract, until in contracts:
        for day in (contract.term_start, until):
            if start <= day < end and day.day != 1:
                months.add(day.replace(day=1))
    return months


def usage_rate(
    *,
    sku_id: int,
    region_id: int,
    reservation_id: int | None,
    contract_id: int | None,
    reservation_rates: Mapping[int, tuple[str, Decimal]],
    contract_rates: Mapping[tuple[int, int, int | None], Decimal],
    contract_currencies: Mapping[int, str],
    list_prices: Mapping[int, Decimal],
) -> tuple[str, int | None, str, Decimal]:
    """``(source, contract_id, currency, rate)`` of usage of one key, by the rules above:
    the reservation's rate, else the contract's rate for the SKU in the region, then in any
    region, else list price (``contract_id`` then None)."""
    if reservation_id is not None:
        currency, rate = reservation_rates[reservation_id]
        return SOURCE_RESERVATION, contract_id, currency, rate
    if contract_id is not None:
        rate = contract_rates.get((contract_id, sku_id, region_id))
        if rate is None:
            rate = contract_rates.get((contract_id, sku_id, None))
        if rate is not None:
            return SOURCE_CONTRACT, contract_id, contract_currencies[contract_id], rate
    return SOURCE_LIST, None, LIST_CURRENCY, list_prices[sku_id]


def _contract_case(in_force: list[tuple[Contract, date]], *, field: str = "day") -> Case:
    """The contract in force on the row's ``field`` (a day), for usage outside reservations."""
    return Case(
        *(
            When(
                Q(reservation_id__isnull=True)
                & Q(**{f"{field}__gte": c.term_start, f"{field}__lt": until}),
                then=Value(c.pk),
            )
            for c, until in in_force
        ),
        default=Value(None),
        output_field=IntegerField(),
    )


def usage_cost_lines(
    *,
    organization: Organization | int,
    start: date,
    end: date,
    granularity: Literal["day", "week", "month"] | None = None,
) -> list[CostLine]:
    """Priced usage of one organization over the UTC days [start, end), one line per
    (bucket, SKU, region, reservation, contract), ordered by bucket, SKU, region."""
    org_id = organization if isinstance(organization, int) else organization.pk
    in_force = _in_force(org_id, start, end)
    queryset = UsageDaily.objects.for_organization(org_id).filter(day__gte=start, day__lt=end)
    values = ["sku_id", "region_id", "reservation_id", "contract_id"]
    if granularity == "day":
        queryset = queryset.annotate(bucket=F("day"))
    elif granularity in ("week", "month"):
        queryset = queryset.annotate(bucket=Trunc("day", granularity, output_field=DateField()))
    elif granularity is not None:
        raise ValueError("granularity is day, week, month or None.")
    if granularity is not None:
        values.insert(0, "bucket")
    rows = list(
        queryset.annotate(contract_id=_contract_case(in_force))
        .values(*values)
        .annotate(total=Sum("gpu_hours"))
        .order_by(*values)
    )
    return _price(org_id, rows, [c for c, _ in in_force])


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def usage_cost_days_and_months(
    *,
    organization: Organization | int,
    start: date,
    end: date,
    daily_from: date,
    daily_months: Collection[date] = (),
) -> list[CostLine]:
    """``usage_cost_lines(granularity="day")`` over [start, end) with fewer rows read: each
    whole UTC month that ends by ``daily_from`` and in which no contract starts or stops being
    in force (one rate per key all month) is one line per key, bucketed on the month's 1st,
    read from the monthly rollups; every other day is its own line, from the daily rollups,
    as are the days of ``daily_months`` (their 1sts: months a sub-window starts or ends in).

    A month line holds exactly the GPU-hours of that month's day lines at the same rate, so
    anything that sums GPU-hours per month and key before rounding (the charges, the
    burn-down) gets the same figures. Only sub-windows that contain each month line's month
    whole, or none of it, may be priced from the result. Four to five queries.
    """
    org_id = organization if isinstance(organization, int) else organization.pk
    in_force = _in_force(org_id, start, end)
    boundaries = boundary_months(in_force, start, end) | set(daily_months)
    whole_months = []
    month = start if start.day == 1 else _next_month(start)
    while _next_month(month) <= min(end, daily_from):
        if month not in boundaries:
            whole_months.append(month)
        month = _next_month(month)
    values = ["bucket", "sku_id", "region_id", "reservation_id", "contract_id"]
    # The days outside the whole months, as ranges (an index range scan each).
    ranges, cursor = [], start
    for month in whole_months:
        if cursor < month:
            ranges.append((cursor, month))
        cursor = _next_month(month)
    if cursor < end:
        ranges.append((cursor, end))
    days = Q(pk__in=[])
    for low, high in ranges:
        days |= Q(day__gte=low, day__lt=high)
    rows_read = (
        UsageDaily.objects.for_organization(org_id)
        .filter(days)
        .annotate(bucket=F("day"), contract_id=_contract_case(in_force))
        .values(*values)
        .annotate(total=Sum("gpu_hours"))
    )
    if whole_months:
        # One query: the monthly rollups (one row per key and month) after the daily sums.
        # No contract starts or stops inside these months, so the one in force on the 1st
        # is the one in force on each of their days.
        monthly = (
            UsageMonthly.objects.for_organization(org_id)
            .filter(month__in=whole_months)
            .annotate(
                bucket=F("month"),
                contract_id=_contract_case(in_force, field="month"),
                total=F("gpu_hours"),
            )
            .values(*values, "total")
        )
        rows_read = rows_read.union(monthly, all=True)
    rows = sorted(
        rows_read,
        key=lambda row: (
            row["bucket"],
            row["sku_id"],
            row["region_id"],
            row["reservation_id"] or 0,
            row["contract_id"] or 0,
        ),
    )
    return _price(org_id, rows, [c for c, _ in in_force])


def _price(org_id: int, rows: list[dict], contracts: list[Contract]) -> list[CostLine]:
    """Price rows of summed GPU-hours: three queries (rates, list prices, reservations)."""
    rates: dict[tuple[int, int, int | None], Decimal] = {}
    for rate in ContractRate.objects.filter(contract__in=[c.pk for c in contracts]):
        rates[(rate.contract_id, rate.sku_id, rate.region_id)] = rate.price_per_gpu_hour
    currency_of = {c.pk: c.currency for c in contracts}
    sku_ids = {row["sku_id"] for row in rows}
    list_price = dict(
        GpuSku.objects.filter(pk__in=sku_ids).values_list("pk", "list_price_per_gpu_hour")
    )
    reservation_ids = {row["reservation_id"] for row in rows if row["reservation_id"]}
    reservation_rate = {
        r["pk"]: (r["currency"], r["rate_per_gpu_hour"])
        for r in Reservation.objects.for_organization(org_id)
        .filter(pk__in=reservation_ids)
        .values("pk", "currency", "rate_per_gpu_hour")
    }

    lines = []
    for row in rows:
        sku_id, region_id = row["sku_id"], row["region_id"]
        reservation_id = row["reservation_id"]
        source, contract_id, currency, rate = usage_rate(
            sku_id=sku_id,
            region_id=region_id,
            reservation_id=reservation_id,
            contract_id=row["contract_id"],
            reservation_rates=reservation_rate,
            contract_rates=rates,
            contract_currencies=currency_of,
            list_prices=list_price,
        )
        gpu_hours = row["total"]
        lines.append(
            CostLine(
                bucket=row.get("bucket"),
                sku_id=sku_id,
                region_id=region_id,
                reservation_id=reservation_id,
                contract_id=contract_id,
                source=source,
                currency=currency,
                rate_per_gpu_hour=rate,
                gpu_hours=gpu_hours,
                amount=round_money(Fraction(gpu_hours) * Fraction(rate)),
                billable=reservation_id is None,
            )
        )
    return _merge_same_rate(lines)


def _merge_same_rate(lines: list[CostLine]) -> list[CostLine]:
    """A contract without a rate for a SKU falls back to list price: merge such lines with the
    list-price lines of the same key so each (bucket, key, rate) appears once, rounded once."""
    merged: dict[tuple, list[CostLine]] = defaultdict(list)
    for line in lines:
        key = (
            line.bucket,
            line.sku_id,
            line.region_id,
            line.reservation_id,
            line.contract_id,
            line.source,
        )
        merged[key].append(line)
    result = []
    for group in merged.values():
        first = group[0]
        if len(group) == 1:
            result.append(first)
            continue
        gpu_hours = sum((line.gpu_hours for line in group), Decimal("0"))
        result.append(
            CostLine(
                **{
                    **first.__dict__,
                    "gpu_hours": gpu_hours,
                    "amount": round_money(Fraction(gpu_hours) * Fraction(first.rate_per_gpu_hour)),
                }
            )
        )
    return result


def usage_rows_rated(rows: list[tuple], *, in_force: list) -> Iterator[tuple]:
    """The rows of a billable-usage statement shaped as ``contracts.selectors.charge_sums``'s
    ``_USAGE_MONTHS_SQL`` (leading key columns, then SKU, region, contract, GPU-hours, the
    contract's rate for the region and for any region, the list price), each with the rate
    ``usage_rate`` picks: (leading columns, sku_id, region_id, gpu_hours, rate, source,
    contract_id). ``in_force`` is the (contract, until) pairs the statement's contract column
    was chosen from."""
    contract_rates: dict[tuple[int, int, int | None], Decimal] = {}
    list_prices: dict[int, Decimal] = {}
    for *_, sku_id, region_id, contract_id, _, region_rate, any_region_rate, list_price in rows:
        if region_rate is not None:
            contract_rates[(contract_id, sku_id, region_id)] = region_rate
        if any_region_rate is not None:
            contract_rates[(contract_id, sku_id, None)] = any_region_rate
        list_prices[sku_id] = list_price
    currencies = {contract.pk: contract.currency for contract, _ in in_force}
    for *lead, sku_id, region_id, contract_id, gpu_hours, _, _, _ in rows:
        source, contract_id, _, rate = usage_rate(
            sku_id=sku_id,
            region_id=region_id,
            reservation_id=None,
            contract_id=contract_id,
            reservation_rates={},
            contract_rates=contract_rates,
            contract_currencies=currencies,
            list_prices=list_prices,
        )
        yield tuple(lead), sku_id, region_id, gpu_hours, rate, source, contract_id


def usage_cost_total(lines: list[CostLine], *, billable_only: bool = True) -> dict[str, Decimal]:
    """Sum of line amounts per currency."""
    totals: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for line in lines:
        if line.billable or not billable_only:
            totals[line.currency] += line.amount
    return dict(totals)


__all__ = [
    "CostLine",
    "boundary_months",
    "contract_for_day",
    "usage_cost_days_and_months",
    "usage_cost_lines",
    "usage_cost_total",
    "usage_rate",
]
