"""Webhooks never reach the provider's own network unless the allow-list says so."""

from __future__ import annotations

import socket

import pytest

from portal.errors import DomainError
from webhooks import transport
from webhooks.services import webhook_endpoint_create, webhook_event_publish
from webhooks.tasks import deliver_task

pytestmark = pytest.mark.django_db

NOT_PUBLIC = [
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "http://192.168.1.1/hook",
    "http://127.0.0.1:8000/hook",
    "http://127.1.2.3/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://[::1]/hook",
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://224.0.0.1/hook",
    "http://localhost/hook",
    "http://api.localhost/hook",
]


@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_literal_private_addresses_and_local_names_are_refused_when_saved(settings, url):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(DomainError) as caught:
        transport.url_validate(url)
    assert caught.value.field == "url"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/",
        "https://user:pw@hooks.example.com/",
        "https:///nohost",
        "https://hooks.example.com:99999/",
        "not a url",
    ],
)
def test_malformed_urls_are_refused_naming_the_field(url):
    with pytest.raises(DomainError) as caught:
        transport.url_validate(url)
    assert caught.value.field == "url"


def test_https_is_required_when_configured(settings):
    settings.WEBHOOK_REQUIRE_HTTPS = True
    with pytest.raises(DomainError, match="https://"):
        transport.url_validate("http://hooks.example.com/")
    assert transport.url_validate("https://hooks.example.com/")


def test_public_addresses_and_names_are_accepted(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    assert transport.url_validate("https://8.8.8.8/hook")
    assert transport.url_validate("https://hooks.example.com/portal?x=1")


def test_the_allow_list_admits_named_hosts_and_networks(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["localhost", "10.1.0.0/16"]
    assert transport.url_validate("http://localhost:9000/")
    assert transport.url_validate("http://10.1.2.3/")
    with pytest.raises(DomainError):
        transport.url_validate("http://10.2.0.1/")


def test_a_name_resolving_to_a_private_address_is_refused_at_delivery(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(transport.UnsafeDestination, match="not a public address"):
        transport.destination_resolve("localhost", 80)


def test_every_address_of_a_name_is_checked(settings, monkeypatch):
    """One private address among public ones is enough to refuse."""
    settings.WEBHOOK_ALLOWED_HOSTS = []

    def two_answers(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(transport.socket, "getaddrinfo", two_answers)
    with pytest.raises(transport.UnsafeDestination, match=r"10\.0\.0\.7"):
        transport.destination_resolve("hooks.example.com", 443)


def test_a_loopback_receiver_gets_nothing_once_it_leaves_the_allow_list(
    org, owner, receiver, settings
):
    endpoint = webhook_endpoint_create(
        organization=org, actor=owner, url=receiver.url, events=["request.approved"]
    )
    delivery = webhook_event_publish(
        organization=org, event_type="request.approved", data={}, event_id="e1"
    )[0]
    settings.WEBHOOK_ALLOWED_HOSTS = []

    assert deliver_task(delivery.pk) == "retrying"

    assert receiver.received == []
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("Refused: 127.0.0.1 resolves to 127.0.0.1")
    endpoint.refresh_from_db()
    assert endpoint.failure_streak == 1


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(
    org, owner, receiver, settings, monkeypatch
):
    """The name is resolved once, checked, and the request sent to that very address; the
    receiver still sees the endpoint's host name."""
    port = int(receiver.url.split(":")[2].split("/")[0])
    lookups = []
    real_getaddrinfo = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        lookups.append(host)
        if host == "hooks.acme.test":
            return real_getaddrinfo("127.0.0.1", *args, **kwargs)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(transport.socket, "getaddrinfo", resolver)
    webhook_endpoint_create(
        organization=org,
        actor=owner,
        url=f"http://hooks.acme.test:{port}/in",
        events=["request.approved"],
    )
    delivery = webhook_event_publish(
        organization=org, event_type="request.approved", data={}, event_id="e1"
    )[0]

    assert deliver_task(delivery.pk) == "succeeded"

    assert lookups.count("hooks.acme.test") == 1
    assert receiver.received[0].headers["Host"] == f"hooks.acme.test:{port}"
    assert receiver.received[0].path == "/in"


def test_saving_a_private_url_through_the_service_writes_nothing(org, owner, settings):
    from webhooks.models import WebhookEndpoint

    settings.WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(DomainError):
        webhook_endpoint_create(
            organization=org, actor=owner, url="http://192.168.0.10/", events=["request.approved"]
        )
    assert not WebhookEndpoint.objects.for_organization(org).exists()
