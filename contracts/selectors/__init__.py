"""Reads about contracts: which one applies, its rates, what is left of its commitment."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Organization
from quotas.models import GpuSku, Region

from ..models import Contract, ContractRate


def _utc_date(at: datetime | date) -> date:
    if isinstance(at, datetime):
        return at.astimezone(UTC).date() if timezone.is_aware(at) else at.date()
    return at


def contract_active_for(*, organization: Organization, at: datetime | date) -> Contract | None:
    """The organization's active contract whose term [term_start, term_end) (UTC dates)
    contains ``at``; the most recently started one if terms overlap."""
    day = _utc_date(at)
    return (
        Contract.objects.for_organization(organization)
        .filter(status=Contract.Status.ACTIVE, term_start__lte=day, term_end__gt=day)
        .order_by("-term_start", "-pk")
        .first()
    )


def contract_rate_for(
    *, contract: Contract, sku: GpuSku | int, region: Region | int | None
) -> ContractRate | None:
    """The contract's rate for ``sku`` in ``region``: a rate for that region wins over a rate
    for any region; None when the contract does not price the SKU there."""
    sku_id = sku if isinstance(sku, int) else sku.pk
    region_id = region if isinstance(region, int) or region is None else region.pk
    where = Q(region__isnull=True)
    if region_id is not None:
        where |= Q(region_id=region_id)
    return (
        ContractRate.objects.filter(contract=contract, sku_id=sku_id)
        .filter(where)
        .order_by(F("region_id").asc(nulls_last=True))
        .first()
    )


def contract_consumed_spend(*, contract: Contract, now: datetime | None = None) -> Decimal:
    """What the organization has spent against the contract so far: the statement figures
    (reservation charges and usage, ``contracts.charges``) of the contract's term up to now.

    A draft contract has consumed nothing; a contract's term ends consumption at its end.
    The sum of ``spend.contract_spend_lines``, without building the lines: usage and the
    reservations' charges are each summed per line as those lines price them (three queries,
    one row back per month and usage key; ``tests/contracts/test_charges_total.py``).
    """
    from ..charges import reservation_charges_total
    from .charge_sums import usage_charges_total
    from .spend import _term_window, day_after_last

    if contract.status == Contract.Status.DRAFT:
        return Decimal("0.00")
    start, end = _term_window(contract, now or timezone.now())
    if end <= start:
        return Decimal("0.00")
    organization = contract.organization_id
    return usage_charges_total(
        organization=organization, start=start.date(), end=day_after_last(end)
    ) + reservation_charges_total(organization=organization, start=start, end=end)


def contract_remaining_commitment(*, contract: Contract, now: datetime | None = None) -> Decimal:
    """Committed spend not yet consumed; negative once the organization spends beyond it."""
    return contract.committed_spend - contract_consumed_spend(contract=contract, now=now)
