"""The usage and reservation charges of windows per month, summed in the database: what the
burn-down and the dashboard's month spend show, without building a charge line.

Each month's figure is the sum of the amounts of that month's usage and reservation lines of
``contracts.charges.charge_lines`` over the window (covered usage counts nothing): usage per
month, SKU, region, rate and contract, reservations per reservation and month, each line
rounded once, half-up. ``tests/contracts/test_charge_sums.py`` holds the figures equal to the
lines'."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction

from accounts.models import Organization
from contracts.models import Contract, ContractRate
from quotas.models import GpuSku
from quotas.pricing import round_money

from ..charges import day_after_last, next_month, reservation_charges_by_month

ZERO = Decimal("0.00")

# Billable usage (outside reservations) of each window per month, SKU, region and the
# contract in force on the day: the first of the contracts given (most recently started first,
# as ``usage.costing.contract_for_day`` picks) whose [term start, in force until) holds the
# day. A window is read as ranges of days from the daily rollups and whole months from the
# monthly ones (a few dozen rows a year instead of hundreds of scattered daily rows), only
# months in which no contract starts or stops being in force: there the contract on the 1st
# is the contract of every day. With the rates ``usage_rate`` chooses between: the contract's
# for the region, for any region, and the SKU's list price. One text whatever the windows and
# contracts, so it is prepared once per connection.
_USAGE_MONTHS_SQL = """
SELECT u.n, u.month, u.sku_id, u.region_id, u.contract_id, u.gpu_hours,
       (SELECT cr.price_per_gpu_hour FROM {rate} cr
         WHERE cr.contract_id = u.contract_id AND cr.sku_id = u.sku_id
           AND cr.region_id = u.region_id) AS region_rate,
       (SELECT cr.price_per_gpu_hour FROM {rate} cr
         WHERE cr.contract_id = u.contract_id AND cr.sku_id = u.sku_id
           AND cr.region_id IS NULL) AS any_region_rate,
       (SELECT s.list_price_per_gpu_hour FROM {sku} s WHERE s.id = u.sku_id) AS list_price
  FROM (SELECT v.n, date_trunc('month', v.day::timestamp)::date AS month, v.sku_id,
               v.region_id,
               (SELECT c.id
                  FROM unnest(%(contracts)s::bigint[], %(contract_starts)s::date[],
                              %(contract_untils)s::date[]) WITH ORDINALITY
                       AS c(id, term_start, until, k)
                 WHERE v.day >= c.term_start AND v.day < c.until
                 ORDER BY c.k LIMIT 1) AS contract_id,
               SUM(v.gpu_hours) AS gpu_hours
          FROM (SELECT x.n, d.day, d.sku_id, d.region_id, d.gpu_hours
                  FROM unnest(%(day_windows)s::int[], %(firsts)s::date[], %(ends)s::date[])
                       AS x(n, first_day, end_day)
                  JOIN {daily} d ON d.organization_id = %(organization)s
                                AND d.day >= x.first_day AND d.day < x.end_day
                 WHERE d.reservation_id IS NULL
                UNION ALL
                SELECT y.n, m.month, m.sku_id, m.region_id, m.gpu_hours
                  FROM unnest(%(month_windows)s::int[], %(months)s::date[]) AS y(n, month)
                  JOIN {monthly} m ON m.organization_id = %(organization)s
                                  AND m.month = y.month
                 WHERE m.reservation_id IS NULL) v
         GROUP BY 1, 2, 3, 4, 5) u
