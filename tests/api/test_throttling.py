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
