"""Base classes for every page under /o/<slug>/ and /staff/.

The organization comes from the URL and is resolved once, here; handlers receive it as
``self.organization`` and ``self.access``. Capabilities are declared per HTTP method. Members of
a suspended organization read as before (a banner says why nothing can change) and every write
is refused here with 403, for every page at once (``accounts.permissions``).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from .mfa import mfa_required_for_organization
from .models import Organization
from .permissions import refused_while_suspended
from .selectors import OrganizationAccess, organization_access_get
from .services import audit_record

STAFF_ACCESS_SESSION_KEY = "portal_staff_access_logged"


class OrganizationViewMixin(LoginRequiredMixin):
    """Resolve /o/<slug>/, check membership (404) and capability per method (403)."""

    permission_map: dict[str, str] = {"GET": "org.view", "HEAD": "org.view"}
    organization: Organization
    access: OrganizationAccess

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        self.access = organization_access_get(user=request.user, slug=kwargs["org_slug"])
        self.organization = self.access.organization
        capability = self.permission_map.get(request.method.upper())
        if capability is None:
            # Undeclared methods are refused: permissions fail closed.
            return self.http_method_not_allowed(request, *args, **kwargs)
        if refused_while_suspended(
            organization=self.organization,
            is_member=self.access.is_member,
            method=request.method,
            capability=capability,
        ):
            raise PermissionDenied(self.organization.suspension_message)
        if not self.access.can(capability):
            raise PermissionDenied(
                "Your role in this organization does not allow this."
                if self.access.is_member
                else "Provider staff have read-only access here."
            )
        if self.access.is_member and mfa_required_for_organization(request.user, self.organization):
            messages.warning(
                request,
                f"{self.organization.name} requires two-factor authentication: "
                "set it up to continue.",
            )
            return redirect(reverse("mfa_activate_totp"))
        if self.access.is_staff_access:
            self._record_staff_access(request)
        return super().dispatch(request, *args, **kwargs)

    def _record_staff_access(self, request: HttpRequest) -> None:
        """The tenant's audit log shows that provider staff looked at its pages, once a session."""
        seen = request.session.get(STAFF_ACCESS_SESSION_KEY, [])
        if self.organization.pk in seen:
            return
        audit_record(
            organization=self.organization,
            actor=request.user,
            action="staff.accessed",
            target=self.organization,
            changes={"path": request.path, "staff_role": self.access.staff_role},
            request=request,
        )
        request.session[STAFF_ACCESS_SESSION_KEY] = [*seen, self.organization.pk]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["organization"] = self.organization
        context["access"] = self.access
        return context


class StaffViewMixin(LoginRequiredMixin):
    """Pages under /staff/: provider staff only (MFA is enforced by middleware)."""

    staff_roles: frozenset[str] | None = None  # None: any staff role

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if not request.user.is_provider_staff:
            raise Http404("Not found.")
        if (
            self.staff_roles is not None
            and not request.user.is_superuser
            and request.user.staff_role not in self.staff_roles
        ):
            raise PermissionDenied("Your staff role does not include this page.")
        return super().dispatch(request, *args, **kwargs)
