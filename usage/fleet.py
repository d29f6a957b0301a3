"""Staff: usage across the organizations a staff member looks after (an account manager their
own, a capacity planner or superuser all), over whole UTC months: GPU-hours and cost per GPU
type, per region and per organization.

Read from the rollups, never the hourly records: the monthly rollups, plus the daily rollups
of the (organization, month) pairs in which a contract starts or stops being in force (only
there does the rate change inside a month). Every organization's usage is priced as its own
history and statements price it (``usage.costing``): per (organization, SKU, region,
reservation, contract) over the window, each line rounded once to the cent, so the cost of an
organization here equals ``usage_cost_total(usage_cost_lines(...))`` for the same months.

Queries are constant in number (at most eight), whatever the records and organizations.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from django.db.models import QuerySet
from django.db.models.functions import TruncMonth

from accounts.models import Organization
from contracts.models import Contract, ContractRate
from quotas.models import GpuSku, Region, Reservation

from .costing import (
    IN_FORCE_STATUSES,
    LIST_CURRENCY,
    contract_in_force_until,
    round_money,
)
from .models import UsageDaily, UsageMonthly

ZERO = Decimal("0")
TOP_ORGANIZATIONS = 10


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


@dataclass(frozen=True)
class FleetRow:
    """GPU-hours and cost (per currency) of one GPU type, region or organization."""

    key: int
    name: str
    gpu_hours: Decimal
    cost: dict[str, Decimal]


@dataclass(frozen=True)
class FleetUsage:
    start: date
    end: date
    currencies: list[str]
    by_sku: list[FleetRow]
    by_region: list[FleetRow]
    top_organizations: list[FleetRow]
    organization_count: int  # organizations with usage in the window
    total_gpu_hours: Decimal
    total_cost: dict[str, Decimal]


def _contract_for_day(contracts: list[tuple[Contract, date]], day: date) -> int | None:
    """The contract in force on ``day``: the most recently started one (``contracts`` is
    sorted so), as ``usage_cost_lines`` decides."""
    for contract, until in contracts:
        if contract.term_start <= day < until:
            return contract.pk
    return None


def _boundary_months(contracts: list[tuple[Contract, date]], start: date, end: date) -> set[date]:
    """Months of [start, end) in which one of the contracts starts or stops being in force on
    a day other than the 1st."""
    months = set()
    for contract, until in contracts:
        for day in (contract.term_start, until):
            if start <= day < end and day.day != 1:
                months.add(day.replace(day=1))
    return months


def contracts_in_force(
    *, organizations, start: date, end: date
) -> dict[int, list[tuple[Contract, date]]]:
    """Per organization, the contracts that price some day of [start, end), each with the day
    it stops being in force, the most recently started first (as ``_contract_for_day`` reads
    them). ``organizations``: a queryset or a list of ids. One query."""
    in_force: dict[int, list[tuple[Contract, date]]] = defaultdict(list)
    for contract in (
        Contract.objects.unscoped_for_staff()
        .filter(
            organization__in=organizations,
            status__in=IN_FORCE_STATUSES,
            term_start__lt=end,
            term_end__gt=start,
        )
        .order_by("-term_start", "-pk")
    ):
        until = contract_in_force_until(contract)
        if until > contract.term_start:
            in_force[contract.organization_id].append((contract, until))
    return in_force


def usage_fleet(*, organizations: QuerySet[Organization], start: date, end: date) -> FleetUsage:
    """Usage of ``organizations`` over the whole UTC months [start, end) (both on the 1st),
    by GPU type, by region, and the organizations with the most GPU-hours."""
    if start.day != 1 or end.day != 1 or end <= start:
        raise ValueError("The fleet view covers whole months: start and end on the 1st.")

    in_force = contracts_in_force(organizations=organizations, start=start, end=end)
    boundaries = {
        org_id: _boundary_months(contracts, start, end) for org_id, contracts in in_force.items()
    }
    boundaries = {org_id: months for org_id, months in boundaries.items() if months}

    # (organization, sku, region, reservation, contract) -> GPU-hours over the window
    hours: dict[tuple, Decimal] = defaultdict(lambda: ZERO)
    keys = ("organization_id", "sku_id", "region_id", "reservation_id")
    monthly = (
        UsageMonthly.objects.unscoped_for_staff()
        .filter(organization__in=organizations, month__gte=start, month__lt=end)
        .values_list("month", *keys, "gpu_hours")
    )
    no_contracts: list = []
    for month, org_id, sku_id, region_id, reservation_id, gpu_hours in monthly:
        if org_id in boundaries and month in boundaries[org_id]:
            continue  # priced day by day below
        contract_id = None
        if reservation_id is None:
            contract_id = _contract_for_day(in_force.get(org_id, no_contracts), month)
        hours[(org_id, sku_id, region_id, reservation_id, contract_id)] += gpu_hours
    if boundaries:
        boundary_months = set().union(*boundaries.values())
        daily = (
            UsageDaily.objects.unscoped_for_staff()
            .filter(organization_id__in=list(boundaries), day__gte=start, day__lt=end)
            .annotate(month=TruncMonth("day"))
            .filter(month__in=sorted(boundary_months))
            .values_list("day", *keys, "gpu_hours")
        )
        for day, org_id, sku_id, region_id, reservation_id, gpu_hours in daily:
            if day.replace(day=1) not in boundaries[org_id]:
                continue
            contract_id = None
            if reservation_id is None:
                contract_id = _contract_for_day(in_force[org_id], day)
            hours[(org_id, sku_id, region_id, reservation_id, contract_id)] += gpu_hours

    contracts = {c.pk: c for per_org in in_force.values() for c, _ in per_org}
    rates = {
        (contract_id, sku_id, region_id): price
        for contract_id, sku_id, region_id, price in ContractRate.objects.filter(
            contract__in=list(contracts)
        ).values_list("contract_id", "sku_id", "region_id", "price_per_gpu_hour")
    }
    sku_ids = {key[1] for key in hours}
    region_ids = {key[2] for key in hours}
    skus = GpuSku.objects.in_bulk(sku_ids)
    regions = Region.objects.in_bulk(region_ids)
    reservation_rate = {
        r["pk"]: (r["currency"], r["rate_per_gpu_hour"])
        for r in Reservation.objects.unscoped_for_staff()
        .filter(pk__in={key[3] for key in hours if key[3]})
        .values("pk", "currency", "rate_per_gpu_hour")
    }

    # Price each key as usage_cost_lines does; a contract without a rate for the SKU falls
    # back to list price and merges with the list-price hours of the same key.
    priced: dict[tuple, Decimal] = defaultdict(lambda: ZERO)  # (..., currency, rate) -> hours
    for (org_id, sku_id, region_id, reservation_id, contract_id), gpu_hours in hours.items():
        if reservation_id is not None:
            currency, rate = reservation_rate[reservation_id]
        else:
            rate = None
            if contract_id is not None:
                rate = rates.get((contract_id, sku_id, region_id))
                if rate is None:
                    rate = rates.get((contract_id, sku_id, None))
            if rate is not None:
                currency = contracts[contract_id].currency
            else:
                contract_id = None
                currency, rate = LIST_CURRENCY, skus[sku_id].list_price_per_gpu_hour
        key = (org_id, sku_id, region_id, reservation_id, contract_id, currency, rate)
        priced[key] += gpu_hours

    per_sku, per_region, per_org = _Totals(), _Totals(), _Totals()
    for (org_id, sku_id, region_id, _res, _con, currency, rate), gpu_hours in priced.items():
        amount = round_money(Fraction(gpu_hours) * Fraction(rate))
        for totals, key in ((per_sku, sku_id), (per_region, region_id), (per_org, org_id)):
            totals.add(key, gpu_hours, currency, amount)

    top_ids = sorted(per_org.hours, key=lambda pk: (-per_org.hours[pk], pk))[:TOP_ORGANIZATIONS]
    names = dict(
        Organization.objects.filter(pk__in=top_ids).values_list("pk", "name") if top_ids else []
    )
    currencies = sorted({c for per in per_org.cost.values() for c in per})
    return FleetUsage(
        start=start,
        end=end,
        currencies=currencies,
        by_sku=sorted(
            per_sku.rows({pk: sku.name for pk, sku in skus.items()}, currencies),
            key=lambda row: row.name,
        ),
        by_region=sorted(
            per_region.rows({pk: region.code for pk, region in regions.items()}, currencies),
            key=lambda row: row.name,
        ),
        top_organizations=[
            row for pk in top_ids for row in per_org.rows(names, currencies, only=[pk])
        ],
        organization_count=len(per_org.hours),
        total_gpu_hours=sum(per_org.hours.values(), ZERO),
        total_cost={
            c: sum((per.get(c, ZERO) for per in per_org.cost.values()), ZERO) for c in currencies
        },
    )


class _Totals:
    def __init__(self) -> None:
        self.hours: dict[int, Decimal] = defaultdict(lambda: ZERO)
        self.cost: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))

    def add(self, key: int, gpu_hours: Decimal, currency: str, amount: Decimal) -> None:
        self.hours[key] += gpu_hours
        self.cost[key][currency] += amount

    def rows(self, names: dict[int, str], currencies: list[str], only=None) -> list[FleetRow]:
        return [
            FleetRow(
                key=pk,
                name=names[pk],
                gpu_hours=self.hours[pk],
                cost={c: self.cost[pk].get(c, ZERO) for c in currencies},
            )
            for pk in (self.hours if only is None else only)
        ]
