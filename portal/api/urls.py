"""Everything under /api/v1/ (mounted in portal/urls.py)."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from accounts import api as accounts_api
from quotas import api as quotas_api

from .views import DocsView, SchemaView

catalog = SimpleRouter()
catalog.register("regions", quotas_api.RegionViewSet, basename="api-region")
catalog.register("skus", quotas_api.GpuSkuViewSet, basename="api-sku")

organization = SimpleRouter()
organization.register("members", accounts_api.MemberViewSet, basename="api-member")
organization.register("invitations", accounts_api.InvitationViewSet, basename="api-invitation")
organization.register("audit-events", accounts_api.AuditEventViewSet, basename="api-audit-event")
organization.register("api-keys", accounts_api.OrganizationApiKeyViewSet, basename="api-api-key")

staff = SimpleRouter()
staff.register(
    "organizations", accounts_api.StaffOrganizationViewSet, basename="api-staff-organization"
)
staff.register("api-keys", accounts_api.ProviderApiKeyViewSet, basename="api-staff-api-key")

urlpatterns = [
    path("schema/", SchemaView.as_view(), name="api-schema"),
    path("docs/", DocsView.as_view(), name="api-docs"),
    path("me/", accounts_api.MeView.as_view(), name="api-me"),
    path("", include(catalog.urls)),
    path("orgs/", accounts_api.OrganizationListView.as_view(), name="api-organization-list"),
    path(
        "orgs/<slug:org_slug>/",
        accounts_api.OrganizationDetailView.as_view(),
        name="api-organization-detail",
    ),
    path("orgs/<slug:org_slug>/", include(organization.urls)),
    path("staff/", include(staff.urls)),
]
