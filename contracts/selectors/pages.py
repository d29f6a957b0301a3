"""What the contract pages and API read, each in a constant number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import F, Prefetch, QuerySet
from django.http import Http404

from accounts.models import Organization
from quotas.models import Reservation

from ..models import Contract, ContractDocument, ContractRate


def contract_list(*, organization: Organization) -> QuerySet[Contract]:
    return Contract.objects.for_organization(organization).order_by("-term_start", "-pk")


def contract_rates_ordered() -> QuerySet[ContractRate]:
    # Any-region rates first, then the region-specific ones that override them.
    return ContractRate.objects.select_related("sku", "region").order_by(
        "sku__code", F("region__code").asc(nulls_first=True), "pk"
    )


def contract_get(*, organization: Organization, pk: int) -> Contract:
    """The organization's contract ``pk`` with its rates; 404 for anyone else's."""
    contract = (
        Contract.objects.for_organization(organization)
        .prefetch_related(Prefetch("rates", queryset=contract_rates_ordered()))
        .filter(pk=pk)
        .first()
    )
    if contract is None:
        raise Http404("No such contract.")
    return contract


@dataclass(frozen=True)
class RateVsList:
    rate: ContractRate
    list_price: Decimal
    discount_percent: Decimal  # of the list price; negative when the rate is above it


def contract_rates_vs_list(*, contract: Contract) -> list[RateVsList]:
    """The contract's rates next to the SKUs' list prices (rates prefetched by contract_get)."""
    rows = []
    for rate in contract.rates.all():
        list_price = rate.sku.list_price_per_gpu_hour
        discount = (
            ((list_price - rate.price_per_gpu_hour) * 100 / list_price).quantize(
                Decimal("0.1"), rounding=ROUND_HALF_UP
            )
            if list_price
            else Decimal("0")
        )
        rows.append(RateVsList(rate=rate, list_price=list_price, discount_percent=discount))
    return rows


def contract_documents(*, contract: Contract) -> QuerySet[ContractDocument]:
    return (
        ContractDocument.objects.for_organization(contract.organization_id)
        .filter(contract=contract)
        .select_related("uploaded_by")
        .order_by("-uploaded_at", "-pk")
    )


def contract_document_get(*, organization: Organization, contract_pk: int, pk: int):
    document = (
        ContractDocument.objects.for_organization(organization)
        .filter(contract_id=contract_pk, pk=pk)
        .first()
    )
    if document is None:
        raise Http404("No such document.")
    return document


def contract_reservations(*, contract: Contract) -> QuerySet[Reservation]:
    """Reservations priced by the contract, newest first."""
    return (
        Reservation.objects.for_organization(contract.organization_id)
        .filter(contract=contract)
        .select_related("pool__sku", "pool__region")
        .order_by("-starts_at", "-pk")
    )
