"""Test settings: only what makes the suite fast and isolated, nothing that changes behaviour.

Each pytest-xdist worker gets its own database (pytest-django adds the suffix) and its own
cache key prefix, so rate limits and throttles never leak between workers.
"""

import os

from .base import *  # noqa: F403
from .base import CACHES, CELERY_BROKER_TRANSPORT_OPTIONS, CELERY_BROKER_URL, DATABASES

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

# Tasks that tests enqueue without a worker must not land in the developer's broker folder
# (a `make run` worker would then run them against the dev database): each test run and
# worker gets a folder of its own, emptied when the session starts (tests/conftest.py).
if CELERY_BROKER_URL.startswith("filesystem:"):
    import tempfile
    from pathlib import Path

    TEST_BROKER_DIR = Path(tempfile.gettempdir()) / "portal-tests" / f"{_run}-{_worker}" / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,
        "data_folder_in": str(TEST_BROKER_DIR / "queue"),
        "data_folder_out": str(TEST_BROKER_DIR / "queue"),
        "processed_folder": str(TEST_BROKER_DIR / "processed"),
        "control_folder": str(TEST_BROKER_DIR / "control"),
    }
