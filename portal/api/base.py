"""Base classes of every API view.

- ``PortalAPIMixin``: any authenticated caller (IsAuthenticated by default), API key scope
  checked per method, ``Idempotency-Key`` honoured on POST.
- ``OrganizationAPIMixin``: ``/api/v1/orgs/<org_slug>/...``. The organization comes from the
  URL and is resolved once, here (``self.organization``, ``self.access``). A session user is
  resolved by ``organization_access_get`` (not a member: 404); an organization key must belong
  to that organization (else 404) and acts with its user's role there. Each view declares the
  capability of each method in ``permission_map`` (the table is ``accounts.permissions``); an
  undeclared method is refused. Members (and their keys) of a suspended organization may read;
  every write answers 403 ``organization_suspended``.
- ``StaffAPIMixin``: ``/api/v1/staff/...``, provider staff sessions or provider keys with the
  ``approvals`` scope; anyone else gets 404, as on the staff pages.
"""

from __future__ import annotations

import functools
from typing import Any

from rest_framework import exceptions, generics, viewsets
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.mfa import mfa_required_for_organization
from accounts.models import ApiKey, Membership, Organization
from accounts.permissions import refused_while_suspended
from accounts.selectors import OrganizationAccess, organization_access_get, staff_role_for
from accounts.services import audit_record
from accounts.views_base import STAFF_ACCESS_SESSION_KEY

from .authentication import api_key_of
from .idempotency import HEADER as IDEMPOTENCY_HEADER
from .idempotency import run_idempotent

READ_SCOPE = "read"
WRITE_SCOPE = "write"
APPROVALS_SCOPE = "approvals"


def _method_for_permissions(method: str) -> str:
    return "GET" if method in ("HEAD", "OPTIONS") else method


class PortalAPIMixin:
    """Key scopes and idempotency for every API view (mixed into DRF views)."""

    # Provider keys may read general endpoints; for anything else a view names the scope.
    provider_scope: str | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        raw_key = request.headers.get(IDEMPOTENCY_HEADER)
        if request.method == "POST" and raw_key is not None and hasattr(self, "post"):
            # DRF looks the handler up after initial(): run it through the idempotency record.
            self.post = functools.partial(run_idempotent, self, self.post, raw_key)

    def check_permissions(self, request: Request) -> None:
        super().check_permissions(request)  # DRF's permission classes: IsAuthenticated
        self.check_access(request)

    def check_access(self, request: Request) -> None:
        self.check_key_scope(request)

    def check_key_scope(self, request: Request) -> None:
        api_key = api_key_of(request)
        if api_key is None:
            return
        if api_key.is_provider_key:
            if request.method in SAFE_METHODS and self.provider_scope is None:
                return
            needed = self.provider_scope
            if needed is None or needed not in api_key.scopes:
                raise exceptions.PermissionDenied(
                    "Provider API keys cannot do this"
                    + (f"; it needs the {needed!r} scope." if needed else ".")
                )
            return
        needed = READ_SCOPE if request.method in SAFE_METHODS else WRITE_SCOPE
        if needed not in api_key.scopes:
            raise exceptions.PermissionDenied(f"This API key lacks the {needed!r} scope.")


class PortalAPIView(PortalAPIMixin, APIView):
    pass


class PortalGenericAPIView(PortalAPIMixin, generics.GenericAPIView):
    pass


class PortalReadOnlyViewSet(PortalAPIMixin, viewsets.ReadOnlyModelViewSet):
    pass


_NOT_READ = object()


def organization_access_for_request(request: Request, *, slug: str) -> OrganizationAccess:
    """The caller's access to the organization named in the URL (404 when it has none)."""
    api_key: ApiKey | None = api_key_of(request)
    if api_key is not None:
        organization = api_key.organization
        if organization is None or organization.slug != slug:
            raise exceptions.NotFound("No such organization.")
        # The key's organization and its user's role there came with the key, read in the same
        # statement on every request (a member removed loses the API at once). A key carries
        # its user's tenant role, never provider staff powers.
        role = getattr(api_key, "member_role", _NOT_READ)
        if role is _NOT_READ:  # a key not loaded by api_key_authenticate
            role = (
                Membership.objects.for_organization(organization)
                .filter(user_id=request.user.pk)
                .order_by()
                .values_list("role", flat=True)
                .first()
            )
        if role is None:
            raise exceptions.AuthenticationFailed(
                "The user this API key acts for is no longer a member of its organization."
            )
        return OrganizationAccess(
            organization=organization, user=request.user, role=role, staff_role=None
        )
    return organization_access_get(user=request.user, slug=slug)


