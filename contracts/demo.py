"""Demo contracts: an active multi-year agreement for Acme and a one-year one for Globex.

Idempotent (matched by contract number, rates by SKU and region) and deterministic: terms are
whole years around the current year, so the contracts are active whenever the demo runs.
Needs the organizations (``accounts.demo.seed``) and the catalog (``quotas.demo.seed_catalog``).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import Organization
from quotas.models import GpuSku, Region

from .models import Contract, ContractRate

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
        done.append(f"{number} ({'created' if created else 'in place'})")
    return ", ".join(done) or "no demo organizations yet"
