import os
from pathlib import Path

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.celery import app as celery_app

# A load balancer probes often: a dead broker must answer "unavailable" fast, not hang.
BROKER_CHECK_TIMEOUT_SECONDS = 1.0


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return False
    return True


def _broker_ok() -> bool:
    broker_url = str(celery_app.conf.broker_url)
    if broker_url.startswith("filesystem:"):
        # The filesystem broker is up when its queue folder exists and can be written.
        options = celery_app.conf.broker_transport_options or {}
        folder = Path(options.get("data_folder_in", "data_in"))
        return folder.is_dir() and os.access(folder, os.W_OK)
    try:
        with celery_app.connection_for_write(connect_timeout=BROKER_CHECK_TIMEOUT_SECONDS) as conn:
            conn.ensure_connection(max_retries=0, timeout=BROKER_CHECK_TIMEOUT_SECONDS)
    except Exception:
        return False
    return True


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database answers a query and the Celery broker accepts a connection."""
    checks = {
        "database": "ok" if _database_ok() else "unavailable",
        "broker": "ok" if _broker_ok() else "unavailable",
    }
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503
    )
