from django.urls import path

from . import views

urlpatterns = [
    path("", views.NotificationListView.as_view(), name="notification_list"),
    path("badge", views.NotificationBadgeView.as_view(), name="notification_badge"),
    path("read-all", views.NotificationMarkAllReadView.as_view(), name="notification_read_all"),
    path("<int:pk>/read", views.NotificationOpenView.as_view(), name="notification_read"),
    path(
        "preferences/",
        views.NotificationPreferencesView.as_view(),
        name="notification_preferences",
    ),
]
