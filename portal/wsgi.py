import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.base")

application = get_wsgi_application()

# Import the URL configuration (every view module, DRF, the API's serializers) now, while the
# worker starts, rather than on the first request it serves: that request would otherwise wait
# most of a second behind it.
get_resolver().url_patterns  # noqa: B018
