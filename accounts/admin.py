"""Provider admin for people, organizations and the audit trail.

Superusers manage users (staff roles) and organizations (status, account manager); every change
is audited like a change made through the pages. Memberships and invitations are read-only here:
they change through the organization's own pages, which keep the one-owner rule. The audit log
is append-only everywhere.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from .models import AuditEvent, Invitation, Membership, Organization, StaffRole, User
from .permissions import SUPERUSER
from .selectors import organization_list_for_staff, staff_role_for
from .services import audit_record, organization_create, organization_status_set


def _is_superuser(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


def _is_provider_staff(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_provider_staff)


class StaffReadableMixin:
    """Provider staff may look; superusers change; nobody deletes."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_provider_staff(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return _is_provider_staff(request)

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return _is_superuser(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return _is_superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ReadOnlyMixin(StaffReadableMixin):
    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def sees_every_organization(user: User) -> bool:
    return staff_role_for(user) in (SUPERUSER, StaffRole.CAPACITY_PLANNER)


def managed_organization_ids(user: User) -> QuerySet:
    return organization_list_for_staff(user=user).order_by().values("pk")


class ManagedOrganizationsMixin:
    """An account manager sees in the admin only the organizations they manage, as on the
    pages; capacity planners and superusers see every organization. ``organization_field`` is
    the path from the listed model to its organization."""

    organization_field = "organization"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        if sees_every_organization(request.user):
            return queryset
        return queryset.filter(
            **{f"{self.organization_field}__in": managed_organization_ids(request.user)}
        )


def _changes(form) -> dict[str, str]:
    return {name: str(form.cleaned_data.get(name)) for name in form.changed_data}


@admin.register(User)
class UserAdmin(StaffReadableMixin, admin.ModelAdmin):
    list_display = ("email", "full_name", "staff_role", "is_superuser", "is_active", "last_login")
    list_filter = ("staff_role", "is_superuser", "is_active")
    search_fields = ("email", "full_name")
    ordering = ("email",)
    fields = ("email", "full_name", "staff_role", "is_active", "is_superuser", "last_login")
    readonly_fields = ("last_login",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        """Account managers see provider staff and the people of their own organizations."""
        queryset = super().get_queryset(request)
        if sees_every_organization(request.user):
            return queryset
        mine = Membership.all_objects.filter(
            organization__in=managed_organization_ids(request.user)
        ).values("user_id")
        return queryset.filter(Q(pk__in=mine) | ~Q(staff_role="") | Q(is_superuser=True))

    def save_model(self, request: HttpRequest, obj: User, form, change: bool) -> None:
        if not change:
            # New people set their password through the password-reset e-mail.
            obj.set_unusable_password()
        super().save_model(request, obj, form, change)
        audit_record(
            organization=None,
            actor=request.user,
            action="user.changed_by_staff" if change else "user.created_by_staff",
            target=obj,
            changes=_changes(form),
            request=request,
        )


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ("user", "role", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class OrganizationCreateForm(forms.ModelForm):
    owner = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True, is_superuser=False, staff_role=""),
        help_text="The customer's first owner; they invite the rest of their people.",
    )

    class Meta:
        model = Organization
        fields = ("name", "slug", "account_manager", "time_zone")


@admin.register(Organization)
class OrganizationAdmin(ManagedOrganizationsMixin, StaffReadableMixin, admin.ModelAdmin):
    organization_field = "pk"

    list_display = ("name", "slug", "status", "account_manager", "require_mfa", "created_at")
    list_filter = ("status", "require_mfa", "account_manager")
    search_fields = ("name", "slug")
    list_select_related = ("account_manager",)
    inlines = [MembershipInline]
    fields = ("name", "slug", "status", "account_manager", "time_zone", "require_mfa")
    actions = ["suspend", "reinstate"]

    def _status_set(self, request: HttpRequest, queryset: QuerySet, status: str) -> int:
        return sum(
            organization_status_set(
                organization=organization, status=status, actor=request.user, request=request
            )
            for organization in queryset
        )

    @admin.action(
        description="Suspend: members may read but not change anything", permissions=["change"]
    )
    def suspend(self, request: HttpRequest, queryset: QuerySet) -> None:
        changed = self._status_set(request, queryset, Organization.Status.SUSPENDED)
        messages.success(request, f"{changed} organization(s) suspended.")

    @admin.action(description="Reinstate suspended organizations", permissions=["change"])
    def reinstate(self, request: HttpRequest, queryset: QuerySet) -> None:
        changed = self._status_set(request, queryset, Organization.Status.ACTIVE)
        messages.success(request, f"{changed} organization(s) reinstated.")

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = OrganizationCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ("name", "slug", "owner", "account_manager", "time_zone")
        return self.fields

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return ("slug",) if obj is not None else ()

    def get_inlines(self, request: HttpRequest, obj=None):
        return self.inlines if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Organization, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            audit_record(
                organization=obj,
                actor=request.user,
                action="organization.changed_by_staff",
                target=obj,
                changes=_changes(form),
                request=request,
            )
            return
        data = form.cleaned_data
        created = organization_create(
            name=data["name"],
            slug=data["slug"],
            owner=data["owner"],
            account_manager=data.get("account_manager"),
            time_zone=data.get("time_zone") or "UTC",
        )
        obj.pk = created.pk
        obj.created_at = created.created_at

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)


@admin.register(Invitation)
class InvitationAdmin(ManagedOrganizationsMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("email", "organization", "role", "status", "invited_by", "expires_at")
    list_filter = ("role", ("organization", admin.RelatedOnlyFieldListFilter))
    search_fields = ("email", "organization__name")
    list_select_related = ("organization", "invited_by")
    exclude = ("token_hash",)


@admin.register(AuditEvent)
class AuditEventAdmin(ManagedOrganizationsMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("created_at", "organization", "actor_email", "actor_is_staff", "action")
    list_filter = ("actor_is_staff", ("organization", admin.RelatedOnlyFieldListFilter))
    search_fields = ("action", "actor_email", "target_repr")
    list_select_related = ("organization",)
    date_hierarchy = "created_at"
