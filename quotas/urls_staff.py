from django.urls import path

from . import views

urlpatterns = [
    path("", views.StaffHomeView.as_view(), name="staff_home"),
]
