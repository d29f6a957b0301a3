"""The WSGI module loads the URL configuration when a web worker starts, not on its first call."""

import os
import subprocess
import sys

PROBE = """
import sys
import portal.wsgi
from django.urls import get_resolver
print("url_patterns" in vars(get_resolver()), "quotas.api.requests" in sys.modules)
"""


def test_importing_the_wsgi_application_loads_the_url_configuration():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.base"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]
