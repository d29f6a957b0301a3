"""What an organization owes over a window: the one place usage and reservations are priced.

Everything that shows money for usage or reservations (statements, consumed spend, burn-down,
alerts) reads these lines; ``docs/contracts.md`` states the billing model. In short:

- **Reservations** are charged their frozen price (``Reservation.rate_per_gpu_hour``) for the
  GPU-hours of their capacity hold that fall inside the window, month by month: GPU count x
  the hours of [hold start, hold end) inside the month. A reservation released early was cut
  at its release (its hold ends there); a cancelled one is never charged.
- **On-demand usage** (usage records without a reservation) is charged per SKU and region at
  the rate of the contract in force on the day of use (the contract's rate for the region,
  then its rate for any region), else at the SKU's list price: ``usage.costing`` prices it.
- **Usage tied to a reservation** is shown as covered (its GPU-hours, amount 0): the
  reservation's charge pays for it.
- **One rounding rule** (``quotas.pricing.round_money``): each line's amount is its exact
  GPU-hours x rate, rounded once, half-up, to the cent. Totals are sums of line amounts.

Usage is read from the daily rollups, never the hourly records, so the number of queries and
the rows read do not grow with hourly records.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction

from accounts.models import Organization
from portal.prepared import prepared_cursor
from quotas.models import Reservation
from quotas.pricing import gpu_hours_exact, round_money
from quotas.workflow import ReservationState

from .models import StatementLine

LIST = "list"
CONTRACT = "contract"
RESERVATION = "reservation"
Kind = StatementLine.Kind


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, UTC)


@dataclass(frozen=True)
class ChargeLine:
    """One priced figure of one month: GPU-hours are exact, the amount rounded once."""

    kind: str
    period: date  # first day of the month
    sku_id: int
    region_id: int
    reservation_id: int | None
    gpu_hours: Fraction
    rate: Decimal
    price_source: str
    contract_id: int | None
    amount: Decimal
    adjusts: str = ""  # for an adjustment: the kind of line it corrects

    @property
    def key(self) -> tuple:
        """What identifies the line across recomputations (to find late usage)."""
        return (self.kind, self.period, self.sku_id, self.region_id, self.reservation_id, self.rate)


def day_after_last(end: datetime) -> date:
    """Usage days that began before ``end`` count: a partial last day as metered so far."""
    end_utc = end.astimezone(UTC)
    return end_utc.date() + timedelta(days=0 if end_utc.timetz() == MIDNIGHT else 1)


MIDNIGHT = time.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ChargeSource:
    """What charges are computed from, read once for a window: priced usage (from
    ``usage.costing``, the one place usage is priced) and the reservations' holds.

    ``usage_days`` are ``usage.costing.CostLine`` rows, each bucketed on the first day of what
    it covers: one per UTC day and key as ``charge_source`` reads them; from the burn-down's
    monthly fast path (``contracts.selectors.spend``, ``usage_cost_days_and_months``), one per
    whole month and key (bucketed on the month's 1st) for the months read from the monthly
    rollups, and one per day and key for the other days. Charges sum GPU-hours per month and
    key before rounding once, so both kinds of source give the same lines.

    Any sub-window is then priced without another query; a line counts whole when its bucket
    lies in the sub-window, so from a source with month lines only a sub-window that holds each
    of those months whole, or none of it, is priced right."""

    start: datetime
    end: datetime
    usage_days: list  # usage.costing.CostLine: per day and key, or per whole month and key
    reservations: list[dict]


def charge_source(*, organization: Organization, start: datetime, end: datetime) -> ChargeSource:
    """Read what charges over [start, end) need: three to five queries, whatever the records."""
    from usage.costing import usage_cost_lines

    if start.astimezone(UTC).timetz() != MIDNIGHT:
        raise ValueError("Charges start at a UTC midnight.")
    if end <= start:
        return ChargeSource(start=start, end=end, usage_days=[], reservations=[])
    usage_days = usage_cost_lines(
        organization=organization,
        start=start.astimezone(UTC).date(),
        end=day_after_last(end),
        granularity="day",
    )
    reservations = reservation_charge_rows(organization=organization, start=start, end=end)
    return ChargeSource(start=start, end=end, usage_days=usage_days, reservations=reservations)


def reservation_charge_rows(*, organization, start: datetime, end: datetime) -> list[dict]:
    """The organization's held reservations overlapping [start, end), as the charge lines read
    them (one query)."""
    return list(
        _held_reservation_rows(
            Reservation.objects.for_organization(organization), start=start, end=end
        )
    )


def reservation_charge_rows_by_organization(
    *, organization_ids: list[int], start: datetime, end: datetime
) -> dict[int, list[dict]]:
    """``reservation_charge_rows`` of several organizations (staff pages), by organization id,
    in one query."""
    rows: dict[int, list[dict]] = {}
    reservations = Reservation.objects.unscoped_for_staff().filter(
        organization_id__in=organization_ids
    )
    for row in _held_reservation_rows(
        reservations, start=start, end=end, extra=("organization_id",)
    ):
        rows.setdefault(row["organization_id"], []).append(row)
    return rows


def _held_reservation_rows(reservations, *, start: datetime, end: datetime, extra=()):
    return (
        reservations.exclude(state=ReservationState.CANCELLED)
        .filter(hold__released_at__isnull=True, hold__starts_at__lt=end, hold__ends_at__gt=start)
        .values(
            *extra,
            "pk",
            "gpu_count",
            "rate_per_gpu_hour",
            "price_source",
            "contract_id",
            "pool__sku_id",
            "pool__region_id",
            "hold__starts_at",
            "hold__ends_at",
        )
        .order_by("pk")
    )


# Each held reservation's month pieces of [start, end), priced as ``_reservation_lines`` prices
# them, rounded once each and summed, in one statement. Months are UTC months (the times are
# made naive in UTC first). The rounding is exact: seconds come from ``EXTRACT(EPOCH ...)``
# (numeric, microseconds included), GPUs x seconds x rate x 100 is an exact numeric product,
# and ``div`` truncates the exact quotient, so div(100 x amount x 3600 + 1800, 3600) is the
# amount in cents rounded half-up (``round_money``; the sign is applied outside).
_RESERVATION_TOTAL_SQL = """
SELECT COALESCE(SUM(
         SIGN(r.rate_per_gpu_hour) * DIV(
           ABS(r.rate_per_gpu_hour) * r.gpu_count * 100
             * (EXTRACT(EPOCH FROM LEAST(w.we, m.month + INTERVAL '1 month'))
                - EXTRACT(EPOCH FROM GREATEST(w.ws, m.month)))
             + 1800,
           3600)
       ), 0)
  FROM {reservation} r
  JOIN {hold} h ON h.id = r.hold_id
 CROSS JOIN LATERAL (
       SELECT GREATEST(%(start)s, h.starts_at) AT TIME ZONE 'UTC' AS ws,
              LEAST(%(end)s, h.ends_at) AT TIME ZONE 'UTC' AS we
       ) w
 CROSS JOIN LATERAL generate_series(
       date_trunc('month', w.ws), w.we, INTERVAL '1 month') AS m(month)
 WHERE r.organization_id = %(organization)s
   AND r.state <> %(cancelled)s
   AND h.released_at IS NULL
   AND h.starts_at < %(end)s
   AND h.ends_at > %(start)s
   AND m.month < w.we
"""


def reservation_charges_total(
    *, organization: Organization | int, start: datetime, end: datetime
) -> Decimal:
    """The sum of the amounts of the reservation lines of ``charge_lines`` over [start, end)
    (``start`` a UTC midnight), computed in the database: one query, one row back, however
    many reservations and months. ``tests/contracts/test_charges_total.py`` holds it equal to
    the line-by-line figure."""
    if start.astimezone(UTC).timetz() != MIDNIGHT:
        raise ValueError("Charges start at a UTC midnight.")
    if end <= start:
        return Decimal("0.00")
    org_id = organization if isinstance(organization, int) else organization.pk
    sql = _RESERVATION_TOTAL_SQL.format(
        reservation=Reservation._meta.db_table,
        hold=Reservation._meta.get_field("hold").related_model._meta.db_table,
    )
    # Prepared once per connection (portal.prepared): planning it cost PostgreSQL more than
    # running it, on every automatic check and burn-down.
    with prepared_cursor() as cursor:
        cursor.execute(
            sql,
            {
                "start": start,
                "end": end,
                "organization": org_id,
                "cancelled": ReservationState.CANCELLED,
            },
        )
        cents = cursor.fetchone()[0]
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


# ``_RESERVATION_TOTAL_SQL`` for several windows at once, grouped by window and UTC month: each
# month's figure is the sum of that month's reservation lines, each rounded half-up alone.
_RESERVATION_MONTHS_SQL = """
SELECT x.n, m.month::date, SUM(
         SIGN(r.rate_per_gpu_hour) * DIV(
           ABS(r.rate_per_gpu_hour) * r.gpu_count * 100
             * (EXTRACT(EPOCH FROM LEAST(w.we, m.month + INTERVAL '1 month'))
                - EXTRACT(EPOCH FROM GREATEST(w.ws, m.month)))
             + 1800,
           3600)
       )
  FROM unnest(%(starts)s::timestamptz[], %(ends)s::timestamptz[])
       WITH ORDINALITY AS x(window_start, window_end, n)
  JOIN {reservation} r ON r.organization_id = %(organization)s
  JOIN {hold} h ON h.id = r.hold_id
 CROSS JOIN LATERAL (
       SELECT GREATEST(x.window_start, h.starts_at) AT TIME ZONE 'UTC' AS ws,
              LEAST(x.window_end, h.ends_at) AT TIME ZONE 'UTC' AS we
       ) w
 CROSS JOIN LATERAL generate_series(
       date_trunc('month', w.ws), w.we, INTERVAL '1 month') AS m(month)
 WHERE r.state <> %(cancelled)s
   AND h.released_at IS NULL
   AND h.starts_at < x.window_end
   AND h.ends_at > x.window_start
   AND m.month < w.we
 GROUP BY x.n, m.month
"""


def reservation_charges_by_month(
    *, organization: Organization | int, windows: list[tuple[datetime, datetime]]
) -> list[dict[date, Decimal]]:
    """For each of ``windows`` ([start, end), ``start`` a UTC midnight), the sum of the amounts
    of the reservation lines of ``charge_lines`` over it per month (keyed by the month's 1st;
    months with no held reservation are absent). One query, however many windows,
    reservations and months; ``tests/contracts/test_reservation_months.py`` holds each month
    equal to the sum of its lines."""
    from portal.prepared import prepared_cursor

    for start, _ in windows:
        if start.astimezone(UTC).timetz() != MIDNIGHT:
            raise ValueError("Charges start at a UTC midnight.")
    result: list[dict[date, Decimal]] = [{} for _ in windows]
    asked = [(n, start, end) for n, (start, end) in enumerate(windows) if end > start]
    if not asked:
        return result
    org_id = organization if isinstance(organization, int) else organization.pk
    sql = _RESERVATION_MONTHS_SQL.format(
        reservation=Reservation._meta.db_table,
        hold=Reservation._meta.get_field("hold").related_model._meta.db_table,
    )
    # Prepared once per connection: planning it cost about as much as running it.
    with prepared_cursor() as cursor:
        cursor.execute(
            sql,
            {
                "starts": [start for _, start, _ in asked],
                "ends": [end for _, _, end in asked],
                "organization": org_id,
                "cancelled": ReservationState.CANCELLED,
            },
        )
        for position, month, cents in cursor.fetchall():
            result[asked[position - 1][0]][month] = (Decimal(cents) / 100).quantize(Decimal("0.01"))
    return result


def _window_check(source: ChargeSource, *, start: datetime, end: datetime) -> None:
    if start < source.start or end > source.end:
        raise ValueError("The window lies outside what was read.")
    if start.astimezone(UTC).timetz() != MIDNIGHT:
        raise ValueError("Charges start at a UTC midnight.")


def usage_lines_from(source: ChargeSource, *, start: datetime, end: datetime) -> list[ChargeLine]:
    """The usage and covered lines of ``charge_lines_from`` (no reservation lines), unsorted.
    No query."""
    _window_check(source, start=start, end=end)
    if end <= start:
        return []
    return _usage_lines(source, start, end)


def _usage_lines(source: ChargeSource, start: datetime, end: datetime) -> list[ChargeLine]:
    """Usage of the days in [start, end) by month, SKU, region and rate, each line rounded
    once; usage inside a reservation is shown as covered, with no amount."""
    first_day, end_day = start.astimezone(UTC).date(), day_after_last(end)
    merged: dict[tuple, Fraction] = defaultdict(Fraction)
    for cost in source.usage_days:
        if not first_day <= cost.bucket < end_day:
            continue
        covered = not cost.billable
        key = (
            Kind.COVERED if covered else Kind.USAGE,
            month_start(cost.bucket),
            cost.sku_id,
            cost.region_id,
            cost.reservation_id,
            Decimal("0.0000") if covered else cost.rate_per_gpu_hour,
            cost.source,
            cost.contract_id,
        )
        merged[key] += Fraction(cost.gpu_hours)
    return [
        ChargeLine(
            kind=kind,
            period=period,
            sku_id=sku_id,
            region_id=region_id,
            reservation_id=reservation_id,
            gpu_hours=hours,
            rate=rate,
            price_source=price_source,
            contract_id=contract_id,
            amount=round_money(hours * Fraction(rate)),
        )
        for (
            kind,
            period,
            sku_id,
            region_id,
            reservation_id,
            rate,
            price_source,
            contract_id,
        ), hours in merged.items()
    ]


def _reservation_lines(source: ChargeSource, start: datetime, end: datetime) -> list[ChargeLine]:
    lines = []
    for reservation in source.reservations:
        window_start = max(start, reservation["hold__starts_at"])
        window_end = min(end, reservation["hold__ends_at"])
        if window_end <= window_start:
            continue
        month = month_start(window_start.astimezone(UTC).date())
        while utc_midnight(month) < window_end:
            piece_start = max(window_start, utc_midnight(month))
            piece_end = min(window_end, utc_midnight(next_month(month)))
            hours = gpu_hours_exact(
                gpu_count=reservation["gpu_count"], starts_at=piece_start, ends_at=piece_end
            )
            rate = reservation["rate_per_gpu_hour"]
            lines.append(
                ChargeLine(
                    kind=Kind.RESERVATION,
                    period=month,
                    sku_id=reservation["pool__sku_id"],
                    region_id=reservation["pool__region_id"],
                    reservation_id=reservation["pk"],
                    gpu_hours=hours,
                    rate=rate,
                    price_source=reservation["price_source"],
                    contract_id=reservation["contract_id"],
                    amount=round_money(hours * Fraction(rate)),
                )
            )
            month = next_month(month)
    return lines


def charge_lines_from(source: ChargeSource, *, start: datetime, end: datetime) -> list[ChargeLine]:
    """The charges over [start, end), a window inside the source's, per month. No query."""
    _window_check(source, start=start, end=end)
    if end <= start:
        return []
    lines = _usage_lines(source, start, end) + _reservation_lines(source, start, end)
    order = {Kind.RESERVATION: 0, Kind.USAGE: 1, Kind.COVERED: 2}
    lines.sort(
        key=lambda line: (
            line.period,
            order.get(line.kind, 3),
            line.sku_id,
            line.region_id,
            line.reservation_id or 0,
            line.rate,
        )
    )
    return lines


def charge_lines(*, organization: Organization, start: datetime, end: datetime) -> list[ChargeLine]:
    """Every charge of the organization over [start, end) (UTC), per month.

    ``start`` must be a UTC midnight (usage is metered by day); ``end`` may be any instant:
    reservations are charged up to it, usage of the days that began before it counts.
    A constant number of queries, whatever the number of records.
    """
    source = charge_source(organization=organization, start=start, end=end)
    return charge_lines_from(source, start=start, end=end)


def lines_total(lines) -> Decimal:
    return sum((line.amount for line in lines), Decimal("0.00"))
