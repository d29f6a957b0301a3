"""Print the current TOTP code of a secret (default: the demo staff accounts' secret).

.venv/bin/python scripts/totp.py [SECRET]
"""

import os
import sys
import time
from pathlib import Path

DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXP"


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.base")
    import django

    django.setup()
    from allauth.mfa import app_settings
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    secret = sys.argv[1] if len(sys.argv) > 1 else DEMO_TOTP_SECRET
    counter, elapsed = divmod(int(time.time()), app_settings.TOTP_PERIOD)
    code = format_hotp_value(hotp_value(secret, counter))
    print(f"{code}  (valid for {app_settings.TOTP_PERIOD - elapsed} more seconds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
