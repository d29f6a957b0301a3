"""The client's address behind our proxies (TRUSTED_PROXY_COUNT): the N-th entry from the right
of X-Forwarded-For, never one the client could have written; REMOTE_ADDR with none."""

import pytest
from allauth.account.adapter import get_adapter
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.request import Request

from accounts.client_ip import client_ip
from accounts.models import AuditEvent
from portal.api.throttling import AnonymousRateThrottle
from tests.factories import PASSWORD

BALANCER = "10.0.0.5"  # what the web process sees as its peer behind the load balancer
CDN = "198.51.100.20"
CLIENT = "203.0.113.7"
FORGED = "192.0.2.66"  # what a client writes into X-Forwarded-For itself


def _request(forwarded_for: str | None = None, remote: str = BALANCER):
    headers = {"REMOTE_ADDR": remote}
    if forwarded_for is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return RequestFactory().get("/", **headers)


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (0, None, BALANCER),
        (0, f"{FORGED}, {CLIENT}", BALANCER),  # no proxy trusted: the header is ignored
        (1, CLIENT, CLIENT),  # the balancer appended the client
        (1, f"{FORGED}, {CLIENT}", CLIENT),  # the client's own entry is passed over
        (2, f"{CLIENT}, {CDN}", CLIENT),  # the CDN appended the client, the balancer the CDN
        (2, f"{FORGED}, {CLIENT},{CDN}", CLIENT),
        (1, f"{CLIENT}:51234", CLIENT),  # a proxy that appends the port
        (1, "[2001:db8::7]:443", "2001:db8::7"),
        (1, "2001:DB8:0:0::7", "2001:db8::7"),
    ],
)
def test_the_client_is_the_nth_address_from_the_right(settings, proxies, forwarded_for, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    assert client_ip(_request(forwarded_for)) == expected


@pytest.mark.parametrize(
    ("proxies", "forwarded_for"),
    [
        (1, None),  # reached the web process without the balancer
        (1, ""),
        (2, CLIENT),  # through fewer proxies than trusted: the one entry may be forged
        (1, f"{CLIENT}, not-an-address"),
        (1, f"{CLIENT}, "),
    ],
)
def test_a_chain_our_proxies_did_not_write_falls_back_to_the_peer(settings, proxies, forwarded_for):
    settings.TRUSTED_PROXY_COUNT = proxies
    assert client_ip(_request(forwarded_for)) == BALANCER


def test_no_request_no_address(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(None) is None
    assert client_ip(_request(remote="")) is None


@pytest.mark.django_db
def test_audit_records_the_client_behind_the_balancer_not_the_forged_entry(
    client, settings, org, owner
):
    settings.TRUSTED_PROXY_COUNT = 1
    response = client.post(
        reverse("account_login"),
        {"login": owner.email, "password": PASSWORD},
        REMOTE_ADDR=BALANCER,
        HTTP_X_FORWARDED_FOR=f"{FORGED}, {CLIENT}",
    )
    assert response.status_code == 302
    event = AuditEvent.objects.for_organization(org).get(action="user.logged_in")
    assert event.ip_address == CLIENT


@pytest.mark.django_db
def test_login_rate_limit_counts_each_client_behind_the_balancer(client, settings, org, owner):
    """Failed logins of one client behind the balancer do not lock out another, and rewriting
    the left of X-Forwarded-For does not earn a client fresh attempts."""
    settings.TRUSTED_PROXY_COUNT = 1
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login_failed": "3/m/ip"}
    refused = "Too many failed login attempts"

    def fail(forwarded_for: str, email: str) -> str:
        return client.post(
            reverse("account_login"),
            {"login": email, "password": "wrong-password"},
            REMOTE_ADDR=BALANCER,
            HTTP_X_FORWARDED_FOR=forwarded_for,
        ).content.decode()

    for n in range(3):
        assert refused not in fail(f"192.0.2.{n}, {CLIENT}", f"user{n}@acme.example")
    assert refused in fail(f"{FORGED}, {CLIENT}", "another@acme.example")
    assert refused not in fail("203.0.113.8", "another@acme.example")
    assert get_adapter().get_client_ip(_request(f"{FORGED}, {CLIENT}")) == CLIENT


@pytest.mark.parametrize(
    ("proxies", "forwarded_for"),
    [
        (0, f"{FORGED}, {CLIENT}"),
        (1, f"{FORGED}, {CLIENT}"),
        (2, f"{FORGED}, {CLIENT}, {CDN}"),
        (2, CLIENT),  # a chain shorter than our proxies: not through them all
    ],
)
def test_the_anonymous_api_throttle_counts_the_same_address(settings, proxies, forwarded_for):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = _request(forwarded_for)
    throttle = AnonymousRateThrottle()
    assert throttle.get_ident(Request(request)) == client_ip(request)
    assert client_ip(request) in throttle.get_cache_key(Request(request), view=None)
