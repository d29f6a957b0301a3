from django.urls import path

from .views import staff

urlpatterns = [
    path("", staff.StaffHomeView.as_view(), name="staff_home"),
    path("organizations/", staff.StaffOrganizationListView.as_view(), name="staff_organizations"),
    path("approvals/", staff.ApprovalInboxView.as_view(), name="staff_approvals"),
    path(
        "approvals/second/",
        staff.SecondApprovalQueueView.as_view(),
        name="staff_second_approvals",
    ),
    path("approvals/bulk-approve", staff.StaffBulkApproveView.as_view(), name="staff_bulk_approve"),
    path("capacity/", staff.CapacityOverviewView.as_view(), name="staff_capacity"),
    path("capacity/pools/<int:pk>/", staff.PoolOverviewView.as_view(), name="staff_pool"),
    path("requests/<int:pk>/", staff.StaffRequestDetailView.as_view(), name="staff_request_detail"),
    path(
        "requests/<int:pk>/comments",
        staff.StaffCommentView.as_view(),
        name="staff_request_comment",
    ),
    path("requests/<int:pk>/approve", staff.StaffApproveView.as_view(), name="staff_approve"),
    path("requests/<int:pk>/reject", staff.StaffRejectView.as_view(), name="staff_reject"),
    path(
        "requests/<int:pk>/counter-offer",
        staff.StaffCounterOfferView.as_view(),
        name="staff_counter_offer",
    ),
]
