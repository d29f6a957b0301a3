"""Monthly statements: an issued one as frozen, an open month as computed to date, and the
adjustment lines that carry late usage of closed months onto the next statement."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from django.db.models import Sum
from django.utils import timezone

from accounts.models import Organization
from quotas.models import GpuSku, Region

from ..charges import (
    ChargeLine,
    ChargeSource,
    charge_lines,
    charge_lines_from,
    lines_total,
    month_start,
    next_month,
    utc_midnight,
)
from ..models import Statement, StatementLine

HOURS_PLACES = Decimal("0.000001")
ZERO = Decimal("0.00")
Kind = StatementLine.Kind


def hours_decimal(hours: Fraction | Decimal) -> Decimal:
    """GPU-hours as stored on a line: six places, half-up (display; amounts use exact hours)."""
    if isinstance(hours, Decimal):
        return hours.quantize(HOURS_PLACES, rounding=ROUND_HALF_UP)
    return (Decimal(hours.numerator) / Decimal(hours.denominator)).quantize(
        HOURS_PLACES, rounding=ROUND_HALF_UP
    )


@dataclass(frozen=True)
class StatementRow:
    kind: str
    adjusts: str
    period: date
    sku: GpuSku
    region: Region
    reservation_id: int | None
    gpu_hours: Decimal
    rate_per_gpu_hour: Decimal
    price_source: str
    contract_id: int | None
    amount: Decimal

    @property
    def kind_label(self) -> str:
        return Kind(self.kind).label

    @property
    def description(self) -> str:
        what = f"{self.sku.name} in {self.region.code}"
        if self.kind == Kind.ADJUSTMENT:
            return f"{Kind(self.adjusts).label} of {self.period:%Y-%m}, late: {what}" + (
                f" (RES-{self.reservation_id})" if self.reservation_id else ""
            )
        if self.reservation_id:
            return f"{what}, RES-{self.reservation_id}"
        return what


@dataclass(frozen=True)
class MonthlyStatement:
    organization: Organization
    month: date
    currency: str
    rows: list[StatementRow]
    usage_total: Decimal
    reservation_total: Decimal
    adjustment_total: Decimal
    total: Decimal
    statement: Statement | None  # the issued statement, None while the month is open
    as_of: datetime

    @property
    def is_issued(self) -> bool:
        return self.statement is not None

    @property
    def label(self) -> str:
        return self.month.strftime("%B %Y")

    @property
    def slug(self) -> str:
        return self.month.strftime("%Y-%m")


def statement_adjustment_lines(*, organization: Organization, month: date) -> list[ChargeLine]:
    """Corrections of issued months before ``month``: for each line of those months,
    recomputed now minus what issued statements (lines and earlier adjustments) billed.

    Late usage adds GPU-hours to a closed month; the difference of the rounded amounts is
    charged, so every month's billed total stays its exact total rounded line by line.
    """
    issued = set(
        Statement.objects.for_organization(organization)
        .filter(month__lt=month)
        .values_list("month", flat=True)
    )
    if not issued:
        return []
    recomputed = [
        line
        for line in charge_lines(
            organization=organization,
            start=utc_midnight(min(issued)),
            end=utc_midnight(month),
        )
        if line.period in issued
    ]
    billed = (
        StatementLine.objects.for_organization(organization)
        .filter(statement__month__lt=month, period__in=issued)
        .values(
            "kind",
            "adjusts",
            "period",
            "sku_id",
            "region_id",
            "reservation_id",
            "rate_per_gpu_hour",
            "price_source",
            "contract_id",
        )
        .order_by()
    )
    billed_by_key: dict[tuple, list] = defaultdict(lambda: [ZERO, Decimal("0"), None])
    for row in billed.annotate(amount_sum=Sum("amount"), hours_sum=Sum("gpu_hours")):
        kind = row["adjusts"] if row["kind"] == Kind.ADJUSTMENT else row["kind"]
        key = (
            kind,
            row["period"],
            row["sku_id"],
            row["region_id"],
            row["reservation_id"],
            row["rate_per_gpu_hour"],
        )
        entry = billed_by_key[key]
        entry[0] += row["amount_sum"]
        entry[1] += row["hours_sum"]
        entry[2] = (row["price_source"], row["contract_id"])
    now_by_key = {line.key: line for line in recomputed}
    adjustments = []
    for key in sorted(set(now_by_key) | set(billed_by_key), key=_sort_key):
        line = now_by_key.get(key)
        billed_amount, billed_hours, billed_source = billed_by_key.get(key, [ZERO, 0, None])
        amount = (line.amount if line else ZERO) - billed_amount
        hours = (hours_decimal(line.gpu_hours) if line else Decimal("0")) - billed_hours
        if not amount and not hours:
            continue
        kind, period, sku_id, region_id, reservation_id, rate = key
        source, contract_id = (line.price_source, line.contract_id) if line else billed_source
        adjustments.append(
            ChargeLine(
                kind=Kind.ADJUSTMENT,
                adjusts=kind,
                period=period,
                sku_id=sku_id,
                region_id=region_id,
                reservation_id=reservation_id,
                gpu_hours=Fraction(hours),
                rate=rate,
                price_source=source,
                contract_id=contract_id,
                amount=amount,
            )
        )
    return adjustments


def _sort_key(key: tuple) -> tuple:
    kind, period, sku_id, region_id, reservation_id, rate = key
    return (period, kind, sku_id, region_id, reservation_id or 0, rate)


def statement_compute(
    *,
    organization: Organization,
    month: date,
    now: datetime | None = None,
    source: ChargeSource | None = None,
) -> tuple[list[ChargeLine], list[ChargeLine]]:
    """The charges of ``month`` (to ``now`` while it runs) and the adjustments of earlier
    issued months: what issuing the statement now would freeze. The charges are priced from
    ``source`` (no query) when it was read for a window that holds the month's to ``now``
    and prices it as ``charge_source`` does (``ChargeSource`` says which reads do)."""
    now = now or timezone.now()
    start, end = utc_midnight(month), min(utc_midnight(next_month(month)), now)
    if source is not None and source.start <= start and end <= source.end:
        lines = charge_lines_from(source, start=start, end=end)
    else:
        lines = charge_lines(organization=organization, start=start, end=end)
    return lines, statement_adjustment_lines(organization=organization, month=month)


def _catalog(lines: list[ChargeLine]) -> tuple[dict[int, GpuSku], dict[int, Region]]:
    skus = GpuSku.objects.in_bulk({line.sku_id for line in lines}) if lines else {}
    regions = Region.objects.in_bulk({line.region_id for line in lines}) if lines else {}
    return skus, regions


def statement_get(
    *,
    organization: Organization,
    month: date,
    now: datetime | None = None,
    source: ChargeSource | None = None,
) -> MonthlyStatement | None:
    """The statement of ``month``: frozen when issued, else computed to date (its charges
    from ``source`` when it holds them, see ``statement_compute``). None for a month that has
    not begun. A constant number of queries."""
    now = now or timezone.now()
    month = month_start(month)
    issued = Statement.objects.for_organization(organization).filter(month=month).first()
    if issued is not None:
        lines = list(
            StatementLine.objects.for_organization(organization)
            .filter(statement=issued)
            .select_related("sku", "region")
            .order_by("id")
        )
        rows = [
            StatementRow(
                kind=line.kind,
                adjusts=line.adjusts,
                period=line.period,
                sku=line.sku,
                region=line.region,
                reservation_id=line.reservation_id,
                gpu_hours=line.gpu_hours,
                rate_per_gpu_hour=line.rate_per_gpu_hour,
                price_source=line.price_source,
                contract_id=line.contract_id,
                amount=line.amount,
            )
            for line in lines
        ]
        return MonthlyStatement(
            organization=organization,
            month=month,
            currency=issued.currency,
            rows=rows,
            usage_total=issued.usage_total,
            reservation_total=issued.reservation_total,
            adjustment_total=issued.adjustment_total,
            total=issued.total,
            statement=issued,
            as_of=issued.issued_at,
        )
    if utc_midnight(month) > now:
        return None
    lines, adjustments = statement_compute(
        organization=organization, month=month, now=now, source=source
    )
    return statement_from_lines(
        organization=organization, month=month, lines=lines, adjustments=adjustments, as_of=now
    )


def statement_from_lines(
    *,
    organization: Organization,
    month: date,
    lines: list[ChargeLine],
    adjustments: list[ChargeLine],
    as_of: datetime,
    statement: Statement | None = None,
) -> MonthlyStatement:
    skus, regions = _catalog(lines + adjustments)
    rows = [
        StatementRow(
            kind=line.kind,
            adjusts=line.adjusts,
            period=line.period,
            sku=skus[line.sku_id],
            region=regions[line.region_id],
            reservation_id=line.reservation_id,
            gpu_hours=hours_decimal(line.gpu_hours),
            rate_per_gpu_hour=line.rate,
            price_source=line.price_source,
            contract_id=line.contract_id,
            amount=line.amount,
        )
        for line in [*lines, *adjustments]
    ]
    usage_total = lines_total(line for line in lines if line.kind == Kind.USAGE)
    reservation_total = lines_total(line for line in lines if line.kind == Kind.RESERVATION)
    adjustment_total = lines_total(adjustments)
    return MonthlyStatement(
        organization=organization,
        month=month,
        currency=statement_currency(organization),
        rows=rows,
        usage_total=usage_total,
        reservation_total=reservation_total,
        adjustment_total=adjustment_total,
        total=usage_total + reservation_total + adjustment_total,
        statement=statement,
        as_of=as_of,
    )


def statement_currency(organization: Organization) -> str:
    """Statements are in the list currency: every contract so far is in it (see the docs)."""
    from quotas.pricing import LIST_CURRENCY

    return LIST_CURRENCY


@dataclass(frozen=True)
class StatementSummary:
    month: date
    total: Decimal | None
    statement: Statement | None

    @property
    def slug(self) -> str:
        return self.month.strftime("%Y-%m")

    @property
    def label(self) -> str:
        return self.month.strftime("%B %Y")


def statement_list(
    *, organization: Organization, now: datetime | None = None
) -> list[StatementSummary]:
    """Issued statements, newest first, after the open months since the last one (the
    current month and any closed month not issued yet). One query."""
    now = now or timezone.now()
    issued = list(Statement.objects.for_organization(organization).order_by("-month"))
    current = month_start(now.date())
    previous = month_start(current - timedelta(days=1))
    last = issued[0].month if issued else None
    open_months = [
        StatementSummary(month=month, total=None, statement=None)
        for month in (current, previous)
        if last is None or month > last
    ]
    return open_months + [
        StatementSummary(month=s.month, total=s.total, statement=s) for s in issued
    ]
