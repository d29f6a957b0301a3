"""Everything under /api/v1/ (mounted in portal/urls.py)."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from accounts import api as accounts_api
from contracts import api as contracts_api
from notifications import api as notifications_api
from quotas.api import catalog as catalog_api
from quotas.api import requests as requests_api
from quotas.api import staff as staff_api
from usage import api as usage_api
from webhooks import api as webhooks_api

from .views import DocsView, SchemaView

catalog = SimpleRouter()
catalog.register("regions", catalog_api.RegionViewSet, basename="api-region")
catalog.register("skus", catalog_api.GpuSkuViewSet, basename="api-sku")

organization = SimpleRouter()
organization.register("members", accounts_api.MemberViewSet, basename="api-member")
organization.register("invitations", accounts_api.InvitationViewSet, basename="api-invitation")
organization.register("audit-events", accounts_api.AuditEventViewSet, basename="api-audit-event")
organization.register("api-keys", accounts_api.OrganizationApiKeyViewSet, basename="api-api-key")
organization.register("requests", requests_api.CapacityRequestViewSet, basename="api-request")
organization.register("reservations", requests_api.ReservationViewSet, basename="api-reservation")
organization.register("contracts", contracts_api.ContractViewSet, basename="api-contract")
organization.register("statements", contracts_api.StatementViewSet, basename="api-statement")
organization.register("usage", usage_api.UsageRecordViewSet, basename="api-usage-record")
organization.register("webhooks", webhooks_api.WebhookEndpointViewSet, basename="api-webhook")
organization.register(
    "notifications", notifications_api.NotificationViewSet, basename="api-notification"
)
organization.register(
    "webhooks/deliveries", webhooks_api.WebhookDeliveryViewSet, basename="api-webhook-delivery"
)

staff = SimpleRouter()
staff.register(
    "organizations", accounts_api.StaffOrganizationViewSet, basename="api-staff-organization"
)
staff.register("api-keys", accounts_api.ProviderApiKeyViewSet, basename="api-staff-api-key")
staff.register("requests", staff_api.StaffRequestViewSet, basename="api-staff-request")
staff.register("pools", staff_api.StaffPoolViewSet, basename="api-staff-pool")

organization_views = [
    path("quotas/", requests_api.QuotaView.as_view(), name="api-quota"),
    path("quotas/history/", requests_api.QuotaHistoryView.as_view(), name="api-quota-history"),
    path("availability/", requests_api.AvailabilityView.as_view(), name="api-availability"),
    path("quote/", requests_api.QuoteView.as_view(), name="api-quote"),
    path("usage/aggregate/", usage_api.UsageAggregateView.as_view(), name="api-usage-aggregate"),
]

urlpatterns = [
    path("schema/", SchemaView.as_view(), name="api-schema"),
    path("docs/", DocsView.as_view(), name="api-docs"),
    path("me/", accounts_api.MeView.as_view(), name="api-me"),
    path(
        "me/notification-preferences/",
        notifications_api.NotificationPreferencesView.as_view(),
        name="api-notification-preferences",
    ),
    path("usage/ingest", usage_api.UsageIngestView.as_view(), name="api-usage-ingest"),
    path("", include(catalog.urls)),
    path("orgs/", accounts_api.OrganizationListView.as_view(), name="api-organization-list"),
    path(
        "orgs/<slug:org_slug>/",
        accounts_api.OrganizationDetailView.as_view(),
        name="api-organization-detail",
    ),
    path("orgs/<slug:org_slug>/", include(organization_views)),
    path("orgs/<slug:org_slug>/", include(organization.urls)),
    path("staff/", include(staff.urls)),
]
