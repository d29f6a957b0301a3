"""The project's URLs plus API views that fail, to test the error contract of /api/."""

from django.urls import path
from rest_framework.views import APIView

from portal.api.base import PortalAPIView
from portal.urls import urlpatterns as project_urlpatterns
from quotas.models import Region


def crash(request):
    raise RuntimeError("boom")


class CrashingApiView(APIView):
    permission_classes = []

    def get(self, request):
        raise RuntimeError("boom inside DRF")


class WritesThenCrashesView(PortalAPIView):
    def post(self, request):
        Region.objects.create(code="half-done", name="Half done")
        raise RuntimeError("boom after a write")


urlpatterns = [
    path("api/v1/test-write-crash/", WritesThenCrashesView.as_view()),
    path("api/v1/test-crash/", crash),
    path("api/v1/test-crash-drf/", CrashingApiView.as_view()),
    *project_urlpatterns,
]
