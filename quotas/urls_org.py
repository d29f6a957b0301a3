from django.urls import path

from .views import tenant

urlpatterns = [
    path("", tenant.DashboardView.as_view(), name="org_dashboard"),
    path("requests/", tenant.RequestListView.as_view(), name="request_list"),
    path("requests/policy/", tenant.ApprovalPolicyView.as_view(), name="approval_policy"),
    path("requests/new/", tenant.RequestCreateView.as_view(), name="request_create"),
    path(
        "requests/new/availability",
        tenant.RequestAvailabilityView.as_view(),
        name="request_availability",
    ),
    path("requests/<int:pk>/", tenant.RequestDetailView.as_view(), name="request_detail"),
    path(
        "requests/<int:pk>/comments",
        tenant.RequestCommentView.as_view(),
        name="request_comment",
    ),
    path("requests/<int:pk>/edit", tenant.RequestEditView.as_view(), name="request_edit"),
    path(
        "requests/<int:pk>/<slug:action>",
        tenant.RequestActionView.as_view(),
        name="request_action",
    ),
    path("reservations/", tenant.ReservationListView.as_view(), name="reservation_list"),
    path(
        "reservations/<int:pk>/",
        tenant.ReservationDetailView.as_view(),
        name="reservation_detail",
    ),
    path(
        "reservations/<int:pk>/extend",
        tenant.ReservationExtendView.as_view(),
        name="reservation_extend",
    ),
    path(
        "reservations/<int:pk>/<slug:action>",
        tenant.ReservationActionView.as_view(),
        name="reservation_action",
    ),
]
