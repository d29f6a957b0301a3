"""Price quotes for reserved capacity: contract rate when a contract covers it, list price else.

The one rounding rule (also in ``docs/pricing.md``):

- GPU-hours are exact: window seconds / 3600 x GPU count, as a fraction, never rounded when
  the total is computed.
- The total is GPU-hours x rate per GPU-hour, computed exactly, then rounded ONCE, half-up, to
  the cent (two decimal places). Nothing is rounded on the way.
- ``Quote.gpu_hours`` is shown as an exact Decimal whenever it has a finite decimal expansion
  (any window of whole multiples of 36 seconds, so every window of whole hours or of whole
  quarter hours); otherwise (say, a window of 10 minutes) it is shown rounded half-up to six
  decimal places, for display only: the total still comes from the exact figure.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from django.db import connection
from django.utils import timezone

from accounts.models import Organization
from contracts.models import Contract, ContractRate
from contracts.selectors import contract_active_for, contract_rate_for
from portal.errors import DomainError
from portal.rows import Columns

from .models import GpuSku, Region

LIST_CURRENCY = "USD"
GPU_HOURS_DISPLAY_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class Quote:
    """The price of ``gpu_count`` GPUs of a SKU in a region over [starts_at, ends_at)."""

    currency: str
    rate_per_gpu_hour: Decimal
    source: str  # "contract" or "list"
    contract_id: int | None
    contract_number: str | None
    gpu_count: int
    starts_at: datetime
    ends_at: datetime
    gpu_hours: Decimal
    total: Decimal
    list_price_per_gpu_hour: Decimal  # in USD, to show the discount next to a contract rate

    SOURCE_CONTRACT = "contract"
    SOURCE_LIST = "list"

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly copy, to freeze on a reservation or send over the API."""
        return {
            "currency": self.currency,
            "rate_per_gpu_hour": str(self.rate_per_gpu_hour),
            "source": self.source,
            "contract_id": self.contract_id,
            "contract_number": self.contract_number,
            "gpu_count": self.gpu_count,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "gpu_hours": str(self.gpu_hours),
            "total": str(self.total),
            "list_price_per_gpu_hour": str(self.list_price_per_gpu_hour),
        }


def gpu_hours_exact(*, gpu_count: int, starts_at: datetime, ends_at: datetime) -> Fraction:
    """GPU-hours of a window as an exact fraction (microseconds included)."""
    delta = ends_at - starts_at
    microseconds = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Fraction(gpu_count * microseconds, 3_600 * 1_000_000)


def round_money(amount: Fraction) -> Decimal:
    """The one money rounding: half-up to the cent, on the exact amount."""
    cents = amount * 100
    sign = -1 if cents < 0 else 1
    cents = abs(cents)
    whole = (2 * cents.numerator + cents.denominator) // (2 * cents.denominator)
    return (Decimal(sign * whole) / 100).quantize(Decimal("0.01"))


def _fraction_to_decimal(value: Fraction) -> Decimal:
    """Exact when the fraction has a finite decimal expansion, else six places half-up."""
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    if denominator == 1 and Fraction(exact) == value:
        return exact
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        GPU_HOURS_DISPLAY_PLACES, rounding=ROUND_HALF_UP
    )


def _validate(gpu_count: int, starts_at: datetime, ends_at: datetime) -> None:
    if not isinstance(gpu_count, int) or isinstance(gpu_count, bool) or gpu_count <= 0:
        raise DomainError("Ask for at least one GPU.", field="gpu_count")
    if ends_at <= starts_at:
        raise DomainError("The end must be after the start.", field="ends_at")


def _within_term(contract: Contract, ends_at: datetime) -> bool:
    return ends_at <= datetime.combine(contract.term_end, time.min, UTC)


