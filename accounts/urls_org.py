from django.urls import path

from . import views

urlpatterns = [
    path("members/", views.MemberListView.as_view(), name="member_list"),
    path("members/<int:membership_id>/role/", views.MemberRoleView.as_view(), name="member_role"),
    path(
        "members/<int:membership_id>/remove/",
        views.MemberRemoveView.as_view(),
        name="member_remove",
    ),
    path("leave/", views.OrganizationLeaveView.as_view(), name="organization_leave"),
    path(
        "invitations/<int:invitation_id>/revoke/",
        views.InvitationRevokeView.as_view(),
        name="invitation_revoke",
    ),
    path("settings/", views.OrganizationSettingsView.as_view(), name="organization_settings"),
    path("settings/api-keys/", views.ApiKeyListView.as_view(), name="api_key_list"),
    path(
        "settings/api-keys/<int:api_key_id>/revoke/",
        views.ApiKeyRevokeView.as_view(),
        name="api_key_revoke",
    ),
    path("audit/", views.AuditLogView.as_view(), name="audit_log"),
]
