"""Usage cost of many organizations at once, and the staff fleet view built on it.

``usage_cost_by_organization`` prices the usage of several organizations in a constant number
of queries, exactly as ``usage.costing`` prices each one's history and statements: per
(organization, SKU, region, reservation, contract), over the window or per month of it, each
line rounded once. It reads the rollups, never the hourly records: the monthly rollups, plus
the daily rollups of the (organization, month) pairs in which a contract starts or stops being
in force, or the organization's window starts or ends, inside the month (only there can a
monthly rollup not be priced whole). The staff fleet usage page (``usage_fleet``) and the staff
organizations page (``quotas.selectors.pages``: this month's cost, contracts consumed) all
price through it.

``usage_fleet``: usage across the organizations a staff member looks after (an account manager
their own, a capacity planner or superuser all), over whole UTC months: GPU-hours and cost per
GPU type, per region and per organization; the cost of an organization equals
``usage_cost_total(usage_cost_lines(...), billable_only=False)`` for the same months. At most
eight queries, whatever the records and organizations.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from django.db import connection
from django.db.models import Q, QuerySet

from accounts.models import Organization
from contracts.models import Contract, ContractRate
from portal.prepared import prepared_cursor
from portal.rows import Columns
from quotas.models import GpuSku, Region, Reservation

from .costing import (
    IN_FORCE_STATUSES,
    CostLine,
    boundary_months,
    contract_for_day,
    contract_in_force_until,
    round_money,
    usage_rate,
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


def contracts_in_force(
    *, organizations: QuerySet[Organization] | Collection[int], start: date, end: date
) -> dict[int, list[tuple[Contract, date]]]:
    """Per organization, the contracts that price some day of [start, end), each with the day
    it stops being in force, the most recently started first (as ``contract_for_day`` reads
    them). ``organizations``: a queryset or ids. One query."""
    in_force: dict[int, list[tuple[Contract, date]]] = defaultdict(list)
    if isinstance(organizations, QuerySet):
        contracts = (
            Contract.objects.unscoped_for_staff()
            .filter(
                organization__in=organizations,
                status__in=IN_FORCE_STATUSES,
                term_start__lt=end,
                term_end__gt=start,
            )
            .order_by("-term_start", "-pk")
        )
    else:
        contracts = _contracts_in_force_of_ids(list(organizations), start=start, end=end)
    for contract in contracts:
        until = contract_in_force_until(contract)
        if until > contract.term_start:
            in_force[contract.organization_id].append((contract, until))
    return in_force


def _contracts_in_force_of_ids(organization_ids: list[int], *, start: date, end: date) -> list:
    """The ORM query above for organization ids, written once and prepared once per connection
    (``portal.prepared``): every automatic check reads it (the contract's consumed spend), and
    compiling the ORM query cost more client CPU than the rest of the read."""
    if not organization_ids:
        return []  # as the ORM: an empty ``__in`` runs no query
    sql, columns = _contracts_in_force_statement()
    with prepared_cursor() as cursor:
        cursor.execute(
            sql,
            {
                "organizations": organization_ids,
                "statuses": [str(status) for status in IN_FORCE_STATUSES],
                "start": start,
                "end": end,
            },
        )
        return [columns.load(row) for row in cursor.fetchall()]


@functools.cache
def _contracts_in_force_statement() -> tuple[str, Columns]:
    columns = Columns(Contract, "c")
    meta = Contract._meta
    quote = connection.ops.quote_name
    column = {name: quote(meta.get_field(name).column) for name in ("organization", "status")}
    column |= {name: quote(meta.get_field(name).column) for name in ("term_start", "term_end")}
    sql = (
        f"SELECT {columns.sql} FROM {quote(meta.db_table)} c "  # noqa: S608 (names from the models)
        f"WHERE c.{column['organization']} = ANY(%(organizations)s::bigint[]) "
        f"AND c.{column['status']} = ANY(%(statuses)s::text[]) "
        f"AND c.{column['term_start']} < %(end)s AND c.{column['term_end']} > %(start)s "
        f"ORDER BY c.{column['term_start']} DESC, c.{quote(meta.pk.column)} DESC"
    )
    return sql, columns


@dataclass(frozen=True)
class OrganizationCostLine(CostLine):
    """A ``CostLine`` of one of several organizations (``bucket``: the month's 1st, or None
    for the whole window)."""

    organization_id: int


@dataclass(frozen=True)
class OrganizationsCost:
    lines: list[OrganizationCostLine]
    skus: dict[int, GpuSku]  # the GPU types of the lines (read for their list prices)


_LINE_KEY = (
    "organization_id",
    "bucket",
    "sku_id",
    "region_id",
    "reservation_id",
    "contract_id",
    "source",
    "currency",
    "rate_per_gpu_hour",
)


def _cut_months(start: date, end: date) -> set[date]:
    """The months (their 1sts) that [start, end) starts or ends inside of."""
    return {day.replace(day=1) for day in (start, end) if day.day != 1}


def usage_cost_by_organization(
    *,
    organizations: QuerySet[Organization] | Collection[int],
    start: date,
    end: date,
    windows: Mapping[int, tuple[date, date]] | None = None,
    by_month: bool = False,
    reservations: bool = True,
) -> OrganizationsCost:
    """Priced usage of ``organizations`` (a queryset or ids) over the UTC days [start, end),
    or over each organization's own days [from, to) of ``windows`` (inside [start, end);
    organizations missing from it count nothing): one line per (organization, SKU, region,
    reservation, contract and rate) over the window, or per month of it with ``by_month``,
    each rounded once, as ``usage_cost_lines`` prices each organization (its lines summed per
    window or month). Without ``reservations``, usage inside a reservation (covered by the
    reservation's own charge) is not read. At most six queries: contracts in force, monthly
    rollups, daily rollups (only where a month must be split), contract rates, GPU types,
    reservation rates; whatever the records and organizations.
    """
    if end <= start:
        return OrganizationsCost(lines=[], skus={})
    in_force = contracts_in_force(organizations=organizations, start=start, end=end)
    no_contracts: list[tuple[Contract, date]] = []

    def window(org_id: int) -> tuple[date, date] | None:
        return (start, end) if windows is None else windows.get(org_id)

    # The months read day by day, per organization; ``everyone``: for every organization.
    everyone = _cut_months(start, end) if windows is None else set()
    split: dict[int, set[date]] = {}
    for org_id in in_force if windows is None else windows:
        low, high = window(org_id)
        months = boundary_months(in_force.get(org_id, no_contracts), low, high)
        if windows is not None:
            months |= _cut_months(low, high)
        if months:
            split[org_id] = months

    # (organization, bucket, sku, region, reservation, contract) -> GPU-hours
    hours: dict[tuple, Decimal] = defaultdict(lambda: ZERO)

    def add(
        org_id: int,
        day: date,
        sku_id: int,
        region_id: int,
        reservation_id: int | None,
        gpu_hours: Decimal,
    ) -> None:
        contract_id = None
        if reservation_id is None:
            contract_id = contract_for_day(in_force.get(org_id, no_contracts), day)
        bucket = day.replace(day=1) if by_month else None
        hours[(org_id, bucket, sku_id, region_id, reservation_id, contract_id)] += gpu_hours

    columns = ("organization_id", "sku_id", "region_id", "reservation_id", "gpu_hours")
    only_usage = Q() if reservations else Q(reservation__isnull=True)
    for month, org_id, *key in (
        UsageMonthly.objects.unscoped_for_staff()
        .filter(only_usage, organization__in=organizations, month__gte=start, month__lt=end)
        .values_list("month", *columns)
    ):
        bounds = window(org_id)
        if (
            bounds is not None
            and bounds[0] <= month < bounds[1]
            and month not in everyone
            and month not in split.get(org_id, ())
        ):
            add(org_id, month, *key)
    months = everyone.union(*split.values())
    if months:
        days = Q(pk__in=[])
        for month in sorted(months):
            days |= Q(day__gte=max(month, start), day__lt=min(next_month(month), end))
        daily = UsageDaily.objects.unscoped_for_staff().filter(only_usage, days)
        if everyone:
            daily = daily.filter(organization__in=organizations)
        else:
            daily = daily.filter(organization_id__in=list(split))
        for day, org_id, *key in daily.values_list("day", *columns):
            low, high = window(org_id)
            month = day.replace(day=1)
            if low <= day < high and (month in everyone or month in split.get(org_id, ())):
                add(org_id, day, *key)

    contracts = {c.pk: c for per_org in in_force.values() for c, _ in per_org}
    rates = {
        (contract_id, sku_id, region_id): price
        for contract_id, sku_id, region_id, price in (
            ContractRate.objects.filter(contract__in=list(contracts)).values_list(
                "contract_id", "sku_id", "region_id", "price_per_gpu_hour"
            )
            if contracts
            else ()
        )
    }
    skus = GpuSku.objects.in_bulk({key[2] for key in hours})
    reservation_ids = {key[4] for key in hours if key[4]}
    reservation_rates = {
        r["pk"]: (r["currency"], r["rate_per_gpu_hour"])
        for r in (
            Reservation.objects.unscoped_for_staff()
            .filter(pk__in=reservation_ids)
            .values("pk", "currency", "rate_per_gpu_hour")
            if reservation_ids
            else ()
        )
    }
    currencies = {pk: contract.currency for pk, contract in contracts.items()}
    list_prices = {pk: sku.list_price_per_gpu_hour for pk, sku in skus.items()}

    # A contract without a rate for the SKU falls back to list price: those hours merge with
    # the list-price hours of the same key before rounding, as usage_cost_lines does.
    priced: dict[tuple, Decimal] = defaultdict(lambda: ZERO)  # _LINE_KEY -> GPU-hours
    for key, gpu_hours in hours.items():
        org_id, bucket, sku_id, region_id, reservation_id, contract_id = key
        source, contract_id, currency, rate = usage_rate(
            sku_id=sku_id,
            region_id=region_id,
            reservation_id=reservation_id,
            contract_id=contract_id,
            reservation_rates=reservation_rates,
            contract_rates=rates,
            contract_currencies=currencies,
            list_prices=list_prices,
        )
        line_key = (org_id, bucket, sku_id, region_id, reservation_id, contract_id, source)
        priced[(*line_key, currency, rate)] += gpu_hours
    lines = []
    for key, gpu_hours in priced.items():
        line = dict(zip(_LINE_KEY, key, strict=True))
        amount = round_money(Fraction(gpu_hours) * Fraction(line["rate_per_gpu_hour"]))
        billable = line["reservation_id"] is None
        lines.append(
            OrganizationCostLine(**line, gpu_hours=gpu_hours, amount=amount, billable=billable)
        )
    lines.sort(
        key=lambda line: (
            line.organization_id,
            line.bucket or start,
            line.sku_id,
            line.region_id,
            line.reservation_id or 0,
            line.contract_id or 0,
        )
    )
    return OrganizationsCost(lines=lines, skus=skus)


def usage_fleet(*, organizations: QuerySet[Organization], start: date, end: date) -> FleetUsage:
    """Usage of ``organizations`` over the whole UTC months [start, end) (both on the 1st),
    by GPU type, by region, and the organizations with the most GPU-hours."""
    if start.day != 1 or end.day != 1 or end <= start:
        raise ValueError("The fleet view covers whole months: start and end on the 1st.")

    cost = usage_cost_by_organization(organizations=organizations, start=start, end=end)
    skus = cost.skus
    regions = Region.objects.in_bulk({line.region_id for line in cost.lines})
    per_sku, per_region, per_org = _Totals(), _Totals(), _Totals()
    for line in cost.lines:
        for totals, key in (
            (per_sku, line.sku_id),
            (per_region, line.region_id),
            (per_org, line.organization_id),
        ):
            totals.add(key, line.gpu_hours, line.currency, line.amount)

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