def quote_price(
    *,
    organization: Organization,
    sku: GpuSku,
    region: Region,
    gpu_count: int,
    starts_at: datetime,
    ends_at: datetime,
) -> Quote:
    """Price ``gpu_count`` GPUs of ``sku`` in ``region`` over [starts_at, ends_at).

    The contract rate applies when the organization's active contract covers the whole window
    (its term contains the start, and the window ends by the end of the term) and prices the
    SKU (a rate for the region first, then a rate for any region); it is in the contract's
    currency. Otherwise the SKU's list price applies, in USD. See the module docstring for the
    rounding rule.
    """
    _validate(gpu_count, starts_at, ends_at)
    contract = contract_active_for(organization=organization, at=starts_at)
    contract_rate = None
    if contract is not None and _within_term(contract, ends_at):
        contract_rate = contract_rate_for(contract=contract, sku=sku, region=region)
    return quote_price_from(
        sku=sku,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
        contract=contract,
        contract_rate=contract_rate,
    )


@functools.cache
def _contract_and_rate_statement() -> tuple[str, Columns, Columns]:
    contract, rate = Columns(Contract, "c"), Columns(ContractRate, "x")
    quote = connection.ops.quote_name
    sql = f"""
SELECT {contract.sql}, {rate.sql}
  FROM {quote(Contract._meta.db_table)} c
  LEFT JOIN LATERAL (
        SELECT * FROM {quote(ContractRate._meta.db_table)} x
         WHERE x.contract_id = c.id AND x.sku_id = %(sku)s
           AND (x.region_id IS NULL OR x.region_id = %(region)s)
         ORDER BY x.region_id ASC NULLS LAST
         LIMIT 1
       ) x ON TRUE
 WHERE c.organization_id = %(organization)s AND c.status = %(active)s
   AND c.term_start <= %(day)s AND c.term_end > %(day)s
 ORDER BY c.term_start DESC, c.id DESC
 LIMIT 1
"""  # noqa: S608 (names from the models)
    return sql, contract, rate


def contract_and_rate_for(
    *, organization: Organization, at: datetime, sku_id: int, region_id: int | None
) -> tuple[Contract | None, ContractRate | None]:
    """``contract_active_for(organization, at)`` and that contract's ``contract_rate_for`` the
    SKU in the region, in one statement instead of two ORM queries (the automatic checks read
    both for every request)."""
    sql, contract_columns, rate_columns = _contract_and_rate_statement()
    day = at.astimezone(UTC).date() if timezone.is_aware(at) else at.date()
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "organization": organization.pk,
                "active": str(Contract.Status.ACTIVE),
                "day": day,
                "sku": sku_id,
                "region": region_id,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None, None
    contract = contract_columns.load(row[: len(contract_columns)])
    contract.organization = organization
    return contract, rate_columns.load_or_none(row[len(contract_columns) :])


def quote_price_from(
    *,
    sku: GpuSku,
    gpu_count: int,
    starts_at: datetime,
    ends_at: datetime,
    contract: Contract | None,
    contract_rate: ContractRate | None,
) -> Quote:
    """``quote_price`` for a caller that has already read what it reads (no query):
    ``contract`` is ``contract_active_for(organization, at=starts_at)`` and ``contract_rate``
    that contract's ``contract_rate_for`` the SKU in the quoted region (None if either is
    missing). The rate is used only when the window ends by the end of the contract's term,
    as in ``quote_price``."""
    _validate(gpu_count, starts_at, ends_at)
    currency, rate, source = LIST_CURRENCY, Decimal(sku.list_price_per_gpu_hour), Quote.SOURCE_LIST
    contract_id = contract_number = None
    if contract is not None and contract_rate is not None and _within_term(contract, ends_at):
        currency, rate = contract.currency, Decimal(contract_rate.price_per_gpu_hour)
        source, contract_id, contract_number = (
            Quote.SOURCE_CONTRACT,
            contract.pk,
            contract.number,
        )

    gpu_hours = gpu_hours_exact(gpu_count=gpu_count, starts_at=starts_at, ends_at=ends_at)
    return Quote(
        currency=currency,
        rate_per_gpu_hour=rate,
        source=source,
        contract_id=contract_id,
        contract_number=contract_number,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
        gpu_hours=_fraction_to_decimal(gpu_hours),
        total=round_money(gpu_hours * Fraction(rate)),
        list_price_per_gpu_hour=Decimal(sku.list_price_per_gpu_hour),
    )