"""


def _window_reads(
    first: date, end: date, boundaries: set[date]
) -> tuple[list[tuple[date, date]], list[date]]:
    """The UTC days [first, end) as ranges of days and whole months (their 1sts) outside
    ``boundaries``."""
    ranges, months, cursor = [], [], first
    month = first if first.day == 1 else next_month(first)
    while next_month(month) <= end:
        if month not in boundaries:
            if cursor < month:
                ranges.append((cursor, month))
            months.append(month)
            cursor = next_month(month)
        month = next_month(month)
    if cursor < end:
        ranges.append((cursor, end))
    return ranges, months


def usage_charges_by_month(
    *,
    organization: Organization | int,
    windows: list[tuple[date, date]],
    in_force: list[tuple[Contract, date]] | None = None,
) -> list[dict[date, Decimal]]:
    """For each of ``windows`` (UTC days [first, end)), the amounts of its billable usage lines
    summed per month (keyed by the month's 1st; months without billable usage are absent).
    Two queries (the contracts in force, the usage with its candidate rates), one row back per
    window, month and key; ``usage_rate`` picks the rate. ``in_force``: the organization's
    contracts in force over a span holding the windows (``usage.fleet.contracts_in_force``),
    when read already (one query fewer)."""
    from portal.prepared import prepared_cursor
    from usage.costing import boundary_months, usage_rows_rated
    from usage.fleet import contracts_in_force
    from usage.models import UsageDaily, UsageMonthly

    result: list[dict[date, Decimal]] = [{} for _ in windows]
    asked = [(n, first, end) for n, (first, end) in enumerate(windows) if end > first]
    if not asked:
        return result
    org_id = organization if isinstance(organization, int) else organization.pk
    span_start = min(first for _, first, _ in asked)
    span_end = max(end for _, _, end in asked)
    if in_force is None:
        in_force = contracts_in_force(organizations=[org_id], start=span_start, end=span_end).get(
            org_id, []
        )
    boundaries = boundary_months(in_force, span_start, span_end)
    day_windows, firsts, ends, month_windows, months = [], [], [], [], []
    for n, first, end in asked:
        ranges, whole = _window_reads(first, end, boundaries)
        for low, high in ranges:
            day_windows.append(n)
            firsts.append(low)
            ends.append(high)
        month_windows += [n] * len(whole)
        months += whole
    sql = _USAGE_MONTHS_SQL.format(
        rate=ContractRate._meta.db_table,
        sku=GpuSku._meta.db_table,
        daily=UsageDaily._meta.db_table,
        monthly=UsageMonthly._meta.db_table,
    )
    with prepared_cursor() as cursor:
        cursor.execute(
            sql,
            {
                "contracts": [contract.pk for contract, _ in in_force],
                "contract_starts": [contract.term_start for contract, _ in in_force],
                "contract_untils": [until for _, until in in_force],
                "day_windows": day_windows,
                "firsts": firsts,
                "ends": ends,
                "month_windows": month_windows,
                "months": months,
                "organization": org_id,
            },
        )
        rows = cursor.fetchall()
    # A line per window, month, key, rate and contract (a contract without a rate for the
    # SKU prices at list price: its usage joins the list-price line of the key).
    hours: dict[tuple, Decimal] = defaultdict(Decimal)
    for (n, month), sku_id, region_id, gpu_hours, rate, source, contract_id in usage_rows_rated(
        rows, in_force=in_force
    ):
        # Decimal sums of four-place GPU-hours are exact (28 digits).
        hours[(n, month, sku_id, region_id, rate, source, contract_id)] += gpu_hours
    for (n, month, _, _, rate, _, _), total in hours.items():
        months_of = result[n]
        months_of[month] = months_of.get(month, ZERO) + round_money(
            Fraction(total) * Fraction(rate)
        )
    return result


def usage_charges_total(*, organization: Organization | int, start: date, end: date) -> Decimal:
    """The sum of the amounts of the usage lines ``contracts.charges`` prices from
    ``usage_cost_lines`` over the UTC days [start, end) (the contract's consumed spend):
    ``usage_charges_by_month`` of the one window, summed."""
    (months,) = usage_charges_by_month(organization=organization, windows=[(start, end)])
    return sum(months.values(), ZERO)


def charges_by_month(
    *,
    organization: Organization | int,
    windows: list[tuple[datetime, datetime]],
    in_force: list[tuple[Contract, date]] | None = None,
) -> list[dict[date, Decimal]]:
    """For each of ``windows`` ([start, end), ``start`` a UTC midnight, ``end`` any instant),
    its usage and reservation charges per month (keyed by the month's 1st; months without
    either are absent): the sums of the amounts of ``charge_lines``' usage and reservation
    lines of the month. Three queries, however many windows, months and records (two with
    ``in_force``, as ``usage_charges_by_month`` takes it)."""
    # First: it refuses a window that does not start at a UTC midnight.
    reserved = reservation_charges_by_month(organization=organization, windows=windows)
    days = []
    for start, end in windows:
        first = start.astimezone(UTC).date()
        days.append((first, day_after_last(end) if end > start else first))
    usage = usage_charges_by_month(organization=organization, windows=days, in_force=in_force)
    result = []
    for usage_months, reserved_months in zip(usage, reserved, strict=True):
        months = dict(usage_months)
        for month, amount in reserved_months.items():
            months[month] = months.get(month, ZERO) + amount
        result.append(months)
    return result
