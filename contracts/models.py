"""Contracts (the commercial agreement with an organization) and their negotiated rates."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
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
    # When an active contract was terminated: it priced usage up to then. Empty for a contract
    # terminated as a draft (never in force) and for every other status.
    terminated_at = models.DateTimeField(null=True, blank=True, editable=False)

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


def contract_document_path(document: ContractDocument, filename: str) -> str:
    """Stored under a random name: the uploader's file name is kept only as the title."""
    return f"contracts/{document.organization_id}/{uuid.uuid4().hex}"


class ContractDocument(models.Model):
    """A file of a contract (the signed agreement, an amendment...), kept in the default
    storage and served only through the document view (never from MEDIA_URL)."""

    class Kind(models.TextChoices):
        SIGNED_CONTRACT = "signed_contract", "Signed contract"
        AMENDMENT = "amendment", "Amendment"
        ORDER_FORM = "order_form", "Order form"
        OTHER = "other", "Other"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, related_name="documents")
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.SIGNED_CONTRACT)
    file = models.FileField(upload_to=contract_document_path, max_length=300)
    content_type = models.CharField(max_length=40)
    size = models.PositiveBigIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    uploaded_at = models.DateTimeField(default=timezone.now)

    all_objects = models.Manager()
    objects = TenantManager()

    class Meta:
        default_manager_name = "all_objects"
        ordering = ["-uploaded_at", "-id"]

    def __str__(self) -> str:
        return f"{self.title} ({self.contract.number})"


class Statement(models.Model):
    """An organization's issued statement for one UTC calendar month: its lines and totals are
    frozen when it is issued. Usage that arrives later for that month is charged as adjustment
    lines on the next statement."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    month = models.DateField(help_text="First day of the UTC calendar month.")
    currency = models.CharField(max_length=3, default="USD")
    usage_total = models.DecimalField(max_digits=16, decimal_places=2)
    reservation_total = models.DecimalField(max_digits=16, decimal_places=2)
    adjustment_total = models.DecimalField(max_digits=16, decimal_places=2)
    total = models.DecimalField(max_digits=16, decimal_places=2)
    issued_at = models.DateTimeField(default=timezone.now)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    all_objects = models.Manager()
    objects = TenantManager()

    class Meta:
        default_manager_name = "all_objects"
        ordering = ["-month"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "month"], name="statement_one_a_month"),
            models.CheckConstraint(condition=Q(month__day=1), name="statement_month_first_day"),
            models.CheckConstraint(
                condition=Q(
                    total=F("usage_total") + F("reservation_total") + F("adjustment_total")
                ),
                name="statement_total_adds_up",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization} {self.month:%Y-%m}"


class StatementLine(models.Model):
    """One charged (or covered) figure of an issued statement."""

    class Kind(models.TextChoices):
        USAGE = "usage", "On-demand usage"
        COVERED = "covered", "Usage covered by a reservation"
        RESERVATION = "reservation", "Reservation"
        ADJUSTMENT = "adjustment", "Adjustment"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    statement = models.ForeignKey(Statement, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # What the figure is about: the statement's month, or an earlier month for an adjustment.
    period = models.DateField()
    # For adjustments: the kind of the line it corrects.
    adjusts = models.CharField(max_length=16, choices=Kind.choices, blank=True)
    sku = models.ForeignKey("quotas.GpuSku", on_delete=models.PROTECT, related_name="+")
    region = models.ForeignKey("quotas.Region", on_delete=models.PROTECT, related_name="+")
    reservation = models.ForeignKey(
        "quotas.Reservation", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    gpu_hours = models.DecimalField(max_digits=18, decimal_places=6)
    rate_per_gpu_hour = models.DecimalField(max_digits=10, decimal_places=4)
    price_source = models.CharField(max_length=16)
    contract = models.ForeignKey(
        Contract, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    amount = models.DecimalField(max_digits=16, decimal_places=2)

    all_objects = models.Manager()
    objects = TenantManager()

    class Meta:
        default_manager_name = "all_objects"
        ordering = ["statement_id", "id"]
        indexes = [models.Index(fields=["organization", "period"], name="statement_line_period")]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["usage", "covered", "reservation", "adjustment"]),
                name="statement_line_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.period:%Y-%m} {self.amount}"


class SpendAlertState(models.Model):
    """Whether one spend alert of a contract has fired: it fires once when its figure crosses
    the threshold and re-arms when the figure falls back below it. A new contract (period) has
    its own states."""

    class Kind(models.TextChoices):
        CONSUMED_50 = "consumed_50", "50% of committed spend consumed"
        CONSUMED_80 = "consumed_80", "80% of committed spend consumed"
        CONSUMED_100 = "consumed_100", "100% of committed spend consumed"
        FORECAST_UNDERUSE = "forecast_underuse", "Forecast under-use at term end"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="alert_states")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    fired = models.BooleanField(default=False)
    fire_count = models.PositiveIntegerField(default=0)
    last_value = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    fired_at = models.DateTimeField(null=True, blank=True)
    rearmed_at = models.DateTimeField(null=True, blank=True)

    all_objects = models.Manager()
    objects = TenantManager()

    class Meta:
        default_manager_name = "all_objects"
        constraints = [
            models.UniqueConstraint(fields=["contract", "kind"], name="spend_alert_state_unique")
        ]

    def __str__(self) -> str:
        return f"{self.contract_id} {self.kind}: {'fired' if self.fired else 'armed'}"


class QuotaAlertState(models.Model):
    """Whether an organization's quota utilization alert for one SKU, region and threshold
    has fired: once per crossing, re-armed when utilization falls back below it."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    sku = models.ForeignKey("quotas.GpuSku", on_delete=models.CASCADE, related_name="+")
    region = models.ForeignKey("quotas.Region", on_delete=models.CASCADE, related_name="+")
    threshold = models.PositiveSmallIntegerField()  # percent: 80, 95 or 100
    fired = models.BooleanField(default=False)
    fire_count = models.PositiveIntegerField(default=0)
    last_percent = models.DecimalField(max_digits=8, decimal_places=1, null=True, blank=True)
    last_hour = models.DateTimeField(null=True, blank=True)
    fired_at = models.DateTimeField(null=True, blank=True)
    rearmed_at = models.DateTimeField(null=True, blank=True)

    all_objects = models.Manager()
    objects = TenantManager()

    class Meta:
        default_manager_name = "all_objects"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "sku", "region", "threshold"],
                name="quota_alert_state_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.sku_id}@{self.region_id} {self.threshold}%"
