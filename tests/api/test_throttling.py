"""Throttles per key and per user: 429 with Retry-After once over the rate."""

import pytest

from .conftest import bearer


@pytest.fixture
def throttled(settings):
    settings.API_THROTTLE_ENABLED = True
    settings.API_THROTTLE_RATES = {
        "api_key": "3/minute",
        "user": "2/minute",
        "anonymous": "5/minute",
    }


def test_key_is_throttled_with_retry_after(throttled, org_key, read_key):
    client = bearer(org_key.key)
    for _ in range(3):
        assert client.get("/api/v1/me/").status_code == 200
    response = client.get("/api/v1/me/")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert response.json()["code"] == "throttled"
    assert response.json()["retry_after"] == int(response["Retry-After"])
    # Counted per key: another key of the same user is not held back.
    assert bearer(read_key.key).get("/api/v1/me/").status_code == 200


def test_session_is_throttled_per_user(throttled, owner_api, member_api):
    for _ in range(2):
        assert owner_api.get("/api/v1/me/").status_code == 200
    assert owner_api.get("/api/v1/me/").status_code == 429
    assert member_api.get("/api/v1/me/").status_code == 200


def test_throttling_is_off_unless_switched_on(settings, org_key):
    settings.API_THROTTLE_RATES = {
        "api_key": "1/minute",
        "user": "1/minute",
        "anonymous": "1/minute",
    }
    client = bearer(org_key.key)
    assert all(client.get("/api/v1/me/").status_code == 200 for _ in range(20))


def test_the_previous_window_still_counts_and_refusals_do_not(throttled, org_key, monkeypatch):
    from portal.api.throttling import ApiKeyRateThrottle

    now = [6000.0]  # the start of a one-minute window
    monkeypatch.setattr(ApiKeyRateThrottle, "timer", lambda self: now[0])
    client = bearer(org_key.key)
    assert [client.get("/api/v1/me/").status_code for _ in range(4)] == [200, 200, 200, 429]
    now[0] += 60  # the next window starts: the previous three still weigh fully
    refused = client.get("/api/v1/me/")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    now[0] += 30  # half of the previous window has slid out: 1 + 3 x 0.5 <= 3
    # (had the refused call counted, this would be 2 + 3 x 0.5 > 3)
    assert client.get("/api/v1/me/").status_code == 200
    assert client.get("/api/v1/me/").status_code == 429  # 2 + 3 x 0.5 > 3
    now[0] += 29
    assert client.get("/api/v1/me/").status_code == 200


def test_each_window_counter_expires(throttled, org_key):
    from django.core.cache import cache

    bearer(org_key.key).get("/api/v1/me/")
    redis = cache.client.get_client(write=True)
    keys = redis.keys(cache.make_key(f"throttle:api_key:{org_key.api_key.pk}:*"))
    assert len(keys) == 1
    assert 0 < redis.ttl(keys[0]) <= 120  # two windows of a minute


def test_throttling_counts_in_a_local_memory_cache_too(throttled, org_key, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "t"}
    }
    client = bearer(org_key.key)
    assert [client.get("/api/v1/me/").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_calls_go_on_while_redis_is_down(throttled, org_key, settings):
    from tests.portal.conftest import closed_loopback_port

    settings.CACHES = {
        "default": {
            "BACKEND": "portal.cache.FailOpenRedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_loopback_port()}/0",
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.5},
        }
    }
    client = bearer(org_key.key)
    assert all(client.get("/api/v1/me/").status_code == 200 for _ in range(5))


def test_counting_goes_on_after_redis_forgets_the_script(throttled, org_key):
    """The counter is one Redis script: a restarted or flushed Redis is given it again."""
    from django.core.cache import cache

    client = bearer(org_key.key)
    assert client.get("/api/v1/me/").status_code == 200
    cache.client.get_client(write=True).script_flush()
    assert [client.get("/api/v1/me/").status_code for _ in range(3)] == [200, 200, 429]
