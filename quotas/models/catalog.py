"""The catalog (regions, GPU SKUs), capacity pools, their capacity over time, and holds."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import TenantManager


class Region(models.Model):
    """A data centre, e.g. ``us-east-1`` "New Jersey 1"."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    location = models.CharField(max_length=100, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} ({self.name})"


class GpuSku(models.Model):
    """A GPU type for sale: memory, interconnect, node size and list price per GPU-hour (USD)."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    memory_gb = models.PositiveIntegerField()
    interconnect = models.CharField(max_length=120, blank=True)
    gpus_per_node = models.PositiveSmallIntegerField(default=8, validators=[MinValueValidator(1)])
    sold_in_whole_nodes = models.BooleanField(
        default=True, help_text="Counts of this SKU must be a multiple of GPUs per node."
    )
    list_price_per_gpu_hour = models.DecimalField(
        max_digits=10, decimal_places=4, validators=[MinValueValidator(Decimal("0"))]
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(gpus_per_node__gte=1), name="sku_node_size_positive"
            ),
            models.CheckConstraint(
                condition=Q(list_price_per_gpu_hour__gte=0), name="sku_list_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CapacityPool(models.Model):
    """The GPUs of one SKU in one region. Installed capacity is the sum of its changes."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="pools")
    sku = models.ForeignKey(GpuSku, on_delete=models.PROTECT, related_name="pools")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["region__code", "sku__name"]
        constraints = [models.UniqueConstraint(fields=["region", "sku"], name="pool_region_sku")]

    def __str__(self) -> str:
        return f"{self.sku.name} in {self.region.code}"


class CapacityChange(models.Model):
    """A step in a pool's installed capacity: +N GPUs from a date (a new hall), or -N for a
    window (maintenance). Installed capacity at t = sum of deltas with effective_at <= t and
    (ends_at is null or t < ends_at). Written only through the locked capacity service."""

    pool = models.ForeignKey(CapacityPool, on_delete=models.CASCADE, related_name="changes")
    effective_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    gpus_delta = models.IntegerField()
    reason = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pool_id", "effective_at"]
        indexes = [models.Index(fields=["pool", "effective_at"], name="capchange_pool_time")]
        constraints = [
            models.CheckConstraint(condition=~Q(gpus_delta=0), name="capchange_delta_nonzero"),
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gt=F("effective_at")),
                name="capchange_window_valid",
            ),
        ]

    def __str__(self) -> str:
        sign = "+" if self.gpus_delta > 0 else ""
        return f"{sign}{self.gpus_delta} GPUs in {self.pool} from {self.effective_at:%Y-%m-%d}"


class CapacityHold(models.Model):
    """GPUs of a pool held for an organization over [starts_at, ends_at).

    Holds are what availability subtracts: a scheduled or active reservation, or a live
    counter-offer / waitlist offer (which lapses at ``expires_at``). A released hold holds
    nothing. Created and released only through the locked capacity services.
    """

    class Kind(models.TextChoices):
        RESERVATION = "reservation", "Reservation"
        OFFER = "offer", "Offer"

    pool = models.ForeignKey(CapacityPool, on_delete=models.PROTECT, related_name="holds")
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="capacity_holds"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    gpu_count = models.PositiveIntegerField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    at_risk = models.BooleanField(
        default=False, help_text="A capacity reduction left this hold without GPUs behind it."
    )
    created_at = models.DateTimeField(default=timezone.now)

    all_objects = models.Manager()
    objects = TenantManager()

    class Meta:
        default_manager_name = "all_objects"
        indexes = [
            models.Index(
                fields=["pool", "starts_at", "ends_at"],
                condition=Q(released_at__isnull=True),
                name="hold_live_pool_window",
            ),
            # Availability's sweeps (quotas/selectors/availability.py) ask for a pool's live
            # holds ending after a window start: the end comes first so that holds long over
            # are never read, and the columns they test are included so that the sweep reads
            # only the index.
            models.Index(
                fields=["pool", "ends_at"],
                include=["starts_at", "gpu_count", "kind", "expires_at", "id"],
                condition=Q(released_at__isnull=True),
                name="hold_live_pool_end",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(gpu_count__gt=0), name="hold_count_positive"),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="hold_window_valid"
            ),
            models.CheckConstraint(
                condition=Q(kind="reservation") | Q(expires_at__isnull=False),
                name="hold_offer_expires",
            ),
        ]

    def __str__(self) -> str:
        window = f"[{self.starts_at:%Y-%m-%d %H:%M}, {self.ends_at:%Y-%m-%d %H:%M})"
        return f"{self.gpu_count} x {self.pool} {window}"
