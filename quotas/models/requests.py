"""Capacity requests (what a tenant asks), reservations (what was granted), on-demand quotas,
and the records around them: automatic checks, the timeline, comments, approval policy.

Rows change only through ``quotas.services``; the legal moves are in ``quotas.workflow``.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import TenantManager
from quotas.workflow import RequestState, ReservationState

from .catalog import CapacityHold, CapacityPool, GpuSku, Region

USER = settings.AUTH_USER_MODEL


class TenantOwned(models.Model):
    """Base for rows that belong to one organization (fail-closed scoping)."""

    # Subclasses redeclare ``organization`` with a reverse name where one is useful.
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")

    objects = TenantManager()
    all_objects = models.Manager()  # noqa: DJ012 (managers belong to the base, fields follow)

    class Meta:
        abstract = True
        default_manager_name = "all_objects"


class CapacityRequest(TenantOwned):
    """A tenant's request: a reservation (N GPUs of a SKU in a region over [start, end)) or an
    on-demand quota increase (a new limit for a SKU in a region)."""

    class Kind(models.TextChoices):
        RESERVATION = "reservation", "Reservation"
        QUOTA_INCREASE = "quota_increase", "On-demand quota increase"

    class OfferKind(models.TextChoices):
        NONE = "", "No offer"
        COUNTER = "counter", "Counter-offer"
        WAITLIST = "waitlist", "Waitlist offer"

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="capacity_requests"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.RESERVATION)
    state = models.CharField(
        max_length=32, choices=RequestState.choices, default=RequestState.DRAFT, db_index=True
    )
    sku = models.ForeignKey(GpuSku, on_delete=models.PROTECT, related_name="+")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    # Reservation kind: GPUs over [starts_at, ends_at). Quota kind: the new on-demand limit.
    gpu_count = models.PositiveIntegerField(null=True, blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    on_demand_limit = models.PositiveIntegerField(null=True, blank=True)
    justification = models.TextField(blank=True)
    # "Any of": other SKUs and/or regions the tenant accepts; the approver picks one.
    alternative_skus = models.ManyToManyField(GpuSku, blank=True, related_name="+")
    alternative_regions = models.ManyToManyField(Region, blank=True, related_name="+")
    waitlist_if_unavailable = models.BooleanField(
        default=False, help_text="Join the waitlist at once when no capacity fits."
    )
    extends_reservation = models.ForeignKey(
        "Reservation",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="extension_requests",
    )

    requested_by = models.ForeignKey(USER, null=True, on_delete=models.SET_NULL, related_name="+")
    signed_off_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    signed_off_at = models.DateTimeField(null=True, blank=True)

    # Outcome of the automatic checks.
    flagged = models.BooleanField(default=False, help_text="A soft check warned: review it.")
    capacity_available = models.BooleanField(null=True, blank=True)

    # Decision due time, reminders and escalation (while awaiting a provider decision).
    decision_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)

    # Decisions.
    pool = models.ForeignKey(
        CapacityPool,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The pool chosen by the approver (or the checks).",
    )
    first_approved_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    first_approved_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    # The live offer (counter-offer by an approver, or from the waitlist) and its hold.
    offer_kind = models.CharField(
        max_length=16, choices=OfferKind.choices, default=OfferKind.NONE, blank=True
    )
    offer_pool = models.ForeignKey(
        CapacityPool, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    offer_gpu_count = models.PositiveIntegerField(null=True, blank=True)
    offer_starts_at = models.DateTimeField(null=True, blank=True)
    offer_ends_at = models.DateTimeField(null=True, blank=True)
    offer_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    offer_note = models.TextField(blank=True)
    offer_hold = models.ForeignKey(
        CapacityHold, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    # Quote frozen at approval (the reservation carries its own copy).
    quote_currency = models.CharField(max_length=3, blank=True)
    quote_rate_per_gpu_hour = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True
    )
    quote_gpu_hours = models.DecimalField(max_digits=16, decimal_places=4, null=True, blank=True)
    quote_total = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    quote_source = models.CharField(max_length=16, blank=True)

    submitted_at = models.DateTimeField(null=True, blank=True)
    state_changed_at = models.DateTimeField(default=timezone.now)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "state"], name="request_org_state"),
            # The API list's page (newest first): read in order, not sorted from all the
            # organization's requests; the number in all is an index-only count of it.
            models.Index(fields=["organization", "-created_at", "-id"], name="request_org_recent"),
            models.Index(fields=["state", "state_changed_at"], name="request_state_since"),
            models.Index(fields=["state", "starts_at"], name="request_state_start"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=RequestState.values), name="request_state_valid"
            ),
            models.CheckConstraint(
                condition=(
                    Q(
                        kind="reservation",
                        gpu_count__gt=0,
                        starts_at__isnull=False,
                        ends_at__gt=F("starts_at"),
                    )
                    | Q(kind="quota_increase", on_demand_limit__isnull=False)
                ),
                name="request_kind_fields",
            ),
            models.CheckConstraint(
                condition=Q(offer_hold__isnull=True) | ~Q(offer_kind=""),
                name="request_offer_hold_has_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference}: {self.summary}"

    @property
    def reference(self) -> str:
        return f"REQ-{self.pk}" if self.pk else "REQ-new"

    @property
    def summary(self) -> str:
        where = f"{self.sku} in {self.region.code}"
        if self.kind == self.Kind.QUOTA_INCREASE:
            return f"on-demand limit {self.on_demand_limit} x {where}"
        return f"{self.gpu_count} x {where}"

    @property
    def is_reservation(self) -> bool:
        return self.kind == self.Kind.RESERVATION

    @property
    def is_extension(self) -> bool:
        return self.extends_reservation_id is not None


class Reservation(TenantOwned):
    """Capacity granted: GPUs of one pool held over [starts_at, ends_at), with a frozen price."""

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="reservations"
    )
    request = models.OneToOneField(
        CapacityRequest, on_delete=models.PROTECT, related_name="reservation"
    )
    pool = models.ForeignKey(CapacityPool, on_delete=models.PROTECT, related_name="reservations")
    gpu_count = models.PositiveIntegerField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    hold = models.OneToOneField(CapacityHold, on_delete=models.PROTECT, related_name="reservation")
    state = models.CharField(
        max_length=20, choices=ReservationState.choices, default=ReservationState.SCHEDULED
    )
    # Frozen at approval.
    currency = models.CharField(max_length=3)
    rate_per_gpu_hour = models.DecimalField(max_digits=10, decimal_places=4)
    gpu_hours = models.DecimalField(max_digits=16, decimal_places=4)
    total = models.DecimalField(max_digits=16, decimal_places=2)
    price_source = models.CharField(max_length=16)
    contract = models.ForeignKey(
        "contracts.Contract", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    activated_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(
        null=True, blank=True, help_text="When it completed, was released early or cancelled."
    )
    ended_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    end_reason = models.TextField(blank=True)
    state_changed_at = models.DateTimeField(default=timezone.now)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        ordering = ["starts_at", "id"]
        indexes = [
            models.Index(fields=["state", "starts_at"], name="reservation_state_start"),
            models.Index(fields=["state", "ends_at"], name="reservation_state_end"),
            models.Index(fields=["organization", "state"], name="reservation_org_state"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=ReservationState.values), name="reservation_state_valid"
            ),
            models.CheckConstraint(condition=Q(gpu_count__gt=0), name="reservation_count_pos"),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="reservation_window_valid"
            ),
            models.CheckConstraint(
                condition=Q(total__gte=0) & Q(rate_per_gpu_hour__gte=0),
                name="reservation_price_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference}: {self.gpu_count} x {self.pool}"

    @property
    def reference(self) -> str:
        return f"RES-{self.pk}" if self.pk else "RES-new"


class OnDemandQuota(TenantOwned):
    """The most on-demand GPUs of a SKU an organization may run at once in a region."""

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="on_demand_quotas"
    )
    sku = models.ForeignKey(GpuSku, on_delete=models.PROTECT, related_name="+")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    gpu_limit = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        ordering = ["organization_id", "sku_id", "region_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "sku", "region"], name="on_demand_quota_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization}: {self.gpu_limit} x {self.sku} in {self.region.code}"


class OnDemandQuotaChange(TenantOwned):
    """One change of an on-demand limit: the quota history is the sequence of these."""

    sku = models.ForeignKey(GpuSku, on_delete=models.PROTECT, related_name="+")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    old_limit = models.PositiveIntegerField()
    new_limit = models.PositiveIntegerField()
    effective_at = models.DateTimeField(default=timezone.now)
    request = models.ForeignKey(
        CapacityRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(TenantOwned.Meta):
        ordering = ["effective_at", "id"]
        indexes = [
            models.Index(
                fields=["organization", "sku", "region", "effective_at"], name="quota_change_time"
            )
        ]

    def __str__(self) -> str:
        return f"{self.sku_id}/{self.region_id}: {self.old_limit} -> {self.new_limit}"


class RequestCheck(TenantOwned):
    """The outcome of one automatic check on one run of the checks."""

    class Outcome(models.TextChoices):
        PASS = "pass", "Pass"
        WARN = "warn", "Warning"
        FAIL = "fail", "Fail"

    request = models.ForeignKey(CapacityRequest, on_delete=models.CASCADE, related_name="checks")
    run = models.PositiveSmallIntegerField(default=1)
    name = models.CharField(max_length=40)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    reason = models.CharField(max_length=500)
    figures = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        ordering = ["request_id", "run", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "run", "name"], name="request_check_unique"),
            models.CheckConstraint(
                condition=Q(outcome__in=["pass", "warn", "fail"]), name="request_check_outcome"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.outcome}"


class RequestEvent(TenantOwned):
    """One step of a request's (or its reservation's) timeline: who moved it, when and why."""

    request = models.ForeignKey(CapacityRequest, on_delete=models.CASCADE, related_name="events")
    reservation = models.ForeignKey(
        Reservation, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    from_state = models.CharField(max_length=32, blank=True)
    to_state = models.CharField(max_length=32)
    actor = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["request", "at"], name="request_event_time")]

    def __str__(self) -> str:
        subject = self.reservation.reference if self.reservation_id else self.request.reference
        return f"{subject}: {self.from_state or '-'} -> {self.to_state}"


class RequestComment(TenantOwned):
    request = models.ForeignKey(CapacityRequest, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(USER, null=True, on_delete=models.SET_NULL, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Comment on REQ-{self.request_id}"


class ApprovalPolicy(TenantOwned):
    """An organization's approval rules: auto-approval (set by its account manager) and
    sign-off inside the organization before the provider sees a request."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="approval_policy"
    )
    auto_approve_max_gpus = models.PositiveIntegerField(
        default=0, help_text="Approve at once up to this many GPUs (0: never)."
    )
    auto_approve_max_value = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="... and up to this total value.",
    )
    auto_approve_requires_contract = models.BooleanField(
        default=True, help_text="Auto-approve only within an active contract's term and rates."
    )
    signoff_for_members = models.BooleanField(
        default=False, help_text="Requests from members need an owner's or admin's sign-off."
    )
    signoff_above_value = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Requests worth at least this need sign-off (empty: no value rule).",
    )
    auto_accept_waitlist_offers = models.BooleanField(
        default=False, help_text="Book capacity freed for a waitlisted request at once."
    )
    updated_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        verbose_name_plural = "approval policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(auto_approve_max_value__gte=0), name="policy_value_not_negative"
            )
        ]

    def __str__(self) -> str:
        return f"Approval policy of {self.organization}"
