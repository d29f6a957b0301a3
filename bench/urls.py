"""The portal URLs plus the reference view R0 (with DJANGO_SETTINGS_MODULE=bench.settings)."""

from django.urls import include, path

from .views import reference_list_view

urlpatterns = [
    path("bench/r0/", reference_list_view, name="bench-r0"),
    path("", include("portal.urls")),
]
