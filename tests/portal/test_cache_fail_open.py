"""A Redis outage must never take logins down: the cache fails open."""

import json
import time

import pytest
import redis
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core.cache import caches
from django.test import override_settings

from accounts.models import StaffRole
from tests.conftest import enable_totp
from tests.factories import PASSWORD, UserFactory

from .conftest import closed_loopback_port, run_python


@pytest.fixture
def caches_with_redis_down(production_env) -> dict:
    """CACHES exactly as the env-driven settings build them when REDIS_URL points at nothing."""
    env = {**production_env, "DJANGO_SETTINGS_MODULE": "portal.settings.base"}
    env["REDIS_URL"] = f"redis://127.0.0.1:{closed_loopback_port()}/0"
    result = run_python(
        "import json; from django.conf import settings; print(json.dumps(settings.CACHES))",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_redis_cache_is_really_down(caches_with_redis_down):
    options = caches_with_redis_down["default"]["OPTIONS"]
    strict = {
        **caches_with_redis_down,
        "default": {
            **caches_with_redis_down["default"],
            "OPTIONS": {**options, "IGNORE_EXCEPTIONS": False},
        },
    }

    with override_settings(CACHES=strict), pytest.raises(redis.ConnectionError):
        caches["default"].get("anything")


def test_user_logs_in_while_redis_is_down(client, db, caches_with_redis_down):
    user = UserFactory(email="owner@acme.example")
    assert caches_with_redis_down["default"]["BACKEND"] == "portal.cache.FailOpenRedisCache"

    with override_settings(CACHES=caches_with_redis_down):
        response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
        home = client.get("/", follow=True)

    assert response.status_code == 302
    assert home.status_code == 200
    assert home.context["user"] == user


def test_staff_log_in_with_totp_while_redis_is_down(client, db, caches_with_redis_down):
    # allauth remembers used TOTP codes with cache.add; a failed add must not refuse the code.
    user = UserFactory(email="manager@provider.example", staff_role=StaffRole.ACCOUNT_MANAGER)
    enable_totp(user, "JBSWY3DPEHPK3PXP")
    code = format_hotp_value(
        hotp_value("JBSWY3DPEHPK3PXP", int(time.time()) // mfa_settings.TOTP_PERIOD)
    )

    with override_settings(CACHES=caches_with_redis_down):
        login = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
        second_factor = client.post(login.url, {"code": code})
        staff_home = client.get("/staff/")

    assert login.url == "/accounts/2fa/authenticate/"
    assert second_factor.status_code == 302
    assert staff_home.status_code == 200
    assert staff_home.context["user"] == user
