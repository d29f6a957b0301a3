"""Demo contracts: an active multi-year agreement for Acme and a one-year one for Globex, each
with its signed document (a small PDF drawn with ReportLab at seed time, stored in the default
storage); and, after the usage demo, issued statements for the months that have ended.

Idempotent (matched by contract number, rates by SKU and region, documents by title,
statements by month) and deterministic: terms are whole years around the current year, so the
contracts are active whenever the demo runs. Needs the organizations (``accounts.demo.seed``)
and the catalog (``quotas.demo.seed_catalog``); ``seed_statements`` needs ``usage.demo.seed``.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from accounts.models import Organization
from quotas.models import GpuSku, Region

from .charges import month_start
from .models import Contract, ContractDocument, ContractRate
from .pdf import contract_summary_pdf
from .services import contract_document_add, statement_issue

# number, organization slug, years before/after the current year, committed spend, terms, notes
CONTRACTS = [
    (
        "ACME-MSA-001",
        "acme",
        (-1, 2),
        "36000000.00",
        "Net 30, invoiced monthly in arrears",
        "Three-year take-or-pay commitment for training clusters.",
    ),
    (
        "GLOBEX-SA-001",
        "globex",
        (0, 1),
        "4800000.00",
        "Net 45, invoiced monthly in arrears",
        "One-year commitment for inference fleets.",
    ),
]

# number -> (SKU code, region code or None for any region, price per GPU-hour)
RATES = {
    "ACME-MSA-001": [
        ("h100-sxm-80gb", None, "2.4900"),
        ("h100-sxm-80gb", "us-east-2", "2.3900"),
        ("h200-141gb", None, "3.1900"),
        ("h200-141gb", "us-west-2", "3.0900"),
        ("a100-sxm-80gb", None, "1.4500"),
    ],
    "GLOBEX-SA-001": [
        ("h100-sxm-80gb", None, "2.7900"),
        ("a100-sxm-80gb", None, "1.5900"),
        ("a100-sxm-40gb", "us-central-1", "1.0900"),
        ("l40s-48gb", None, "0.8500"),
    ],
}


@transaction.atomic
def seed() -> str:
    year = timezone.now().year
    done = []
    for number, slug, (before, after), committed, terms, notes in CONTRACTS:
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            continue
        contract, created = Contract.all_objects.update_or_create(
            number=number,
            defaults={
                "organization": organization,
                "status": Contract.Status.ACTIVE,
                "term_start": date(year + before, 1, 1),
                "term_end": date(year + after, 1, 1),
                "currency": "USD",
                "committed_spend": Decimal(committed),
                "payment_terms": terms,
                "notes": notes,
            },
        )
        for sku_code, region_code, price in RATES[number]:
            ContractRate.objects.update_or_create(
                contract=contract,
                sku=GpuSku.objects.get(code=sku_code),
                region=Region.objects.get(code=region_code) if region_code else None,
                defaults={"price_per_gpu_hour": Decimal(price)},
            )
        _seed_document(contract)
        done.append(f"{number} ({'created' if created else 'in place'})")
    return ", ".join(done) or "no demo organizations yet"


DOCUMENT_TITLE = "Signed master services agreement"


def _seed_document(contract: Contract) -> None:
    if ContractDocument.objects.for_organization(contract.organization).filter(
        contract=contract, title=DOCUMENT_TITLE
    ):
        return
    contract_document_add(
        contract=contract,
        uploaded_file=SimpleUploadedFile(
            f"{contract.number}.pdf", contract_summary_pdf(contract), "application/pdf"
        ),
        title=DOCUMENT_TITLE,
        kind=ContractDocument.Kind.SIGNED_CONTRACT,
        actor=None,
    )


STATEMENT_MONTHS = 12


def seed_statements() -> str:
    """Issue each demo organization's statements of the last twelve months that have ended,
    oldest first (issuing an issued month changes nothing)."""
    now = timezone.now()
    month = month_start(now.date())
    months = []
    for _ in range(STATEMENT_MONTHS - 1):
        month = month_start(month - timedelta(days=1))
        months.append(month)
    months.reverse()
    issued = 0
    for slug in ("acme", "globex"):
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            continue
        for month in months:
            _, created = statement_issue(organization=organization, month=month, now=now)
            issued += created
    return f"{issued} statements issued ({len(months)} months per organization)"
