from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from accounts import views as account_views
from portal import views as portal_views

# The Django admin logs in through allauth (rate limits, MFA), never its own form: a signed-in
# user without admin access gets 403, not the admin's login form.
admin.site.login = secure_admin_login(admin.site.login)
admin.site.site_header = "GPU Capacity Portal administration"

org_patterns = [
    path("", include("accounts.urls_org")),
    path("", include("quotas.urls_org")),
    path("", include("notifications.urls_org")),
    path("", include("contracts.urls_org")),
    path("", include("webhooks.urls_org")),
    path("", include("usage.urls_org")),
]

urlpatterns = [
    path("", account_views.home, name="home"),
    path("healthz", portal_views.healthz, name="healthz"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("portal.api.urls")),
    path("invitations/", include("accounts.urls_invitations")),
    path("o/<slug:org_slug>/", include(org_patterns)),
    path("staff/", include("quotas.urls_staff")),
    path("staff/", include("usage.urls_staff")),
    path("notifications/", include("notifications.urls")),
]
