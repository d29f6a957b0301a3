"""Staff admin for the catalog: regions, GPU SKUs and capacity pools.

Capacity changes and holds are read-only here. A capacity change is added only through the
"Add a capacity change" page of a pool, which calls ``capacity_change_add`` (pool lock, refusal
or at-risk flags, audit); holds are placed and released only by the request workflow.
Capacity planners (and superusers) edit the catalog; account managers may look.
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
from .models import CapacityChange, CapacityHold, CapacityPool, GpuSku, Region


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
