"""Staff admin for contracts and their rates.

Account managers create and edit the contracts of the organizations they manage; superusers
edit every contract; capacity planners may look. Every save is audited in the admin's
transaction, on the contract's organization.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Organization, StaffRole
from accounts.services import audit_record
from portal.errors import IllegalTransition

from .models import Contract, ContractDocument, ContractRate, Statement, StatementLine
from .selectors import contract_remaining_commitment
from .workflow import contract_require_transition


def _is_editor(user) -> bool:
    return bool(user.is_active and (user.is_superuser or user.is_account_manager))


def _is_viewer(user) -> bool:
    return bool(user.is_active and user.is_provider_staff)


def _visible_organizations(user):
    organizations = Organization.objects.all()
    if not user.is_superuser and user.staff_role == StaffRole.ACCOUNT_MANAGER:
        organizations = organizations.filter(account_manager=user)
    return organizations


def _may_edit(user, contract: Contract | None) -> bool:
    if not _is_editor(user):
        return False
    if contract is None or user.is_superuser:
        return True
    return contract.organization.account_manager_id == user.pk


class ContractRateInline(admin.TabularInline):
    model = ContractRate
    fields = ["sku", "region", "price_per_gpu_hour"]
    extra = 1

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return _is_viewer(request.user)

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return _may_edit(request.user, obj)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return _may_edit(request.user, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return _may_edit(request.user, obj)


class ContractForm(forms.ModelForm):
    """The status moves only along the legal transitions (``contracts.workflow``)."""

    class Meta:
        model = Contract
        fields = [
            "organization",
            "number",
            "status",
            "term_start",
            "term_end",
            "currency",
            "committed_spend",
            "payment_terms",
            "notes",
            "created_at",
        ]

    def clean_status(self):
        status = self.cleaned_data["status"]
        current = self.instance.status if self.instance.pk else None
        if current is not None and status != current:
            try:
                contract_require_transition(current, status)
            except IllegalTransition as exc:
                raise ValidationError(exc.message) from None
            if current == Contract.Status.ACTIVE and status == Contract.Status.TERMINATED:
                self.instance.terminated_at = timezone.now()  # it priced usage up to now
        return status


class ContractDocumentInline(admin.TabularInline):
    """Documents are attached on the contract's page (type and size checked there) and
    downloaded from it; the admin lists them."""

    model = ContractDocument
    fields = ["title", "kind", "content_type", "size", "uploaded_by", "uploaded_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return _is_viewer(request.user)

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Contract)
class ContractAdmin(admin.ModelAdmin):
    form = ContractForm
    list_display = [
        "number",
        "organization",
        "status",
        "term_start",
        "term_end",
        "currency",
        "committed_spend",
        "remaining_commitment",
    ]
    list_filter = ["status", "currency"]
    list_select_related = ["organization"]
    search_fields = ["number", "organization__name", "organization__slug"]
    date_hierarchy = "term_start"
    inlines = [ContractRateInline, ContractDocumentInline]

    def get_queryset(self, request: HttpRequest):
        queryset = super().get_queryset(request)
        return queryset.filter(organization__in=_visible_organizations(request.user))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "organization":
            kwargs["queryset"] = _visible_organizations(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_viewer(request.user)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return _is_viewer(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _is_editor(request.user)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return _may_edit(request.user, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # A contract is a record of an agreement: terminate or expire it, never delete it.
        return False

    @admin.display(description="Remaining commitment")
    def remaining_commitment(self, contract: Contract):
        return contract_remaining_commitment(contract=contract)

    def save_model(self, request, obj: Contract, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit_record(
            organization=obj.organization,
            actor=request.user,
            action="contract.changed" if change else "contract.created",
            target=obj,
            changes={
                name: str(form.cleaned_data.get(name))
                for name in (form.changed_data if change else form.fields)
            },
            request=request,
        )

    def save_formset(self, request, form, formset, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        if formset.new_objects or formset.changed_objects or formset.deleted_objects:
            contract = form.instance
            audit_record(
                organization=contract.organization,
                actor=request.user,
                action="contract.rates_changed",
                target=contract,
                changes={
                    "rates": [
                        {
                            "sku": rate.sku.code,
                            "region": rate.region.code if rate.region_id else None,
                            "price_per_gpu_hour": str(rate.price_per_gpu_hour),
                        }
                        for rate in contract.rates.select_related("sku", "region")
                    ]
                },
                request=request,
            )


class StatementLineInline(admin.TabularInline):
    model = StatementLine
    fields = [
        "kind",
        "adjusts",
        "period",
        "sku",
        "region",
        "reservation",
        "gpu_hours",
        "rate_per_gpu_hour",
        "price_source",
        "amount",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Statement)
class StatementAdmin(admin.ModelAdmin):
    """Issued statements are records: read-only here (issued by the nightly scan)."""

    list_display = ["organization", "month", "total", "adjustment_total", "issued_at"]
    list_select_related = ["organization"]
    date_hierarchy = "month"
    inlines = [StatementLineInline]

    def get_queryset(self, request: HttpRequest):
        queryset = super().get_queryset(request)
        return queryset.filter(organization__in=_visible_organizations(request.user))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_viewer(request.user)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return _is_viewer(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
