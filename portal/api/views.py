"""The schema and its interactive documentation, served without a CDN and under the CSP."""

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView


class SchemaView(SpectacularAPIView):
    """OpenAPI 3 document (YAML; JSON with ``?format=json``)."""


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI from drf-spectacular-sidecar's static files. The split view serves its
    start-up script as a separate file, so the page needs no inline script; the template
    replaces the stock one's inline <style> with a stylesheet."""

    template_name = "api/swagger_ui.html"
    url_name = "api-schema"
