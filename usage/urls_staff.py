from django.urls import path

from . import views

urlpatterns = [
    path("usage/", views.FleetUsageView.as_view(), name="staff_usage"),
]
