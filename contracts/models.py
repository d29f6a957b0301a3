"""Contracts (the commercial agreement with an organization) and their negotiated rates."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import TenantManager


class Contract(models.Model):
    """Term [term_start, term_end) in UTC dates, currency, committed (take-or-pay) spend."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        TERMINATED = "terminated", "Terminated"

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="contracts"
    )
    number = models.CharField(max_length=40, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    term_start = models.DateField()
    term_end = models.DateField()
    currency = models.CharField(max_length=3, default="USD")
    committed_spend = models.DecimalField(
        max_digits=14, decimal_places=2, default=Decimal("0"), validators=[MinValueValidator(0)]
    )
    payment_terms = models.CharField(max_length=120, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    all_objects = models.Manager()
    objects = TenantManager()

    class Meta:
        default_manager_name = "all_objects"
        ordering = ["-term_start"]
        constraints = [
            models.CheckConstraint(
                condition=Q(term_end__gt=F("term_start")), name="contract_term_valid"
            ),
            models.CheckConstraint(
                condition=Q(committed_spend__gte=0), name="contract_commit_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number} ({self.organization})"

    def clean(self) -> None:
        """Two active contracts of one organization must not overlap: prices and commitment
        burn-down need one answer to "which contract applies at t"."""
        super().clean()
        if self.status != self.Status.ACTIVE or not (
            self.organization_id and self.term_start and self.term_end
        ):
            return
        overlapping = (
            Contract.objects.for_organization(self.organization_id)
            .filter(
                status=self.Status.ACTIVE,
                term_start__lt=self.term_end,
                term_end__gt=self.term_start,
            )
            .exclude(pk=self.pk)
            .first()
        )
        if overlapping is not None:
            raise ValidationError(
                {
                    "term_start": f"The active contract {overlapping.number} already covers "
                    f"{overlapping.term_start} to {overlapping.term_end}; end or terminate it "
                    "first."
                }
            )


class ContractRate(models.Model):
    """Negotiated price per GPU-hour for a SKU, optionally only in one region."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="rates")
    sku = models.ForeignKey("quotas.GpuSku", on_delete=models.PROTECT, related_name="+")
    region = models.ForeignKey(
        "quotas.Region", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    price_per_gpu_hour = models.DecimalField(
        max_digits=10, decimal_places=4, validators=[MinValueValidator(Decimal("0"))]
    )

    class Meta:
        ordering = ["contract_id", "sku_id", "region_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["contract", "sku", "region"],
                name="contract_rate_unique",
                nulls_distinct=False,
            ),
            models.CheckConstraint(
                condition=Q(price_per_gpu_hour__gte=0), name="rate_not_negative"
            ),
        ]

    def __str__(self) -> str:
        where = self.region.code if self.region_id else "any region"
        return f"{self.sku} {where}: {self.price_per_gpu_hour}/GPU-h"
