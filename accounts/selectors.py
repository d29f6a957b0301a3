"""Reads about users, organizations and their access."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from django.db.models import QuerySet
from django.http import Http404

from .models import AuditEvent, Invitation, Membership, Organization, Role, StaffRole, User
from .permissions import (
    ROLE_CAPABILITIES,
    STAFF_CAPABILITIES,
    SUPERUSER,
    role_has,
    staff_role_has,
)


@dataclass(frozen=True)
class OrganizationAccess:
    """What one user may do in one organization, resolved once per request."""

    organization: Organization
    user: User
    role: str | None  # tenant role, None for provider staff without a membership
    staff_role: str | None  # account_manager / capacity_planner / superuser, when staff

    @property
    def is_member(self) -> bool:
        return self.role is not None

    @property
    def is_staff_access(self) -> bool:
        """Provider staff looking at a tenant they do not belong to."""
        return self.role is None and self.staff_role is not None

    def can(self, capability: str) -> bool:
        if self.role is not None and role_has(self.role, capability):
            return True
        return self.staff_role is not None and staff_role_has(self.staff_role, capability)

    @cached_property
    def capabilities(self) -> frozenset[str]:
        """Every capability held here, for templates (``{% if "audit.view" in caps %}``)."""
        return frozenset(c for c in {*ROLE_CAPABILITIES, *STAFF_CAPABILITIES} if self.can(c))


def staff_role_for(user: User) -> str | None:
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return SUPERUSER
    return user.staff_role or None


def staff_can_see_organization(*, user: User, organization: Organization) -> bool:
    role = staff_role_for(user)
    if role in (SUPERUSER, StaffRole.CAPACITY_PLANNER):
        return True
    return role == StaffRole.ACCOUNT_MANAGER and organization.account_manager_id == user.pk


def organization_access_get(*, user: User, slug: str) -> OrganizationAccess:
    """Resolve the organization named in a URL for this user, or 404.

    A user who is neither a member nor provider staff allowed to see it gets the same 404 as
    for an organization that does not exist: the portal does not confirm that a tenant exists.
    """
    if not user.is_authenticated:
        raise Http404("No such organization.")
    organization = Organization.objects.select_related("account_manager").filter(slug=slug).first()
    if organization is None:
        raise Http404("No such organization.")
    membership = (
        Membership.objects.for_organization(organization).filter(user=user).only("role").first()
    )
    staff_role = staff_role_for(user)
    if staff_role and not staff_can_see_organization(user=user, organization=organization):
        staff_role = None
    if membership is None and staff_role is None:
        raise Http404("No such organization.")
    return OrganizationAccess(
        organization=organization,
        user=user,
        role=membership.role if membership else None,
        staff_role=staff_role,
    )


def organization_list_for_user(*, user: User) -> QuerySet[Organization]:
    """Organizations the user belongs to (for the switcher)."""
    if not user.is_authenticated:
        return Organization.objects.none()
    return Organization.objects.filter(memberships__user=user).order_by("name")


def organization_list_for_staff(*, user: User) -> QuerySet[Organization]:
    """Organizations a provider staff member may see: their own, or all for planners."""
    role = staff_role_for(user)
    if role in (SUPERUSER, StaffRole.CAPACITY_PLANNER):
        return Organization.objects.select_related("account_manager").order_by("name")
    if role == StaffRole.ACCOUNT_MANAGER:
        return Organization.objects.filter(account_manager=user).order_by("name")
    return Organization.objects.none()


def membership_list(*, organization: Organization) -> QuerySet[Membership]:
    return (
        Membership.objects.for_organization(organization)
        .select_related("user")
        .order_by("user__email")
    )


def membership_owner_count(*, organization: Organization) -> int:
    return Membership.objects.for_organization(organization).filter(role=Role.OWNER).count()


def invitation_list_pending(*, organization: Organization) -> QuerySet[Invitation]:
    return (
        Invitation.objects.for_organization(organization)
        .filter(accepted_at__isnull=True, revoked_at__isnull=True)
        .select_related("invited_by")
        .order_by("-created_at")
    )


def audit_event_list(
    *,
    organization: Organization,
    action: str | None = None,
    actor_email: str | None = None,
    since=None,
    until=None,
) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.for_organization(organization)
    if action:
        qs = qs.filter(action__startswith=action)
    if actor_email:
        qs = qs.filter(actor_email__icontains=actor_email)
    if since:
        qs = qs.filter(created_at__gte=since)
    if until:
        qs = qs.filter(created_at__lt=until)
    return qs.order_by("-created_at", "-id")
