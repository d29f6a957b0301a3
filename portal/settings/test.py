"""Test settings: only what makes the suite fast and isolated, nothing that changes behaviour.

Each pytest-xdist worker gets its own database (pytest-django adds the suffix) and its own
cache key prefix, so rate limits and throttles never leak between workers.
"""

import os

from .base import *  # noqa: F403
from .base import CACHES, DATABASES

_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
_run = os.environ.get("PORTAL_TEST_RUN", "t")

DATABASES["default"]["TEST"] = {"NAME": os.environ.get("PORTAL_TEST_DB", "test_portal")}
DATABASES["default"]["CONN_MAX_AGE"] = 0

for _cache in CACHES.values():
    _cache["KEY_PREFIX"] = f"test:{_run}:{_worker}"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DEBUG = False
LOGGING = {"version": 1, "disable_existing_loggers": False}

# No collectstatic in tests: WhiteNoise serves straight from the finders (static/, assets/build),
# so pages under the live server (browser tests) get their CSS and JS with DEBUG off.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
