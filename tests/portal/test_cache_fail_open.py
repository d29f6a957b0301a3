"""A Redis outage must never take logins down: the cache fails open."""

import json

import pytest
import redis
from django.core.cache import caches
from django.test import override_settings

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
