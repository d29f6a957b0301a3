from django.urls import path

from . import views

urlpatterns = [
    path("usage/", views.UsageHistoryView.as_view(), name="usage_history"),
]
