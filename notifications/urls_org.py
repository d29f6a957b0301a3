from django.urls import path

from . import views

urlpatterns = [
    path(
        "notifications/",
        views.OrganizationNotificationListView.as_view(),
        name="org_notification_list",
    ),
]
