"""Settings of the processes the fault scenarios start: production, with e-mail written to files
so that a test can count what was really sent. Nothing else differs from production."""

import os

from portal.settings.production import *  # noqa: F403

EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ["FAULTS_MAIL_DIR"]

# kombu sweeps delivered-but-unacknowledged messages back into the queue only every
# interval x throttle seconds (100 s by default); the scenarios use a visibility timeout of
# seconds, so they sweep every second to see the redelivery within the test's patience.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