def record_staff_access(request: Request, organization: Organization) -> None:
    """The tenant's audit log shows provider staff reading its data through the API, once a
    session (the same record, and the same session marker, as for its pages)."""
    seen = request.session.get(STAFF_ACCESS_SESSION_KEY, [])
    if organization.pk in seen:
        return
    audit_record(
        organization=organization,
        actor=request.user,
        action="staff.accessed",
        target=organization,
        changes={"path": request.path, "staff_role": staff_role_for(request.user)},
        request=request._request,
    )
    request.session[STAFF_ACCESS_SESSION_KEY] = [*seen, organization.pk]


class OrganizationSuspended(exceptions.APIException):
    """A write by a member of a suspended organization (problem code ``organization_suspended``)."""

    status_code = 403
    default_code = "organization_suspended"
    default_detail = "This organization is suspended: nothing can be changed."


class OrganizationAPIMixin(PortalAPIMixin):
    permission_map: dict[str, str] = {"GET": "org.view"}
    action_capabilities: dict[str, str] = {}
    organization: Organization
    access: OrganizationAccess

    def check_access(self, request: Request) -> None:
        # The organization first: a credential that cannot see it gets 404, whatever else.
        self.access = organization_access_for_request(request, slug=self.kwargs["org_slug"])
        self.organization = self.access.organization
        self.check_key_scope(request)
        capability = self.capability_for(request)
        if capability is None:
            raise exceptions.MethodNotAllowed(request.method)
        if refused_while_suspended(
            organization=self.organization,
            is_member=self.access.is_member,
            method=request.method,
            capability=capability,
        ):
            raise OrganizationSuspended(self.organization.suspension_message)
        if not self.access.can(capability):
            raise exceptions.PermissionDenied(
                "Your role in this organization does not allow this."
                if self.access.is_member
                else "Provider staff have read-only access here."
            )
        if self.access.is_member and mfa_required_for_organization(request.user, self.organization):
            # The same rule as on the pages; a key acts for its user and follows it too.
            raise exceptions.PermissionDenied(
                f"{self.organization.name} requires two-factor authentication: set it up in "
                "the portal (Security) before using the API."
            )
        if self.access.is_staff_access:
            record_staff_access(request, self.organization)

    def capability_for(self, request: Request) -> str | None:
        """The capability this request needs: the action's own (``action_capabilities``, for
        POST actions such as sign-off) or the method's (``permission_map``)."""
        action = getattr(self, "action", None)
        if action in self.action_capabilities:
            return self.action_capabilities[action]
        return self.permission_map.get(_method_for_permissions(request.method))

    def is_schema_generation(self) -> bool:
        return getattr(self, "swagger_fake_view", False)


class OrganizationAPIView(OrganizationAPIMixin, APIView):
    pass


class OrganizationGenericViewSet(OrganizationAPIMixin, viewsets.GenericViewSet):
    # Ids are integers: anything else does not match the route (404), never reaches the ORM.
    lookup_value_regex = r"[0-9]+"


class StaffAPIMixin(PortalAPIMixin):
    provider_scope = APPROVALS_SCOPE

    def check_access(self, request: Request) -> None:
        api_key = api_key_of(request)
        if (api_key is not None and not api_key.is_provider_key) or not (
            request.user.is_provider_staff
        ):
            raise exceptions.NotFound()
        self.check_key_scope(request)

    def check_key_scope(self, request: Request) -> None:
        api_key = api_key_of(request)
        if api_key is not None and self.provider_scope not in api_key.scopes:
            raise exceptions.PermissionDenied(
                f"This provider API key lacks the {self.provider_scope!r} scope."
            )


class StaffGenericViewSet(StaffAPIMixin, viewsets.GenericViewSet):
    lookup_value_regex = r"[0-9]+"
