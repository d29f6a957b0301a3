"""Staff admin for the catalog (regions, GPU SKUs and capacity pools) and a read-only view of
capacity requests and reservations.

Capacity changes and holds are read-only here. A capacity change is added only through the
"Add a capacity change" page of a pool, which calls ``capacity_change_add`` (pool lock, refusal
or at-risk flags, audit); holds are placed and released only by the request workflow.
Capacity planners (and superusers) edit the catalog; account managers may look.

Requests and reservations are only looked at here, whoever looks: their state, holds, offers,
decisions and prices move only through ``quotas.services`` (the transition tables, the row and
pool locks, the audit trail), from the staff pages and the API. An account manager sees the
organizations they manage, as on the pages.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import IntegerField, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.admin import ManagedOrganizationsMixin
from accounts.services import audit_record
from portal.errors import DomainError

from .capacity import ChangeMode, capacity_change_add
from .models import (
    CapacityChange,
    CapacityHold,
    CapacityPool,
    CapacityRequest,
    GpuSku,
    Region,
    RequestCheck,
    RequestEvent,
    Reservation,
)


def is_catalog_editor(user) -> bool:
    return bool(user.is_active and (user.is_superuser or user.is_capacity_planner))


def is_catalog_viewer(user) -> bool:
    return bool(user.is_active and user.is_provider_staff)


class CatalogAdminMixin:
    """Staff roles, not Django model permissions, decide who edits the catalog."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_catalog_viewer(request.user)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_catalog_viewer(request.user)

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return is_catalog_editor(request.user)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_catalog_editor(request.user)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Regions, SKUs and pools are referenced by holds and contracts: deactivate instead.
        return False

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit_record(
            organization=None,
            actor=request.user,
            action=f"catalog.{obj._meta.model_name}_{'changed' if change else 'created'}",
            target=obj,
            changes={name: str(form.cleaned_data.get(name)) for name in form.changed_data},
            request=request,
        )


class ReadOnlyAdminMixin(CatalogAdminMixin):
    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Region)
class RegionAdmin(CatalogAdminMixin, admin.ModelAdmin):
    list_display = ["code", "name", "location", "active"]
    list_filter = ["active"]
    search_fields = ["code", "name", "location"]


@admin.register(GpuSku)
class GpuSkuAdmin(CatalogAdminMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "code",
        "memory_gb",
        "interconnect",
        "gpus_per_node",
        "sold_in_whole_nodes",
        "list_price_per_gpu_hour",
        "active",
    ]
    list_filter = ["active", "sold_in_whole_nodes"]
    search_fields = ["code", "name"]


class CapacityChangeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CapacityChange
    fields = ["effective_at", "ends_at", "gpus_delta", "reason", "created_by", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["effective_at"]


class CapacityChangeForm(forms.Form):
    gpus_delta = forms.IntegerField(
        label="GPUs added (negative to remove)",
        help_text="For example 512 for a new hall, -64 for a maintenance window.",
    )
    effective_at = forms.DateTimeField(help_text="UTC, YYYY-MM-DD HH:MM.")
    ends_at = forms.DateTimeField(
        required=False, help_text="UTC. Leave empty for a permanent change."
    )
    reason = forms.CharField(max_length=200)
    mode = forms.ChoiceField(
        choices=[
            (ChangeMode.REFUSE, "Refuse a reduction below what is already held"),
            (ChangeMode.FLAG, "Apply it and flag the reservations it breaks as at risk"),
        ],
        initial=ChangeMode.REFUSE,
        widget=forms.RadioSelect,
    )


@admin.register(CapacityPool)
class CapacityPoolAdmin(CatalogAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "region", "sku", "installed_now", "active"]
    list_filter = ["active", "region", "sku"]
    list_select_related = ["region", "sku"]
    readonly_fields = ["installed_now", "capacity_actions"]
    inlines = [CapacityChangeInline]

    def get_queryset(self, request: HttpRequest):
        now = timezone.now()
        installed = (
            CapacityChange.objects.filter(pool=OuterRef("pk"), effective_at__lte=now)
            .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
            .order_by()
            .values("pool")
            .annotate(total=Sum("gpus_delta"))
            .values("total")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(installed_gpus=Coalesce(Subquery(installed), 0, output_field=IntegerField()))
        )

    @admin.display(description="GPUs installed now", ordering="installed_gpus")
    def installed_now(self, pool: CapacityPool) -> int:
        return getattr(pool, "installed_gpus", 0)

    @admin.display(description="Capacity")
    def capacity_actions(self, pool: CapacityPool) -> str:
        if pool.pk is None:
            return "Save the pool first, then add its capacity."
        url = reverse("admin:quotas_capacitypool_capacity_change", args=[pool.pk])
        return format_html('<a class="button" href="{}">Add a capacity change</a>', url)

    def get_urls(self):
        return [
            path(
                "<int:pool_id>/capacity-change/",
                self.admin_site.admin_view(self.capacity_change_view),
                name="quotas_capacitypool_capacity_change",
            ),
            *super().get_urls(),
        ]

    def capacity_change_view(self, request: HttpRequest, pool_id: int):
        if not is_catalog_editor(request.user):
            raise PermissionDenied
        pool = get_object_or_404(CapacityPool.objects.select_related("region", "sku"), pk=pool_id)
        form = CapacityChangeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                change = capacity_change_add(
                    pool=pool,
                    gpus_delta=data["gpus_delta"],
                    effective_at=data["effective_at"],
                    ends_at=data["ends_at"],
                    reason=data["reason"],
                    actor=request.user,
                    mode=data["mode"],
                )
            except DomainError as error:
                form.add_error(error.field if error.field in form.fields else None, error.message)
            else:
                at_risk = CapacityHold.objects.unscoped_for_staff().filter(pool=pool, at_risk=True)
                messages.success(request, f"Recorded: {change}.")
                if data["mode"] == ChangeMode.FLAG and at_risk.exists():
                    messages.warning(
                        request,
                        f"{at_risk.count()} holds of this pool are at risk; their account "
                        "managers are being told.",
                    )
                return HttpResponseRedirect(
                    reverse("admin:quotas_capacitypool_change", args=[pool.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Add a capacity change to {pool}",
            "opts": self.model._meta,
            "original": pool,
            "form": form,
        }
        return TemplateResponse(request, "admin/quotas/capacitypool/capacity_change.html", context)


@admin.register(CapacityChange)
class CapacityChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["pool", "gpus_delta", "effective_at", "ends_at", "reason", "created_by"]
    list_filter = ["pool__region", "pool__sku"]
    list_select_related = ["pool__region", "pool__sku", "created_by"]
    date_hierarchy = "effective_at"


@admin.register(CapacityHold)
class CapacityHoldAdmin(ManagedOrganizationsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "pool",
        "organization",
        "kind",
        "gpu_count",
        "starts_at",
        "ends_at",
        "expires_at",
        "released_at",
        "at_risk",
    ]
    list_filter = ["kind", "at_risk", "pool__region", "pool__sku"]
    list_select_related = ["pool__region", "pool__sku", "organization"]
    search_fields = ["organization__name", "organization__slug"]
    date_hierarchy = "starts_at"


# --- Requests and reservations: look, never edit --------------------------------------------
class WorkflowReadOnlyMixin(ReadOnlyAdminMixin):
    """View-only for everyone, superusers included, and read through the tenancy manager's
    staff path: an edit here would skip the workflow's table, locks and audit."""

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest):
        queryset = self.model.objects.unscoped_for_staff()
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    def get_actions(self, request: HttpRequest):
        return {}  # no bulk delete, nor any other bulk write


def _reference_search(queryset, search_term: str, prefixes: dict[str, str]):
    """A reference (``REQ-12``, ``RES-7``) or a bare id finds that row: ``prefixes`` maps each
    reference prefix to the field it names; a bare number is the row's own id."""
    term = search_term.strip().upper()
    for prefix, field in prefixes.items():
        if term.startswith(prefix) and term[len(prefix) :].isdigit():
            return queryset.filter(**{field: int(term[len(prefix) :])})
    return queryset.filter(pk=int(term)) if term.isdigit() else queryset.none()


class RequestCheckInline(WorkflowReadOnlyMixin, admin.TabularInline):
    model = RequestCheck
    fields = ["run", "name", "outcome", "reason", "figures"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["run", "id"]


class RequestEventInline(WorkflowReadOnlyMixin, admin.TabularInline):
    model = RequestEvent
    fields = ["at", "from_state", "to_state", "actor", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["at", "id"]
    verbose_name_plural = "timeline"

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("actor")


@admin.register(CapacityRequest)
class CapacityRequestAdmin(ManagedOrganizationsMixin, WorkflowReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "reference",
        "organization",
        "kind",
        "state",
        "sku",
        "region",
        "gpu_count",
        "starts_at",
        "ends_at",
        "flagged",
        "decision_due_at",
        "submitted_at",
    ]
    list_filter = [
        "state",
        "kind",
        "flagged",
        "offer_kind",
        ("organization", admin.RelatedOnlyFieldListFilter),
        "region",
        "sku",
    ]
    list_select_related = ["organization", "sku", "region"]
    search_fields = ["organization__name", "organization__slug", "justification"]
    date_hierarchy = "created_at"
    inlines = [RequestCheckInline, RequestEventInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "organization",
                    "kind",
                    "state",
                    "state_changed_at",
                    "version",
                    "sku",
                    "region",
                    "gpu_count",
                    "starts_at",
                    "ends_at",
                    "on_demand_limit",
                    "alternative_skus",
                    "alternative_regions",
                    "waitlist_if_unavailable",
                    "extends_reservation",
                    "justification",
                    "requested_by",
                    "submitted_at",
                ]
            },
        ),
        (
            "Checks and decision",
            {
                "fields": [
                    "signed_off_by",
                    "signed_off_at",
                    "flagged",
                    "capacity_available",
                    "pool",
                    "decision_due_at",
                    "reminder_sent_at",
                    "escalated_at",
                    "first_approved_by",
                    "first_approved_at",
                    "decided_by",
                    "decided_at",
                    "decision_reason",
                ]
            },
        ),
        (
            "Offer and its hold",
            {
                "fields": [
                    "offer_kind",
                    "offer_pool",
                    "offer_gpu_count",
                    "offer_starts_at",
                    "offer_ends_at",
                    "offer_expires_at",
                    "offer_note",
                    "offer_hold",
                ]
            },
        ),
        (
            "Quote",
            {
                "fields": [
                    "quote_currency",
                    "quote_rate_per_gpu_hour",
                    "quote_gpu_hours",
                    "quote_total",
                    "quote_source",
                ]
            },
        ),
    ]

    def get_queryset(self, request: HttpRequest):
        return (
            super()
            .get_queryset(request)
            .select_related(
                "organization",
                "sku",
                "region",
                "pool__sku",
                "pool__region",
                "offer_pool__sku",
                "offer_pool__region",
                "offer_hold",
                "requested_by",
                "signed_off_by",
                "first_approved_by",
                "decided_by",
                "extends_reservation",
            )
        )

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        by_reference = _reference_search(queryset, search_term, {"REQ-": "pk"})
        return found | by_reference, may_have_duplicates

    @admin.display(description="Request", ordering="pk")
    def reference(self, capacity_request: CapacityRequest) -> str:
        return capacity_request.reference


@admin.register(Reservation)
class ReservationAdmin(ManagedOrganizationsMixin, WorkflowReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "reference",
        "organization",
        "pool",
        "gpu_count",
        "starts_at",
        "ends_at",
        "state",
        "total",
        "currency",
        "at_risk",
    ]
    list_filter = [
        "state",
        ("organization", admin.RelatedOnlyFieldListFilter),
        "pool__region",
        "pool__sku",
        "hold__at_risk",
    ]
    list_select_related = ["organization", "pool__sku", "pool__region", "hold"]
    search_fields = ["organization__name", "organization__slug"]
    date_hierarchy = "starts_at"
    fields = [
        "organization",
        "request",
        "state",
        "state_changed_at",
        "version",
        "pool",
        "gpu_count",
        "starts_at",
        "ends_at",
        "hold",
        "at_risk",
        "currency",
        "rate_per_gpu_hour",
        "gpu_hours",
        "total",
        "price_source",
        "contract",
        "activated_at",
        "ended_at",
        "ended_by",
        "end_reason",
        "created_at",
    ]

    def get_queryset(self, request: HttpRequest):
        return (
            super()
            .get_queryset(request)
            .select_related(
                "organization",
                "request__sku",
                "request__region",
                "pool__sku",
                "pool__region",
                "hold",
                "contract",
                "ended_by",
            )
        )

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        by_reference = _reference_search(
            queryset, search_term, {"RES-": "pk", "REQ-": "request_id"}
        )
        return found | by_reference, may_have_duplicates

    @admin.display(description="Reservation", ordering="pk")
    def reference(self, reservation: Reservation) -> str:
        return reservation.reference

    @admin.display(description="At risk", boolean=True, ordering="hold__at_risk")
    def at_risk(self, reservation: Reservation) -> bool:
        return reservation.hold.at_risk
